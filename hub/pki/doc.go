// Package pki is Veil's small certificate authority and the mTLS identity of
// every party.
//
// The platform operator creates one CA (`veil pki init`) and issues each
// party a certificate (`veil pki issue`) whose subject carries the party's
// name (CommonName) and role (OrganizationalUnit: provider, bank, auditor or
// platform). Every connection is mutual TLS 1.3 with that CA pinned on both
// sides: a certificate from another CA is refused during the handshake, and
// the role used for authorization is read from the verified certificate, so
// a party cannot claim a role its certificate does not carry.
//
// Keys are Ed25519. The CA key never leaves the CA directory; party keys are
// written with mode 0600. Whoever holds the CA key can mint identities, so it
// belongs offline or at least on the platform host only.
package pki
