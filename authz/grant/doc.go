// Package grant implements enterprise authorization grants: JWTs signed by
// the enterprise (the information subject) with Ed25519 (JWS alg "EdDSA"),
// naming one bank (aud), a purpose, a list of scopes and a use limit.
//
// # Protocol
//
// The enterprise signs a grant with its own key (Issue) and hands it to the
// bank. The bank sends the grant with every request. The platform, and again
// every provider agent for its own fields, runs Verifier.Verify, which
//
//  1. refuses tokens over MaxTokenSize before parsing anything;
//  2. decodes the JOSE header itself and refuses any alg other than EdDSA,
//     any typ other than "veil-grant+jwt" and any key-carrying or critical
//     header (jwk, jku, x5u, x5c, crit): keys come from the directory only;
//  3. looks the issuer's key up in the enterprise key Directory and checks
//     the signature (golang-jwt with WithValidMethods(["EdDSA"]) and strict
//     base64);
//  4. checks the static claims: iss = sub, a jti, exactly one aud, iat, exp,
//     well-formed scopes, max_uses >= 1;
//  5. on every request (even when steps 1-4 come from the cache): audience,
//     subject, time window, scope, revocation, and finally consumes one use.
//
// Each refusal is a *Refusal with a machine-readable Reason. An optional
// DecisionRecorder receives every decision (allow and deny) before Verify
// returns, so the caller can put it in the audit log first.
//
// # Batches
//
// Batch scoring checks thousands of grants per call. Verifier.PrepareBatch
// runs steps 1-5 except revocation and the use count for every item: cache
// hits (keyed by SHA-256 of the token, LRU with a TTL, DefaultCacheSize
// entries) cost a hash; misses are verified by a worker pool on all cores,
// with the directory keys of the requests' subjects fetched in one query
// (BatchDirectory). The remaining stateful checks run as one unit: the
// caller passes Batch.Uses to a BatchUseStore (SQLStore.UseBatchTx: a few
// multi-row statements in the caller's transaction) and Batch.Finish turns
// the outcomes into the decisions, which the caller commits in the same
// transaction (the platform: with its audit entries). Verifier.VerifyBatch
// does all of it for a party whose store runs its own transaction. Items are
// applied in order, so a grant named twice in one batch gets two uses and
// never more than max_uses; use counts stay exact under concurrent batches
// (PostgreSQL: the counter rows are created, then locked, before they are
// read; SQLite: one writer).
//
// Revocations are themselves compact JWS objects signed by the enterprise
// (typ "veil-revocation+jwt"), so a platform cannot revoke (or claim to have
// revoked) a grant on an enterprise's behalf, and the signed revocation can be
// kept as evidence.
//
// # What each party learns
//
// A grant is a bearer credential readable by whoever holds it: it reveals the
// enterprise's USCC, the bank, the purpose and the scopes, but no data. The
// platform and providers learn these claims when they check it.
//
// # Security assumptions
//
//   - The key directory is authentic: a forged directory entry lets its author
//     issue grants. The platform's directory is filled by an operator after
//     identity checks and each registration is written to the audit log.
//   - Ed25519 in Go's crypto/ed25519 (which rejects non-canonical S) and the
//     strict base64 decoding make a token's byte string unique for its
//     content, so the verification cache can be keyed by SHA-256 of the token.
//   - Clocks agree within Config.Leeway.
//   - Use counts are per verifying party: the platform and each provider count
//     independently, so no single party can let a bank exceed max_uses at the
//     others.
package grant
