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
// Grants and the audit log (authz_*.go, packages authz/grant and
// authz/audit): enterprises hold Ed25519 keys, not certificates, so a few
// Authz methods (RevokeGrant, AuditMine, AuditLogKey) are marked
// PublicEnterprise in the policy and accepted without a client certificate;
// their handlers authenticate the enterprise by its signature (AuditMine
// requests are time-stamped and carry a nonce, so they cannot be replayed).
// Every other method still needs a certificate. The platform checks each
// grant (Platform.Authorize) and commits the decision to the audit log
// before answering; every provider agent checks it again (Agent.Authorize)
// with its own copy of the enterprise keys, the revocations it verified
// itself and its own use counts, and records each use locally. The platform
// pushes the key directory and the enterprise-signed revocations to every
// agent (service AgentAuthz), on registration and on every change. Trust
// assumption: the agents take enterprise keys from the platform, so a
// compromised platform could register a false key for an enterprise and
// issue grants in its name; but every registration is an audit log entry
// about that enterprise, which the enterprise sees (with an inclusion proof)
// in `veil audit mine`. A platform cannot forge a revocation at an agent,
// because agents verify the enterprise's signature; it could withhold one,
// so an enterprise that distrusts the platform should also tell the
// providers (their `veil agent usage` record shows every use of a grant).
//
// Jobs (PSI alignments, list checks, training) are written to the audit log
// when they start, before any party receives a message, and again with
// their outcome; a job whose start cannot be recorded does not run. Each
// scoring, verification or query call commits its grant decisions first
// and its job entry before the result is returned.
//
// The protocol logic itself lives in those packages as party state machines;
// this package only carries their messages.
package hub
