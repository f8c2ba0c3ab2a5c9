// Package hub wires Veil's parties together over gRPC with mutual TLS.
//
// Topology: every agent (a data provider, or a bank that contributes labels)
// runs a gRPC server; the platform dials the agents and relays everything
// between them, so agents never reach each other and need no inbound access
// from anyone but the platform. Banks, auditors, enterprises' tools and the
// operator are gRPC clients of the platform.
//
// Identity and authorization: each party's certificate, issued by the
// platform CA (package pki), carries its name and role. The Guard verifies
// the certificate chain and the role of every call against a per-service
// policy (default deny) and logs each refusal; a certificate from another CA
// is refused with Unauthenticated, a role not allowed with PermissionDenied.
// When the platform dials an agent it pins the name and role recorded in the
// registry, so a registered address cannot be taken over by another party.
//
// What each party learns here: the platform learns the registry (names,
// roles, addresses, certificate fingerprints) and each agent's dataset
// summary (row count and feature names, never values). Protocol payloads it
// relays (PSI messages, ciphertexts) are blinded or encrypted under keys it
// cannot use alone; the protocol packages under mpc and modeling say why.
//
// The protocol logic itself lives in those packages as party state machines;
// this package only carries their messages.
package hub
