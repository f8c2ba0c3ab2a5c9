// Package keys reads and writes the Ed25519 key files used by Veil's
// authorization layer: an enterprise's grant-signing key and the platform's
// audit-checkpoint (signed-note) key.
//
// Files are PEM: the private key as PKCS #8 ("PRIVATE KEY", written with mode
// 0600 and never overwritten), the public key as PKIX ("PUBLIC KEY"). These are
// the encodings OpenSSL and Go's crypto/x509 use, so a key can be inspected with
// `openssl pkey -in ent.key -text`.
//
// Security: the private key file is the enterprise's authority to grant access
// to its data; whoever reads it can issue grants. The package refuses to
// overwrite an existing key file so a mistyped command cannot destroy a key
// that grants were issued under. Fingerprint gives a short, stable identifier
// (SHA-256 of the public key) that an operator can compare out of band when
// registering an enterprise.
package keys
