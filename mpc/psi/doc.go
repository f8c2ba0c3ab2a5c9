// Package psi implements private set intersection for Veil: sample
// alignment between a label holder and k data providers, and list checks
// (is an applicant on a provider's list?), over the platform's hub relay.
//
// # API
//
// Parties talk through a Conn (Send/Recv of Message). The platform relays
// Messages between two agents as opaque bytes (Message.MarshalBinary /
// UnmarshalBinary, strict and fuzzed); Pipe gives an in-process pair for
// tests and benchmarks. The same party code runs over both.
//
//	AlignLeader(ctx, ids, peers map[string]Conn, cfg) (*Alignment, error)  // label holder
//	AlignFollower(ctx, ids, leader Conn, cfg) (*Alignment, error)          // each provider
//	NewListServer(key, workers); (*ListServer).SetList(ctx, name, ids)      // provider, encodes once
//	(*ListServer).Serve(ctx, conn, cfg) (*ListServeStats, error)           // provider, one check
//	CheckList(ctx, conn, list, ids, cfg) (*ListCheck, error)               // bank
//
// Config.Session must be the same fresh string (e.g. the job ID) at every
// party of a run; Config.Protocol is ProtocolECDH (default) or ProtocolKKRT.
// IDs are compared byte for byte (normalise them, e.g. trim and upper-case
// a USCC, before calling). Empty IDs are dropped and duplicates kept once;
// both are counted in InputStats, never fatal.
//
// # Alignment (hub topology)
//
// The leader runs one two-party PSI with each follower in turn, always as
// the party that learns the result, intersects the k pairwise results, and
// sends each follower the positions (in the follower's own random
// shuffle) of its items that are common to all parties. Every participant
// ends with the same sorted list of common IDs.
//
// Two-party ECDH-PSI over ristretto255 (the leader has secret a, the
// follower b, both fresh random scalars for each session; H is RFC 9380
// hash-to-group with the tag "VEIL-PSI-V1-…" + Session):
//
//	leader   -> follower: a·H(x) for every x, in a random order
//	follower -> leader:   b·H(y) for every y, in a random order
//	follower -> leader:   b·(a·H(x)), in the leader's order
//	leader computes a·(b·H(y)) and matches it against b·a·H(x).
//
// Points travel as the ristretto255 encoding of 2·k·P instead of k·P (the
// doubling lets a whole chunk be encoded with one field inversion, see
// ristretto.go); that is the same protocol with the scalars 2a and 2b.
// Streams are chunked (Config.ChunkSize points per message, default 4096)
// and processed by Config.Workers goroutines (default GOMAXPROCS), with at
// most 2·Workers chunks in flight per stream.
//
// What each party learns:
//   - the platform: the message sizes, hence every party's set size and
//     the size of the final intersection (length of the result), and
//     timing; the points are pseudorandom to anyone without a or b (DDH);
//   - a follower: the leader's set size and the final intersection, which
//     is a subset of its own set; it does not learn its pairwise
//     intersection with the leader;
//   - the leader (label holder): each follower's set size and, for each
//     follower k, the pairwise intersection (leader set ∩ follower k set),
//     hence for each of its own IDs which followers hold it. It learns no
//     follower ID outside its own set. This is more than the final
//     intersection: it is the price of a hub protocol in which the leader
//     does O(n) work per follower. Alignment.PairwiseSizes reports it.
//
// # List check (unbalanced mode)
//
// The provider holds a long-lived key k (GenerateListKey) and encodes each
// named list once as k·H(y) (tag "VEIL-PSI-V1-LIST-…" + list name); SetList
// keys the cache by the content hash of the unique IDs, so an unchanged
// list costs nothing and a changed one is re-encoded. A check:
//
//	bank     -> provider: r·H(x) for each applicant x (fresh r)
//	provider -> bank:     k·r·H(x), then the cached encoded list
//	bank unblinds with 1/r (1/4r with the doubled encoding) and looks
//	k·H(x) up in the list;
//	bank     -> provider: the match count (as claimed by the bank).
//
// Each check costs the provider one scalar multiplication per applicant
// and the bank three group operations per applicant. The bank learns
// which of its IDs are on the list and the list's size and version; the
// provider learns the number of IDs checked and the reported count. The
// bank can test an ID only through the provider, which sees every query.
//
// # KKRT (Protocol "kkrt")
//
// KKRT16 batched-OPRF PSI: 512 base OTs (circl ot/simot), an IKNP-style
// OT extension to a 512-bit pseudorandom code (AES), cuckoo hashing with 3
// hash functions into 1.3n bins (the leader retries with a fresh seed if
// insertion fails), and 128-bit tags (SHA-256) for the follower's n items x
// 3 hash functions, sent in a random order. About 30x faster than ECDH.
// The follower holds 64 bytes per bin (≈ 85 MB per million leader IDs).
//
// # Which protocol
//
// ECDH (default) has the simplest assumptions (DDH, a hash to the group),
// bounded memory (streaming) and messages that are small and uniform;
// use it for list checks (its unbalanced mode caches the provider side),
// for very large sets (10M+) and whenever the run time allows: about
// 0.1 ms of CPU per item per side. KKRT is 30-40x faster (1M x 1M in a
// few seconds on 2 cores) but relies on more machinery (OT extension,
// AES and SHA-256 as ideal primitives), is semi-honest only like ECDH,
// sends about 64·1.3 B per leader item plus 48 B per follower item, and
// its follower keeps the whole OT matrix in memory; use it for large
// alignments inside a training job when ECDH would be the bottleneck.
//
// # Security assumptions
//
// Both protocols are secure against semi-honest parties: a party that
// deviates can, for instance, change its input set or (as leader) send a
// follower a wrong result. ECDH relies on DDH in ristretto255 with H a
// random oracle; KKRT on CDH for the base OTs (random oracle), AES as a
// PRF/PRG and SHA-256 as a correlation-robust hash, with statistical
// error below 2^-40 per run. Every message is checked: wrong session,
// kind, order, length or final flag, non-canonical or identity points, and
// out-of-range result positions give an error (and an abort message to the
// peer), never a panic or a wrong intersection. A closed connection or a
// cancelled context ends the run with an error instead of hanging.
//
// # Memory
//
// ECDH streams its points; the leader keeps, per follower, a table of the
// follower's doubly-blinded points (≈ 45 B each) and the replies to its
// own (32 B each) plus a 4-byte shuffle per item; a follower keeps its
// shuffle only. With 10M IDs per party that is about 1 GiB at the leader
// besides the input strings.
package psi
