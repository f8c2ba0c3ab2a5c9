// Package audit is Veil's verifiable audit log: an append-only RFC 6962
// Merkle tree (github.com/transparency-dev/merkle) of canonical-JSON entries,
// with checkpoints in the signed-note format (golang.org/x/mod/sumdb/note),
// stored in the platform database (SQLite or PostgreSQL, package hub/store).
//
// # What is logged
//
// Every grant registered or revoked, every allowed or refused request (with
// the refusal reason), every PSI, training and scoring job. Log.Append
// commits the entry before it returns, so a caller that appends first and
// releases a result afterwards never releases anything unlogged.
// Log.AppendBatch commits many entries in one transaction, and
// Log.AppendBatchFunc lets the caller build them inside that transaction
// after the log's write lock is taken: the platform counts the grants' uses
// there, so the uses and the decisions' entries commit together or not at
// all. Marshal is a hand-written encoder checked byte for byte against the
// encoding/json reference (it runs once per grant decision).
//
// # Structure
//
// Entry i's leaf is Marshal(entry): JSON with sorted keys, no insignificant
// whitespace, no HTML escaping and a fixed time layout, with "seq": i inside
// it, so moving an entry changes its bytes. Decode accepts only that exact
// form. The database keeps the entry bytes, every perfect-subtree hash
// (audit_nodes, from the compact range as entries are appended) and the
// signed checkpoints. A checkpoint ("<origin>\n<size>\n<base64 root>\n",
// signed with the platform's Ed25519 note key) is signed in the append that
// brings the unsigned tail to CheckpointEvery entries, when the latest is
// older than CheckpointInterval (on append or by Run), and on demand.
//
// # Verification
//
// LogVerifier streams all entries, recomputes the tree with a compact range
// (O(log n) memory), and reports, with the position, each of: a checkpoint
// whose signature fails; two signed checkpoints of one size that differ (a
// fork); an entry that is not canonical; an entry whose seq is not its
// position (deleted, duplicated, swapped); a signed root that the entries no
// longer produce (the problem lies between the last matching checkpoint and
// this one); a checkpoint larger than the log (rolled back); and a saved
// checkpoint that the log does not extend (rewritten or rolled back). With
// the entries in hand, consistency with a saved checkpoint is checked by
// recomputing its root from the first size entries, which is what the
// RFC 6962 consistency proof attests to; light clients that hold only two
// checkpoints use ConsistencyProof and VerifyConsistency instead.
//
// # What each party learns
//
// An auditor who verifies the whole log reads every entry. An enterprise
// calling `veil audit mine` gets only the entries whose subject is its USCC,
// each with an inclusion proof (Prove, VerifyInclusion): it learns the
// checkpoint's size and root and the sibling hashes, which reveal nothing
// about other entries' content. A provider queries the entries naming it.
// Entries hold party names, USCCs, scopes and reasons, never data values.
//
// # Security assumptions
//
//   - The checkpoint key is the platform's; whoever holds it can sign a
//     rewritten history, which an auditor detects only with a checkpoint
//     saved earlier (or gossiped with others). Auditors should keep theirs.
//   - Entries after the latest checkpoint are not yet signed; Report.Unsigned
//     says how many.
//   - SHA-256 is collision resistant; Ed25519 signatures are unforgeable.
package audit
