// Package he is Veil's CKKS layer (lattigo v5): parameter sets, N-of-N
// collective keys, collective decryption and key switching with flooding
// noise, and a checked wire format.
//
// # Parameter sets (HE standard, 128-bit, ternary secret)
//
//	name                          LogN  ring  LogQ            LogP    logQP  bound  flooding σ
//	veil-train-coeff-n13-q105     13    std   {60,45}         –       105    218    2^26
//	veil-score-ci-n14-q347        14    CI    {55,45,45,45,45} {56,56} 347    438    2^20
//	veil-score-ci-n13-q165        13    CI    {60,45}         {60}    165    218    2^20
//
// New refuses a literal above the bound for its LogN, and any flooding σ
// below MinSmudgingSigma (2^20). The training set is the field notes'
// "variant B": values in polynomial coefficients, so the vertical-LR
// gradient needs one plaintext×ciphertext product per (feature group, row
// block) and no rotations, no relinearisation key, no Galois keys and no P:
// the collective setup is CKG only. The scoring sets use slots
// (conjugate-invariant ring: N real slots) with q0 and the scale large enough
// that flooding of σ = 2^20 costs ≈ 2^-15 on a decrypted logit.
//
// # Parties and what they learn
//
// Each job has N key holders (providers, the label holder, the platform),
// each a KeyParty with a ternary secret share s_i; the collective secret is
// Σ s_i. CKG: from a public CRS seed every party sends crp·s_i + e_i; anyone
// (the platform) sums them into the collective public key. Nobody learns
// another party's s_i (RLWE).
//
// Results leave the collective key only by a collective key switch:
//
//   - CKS to the zero key (joint decryption): party i sends s_i·c1 + e_i with
//     e_i of standard deviation σ_flood. For coefficient-encoded results a
//     share is bound to the coefficients it may reveal: every other
//     coefficient gets fresh uniform noise mod q in that share, so the sum of
//     all shares opens only those coefficients. The owner of a result also
//     masks the revealed coefficients with a one-time pad mod q0 (CoeffMask)
//     before asking for shares, so whoever sums the shares (the platform)
//     sees uniform values; only the owner removes the pad.
//   - PCKS to a recipient's public key (e.g. a bank's): party i sends
//     (s_i·c1 + u_i·pk0 + e0_i + e_flood, u_i·pk1 + e1_i); the sum switches
//     the ciphertext to the recipient, who decrypts alone (RecipientKey).
//
// Every CKS/PCKS share carries flooding noise: the protocols are built only
// from the parameter set's σ, there is no API to make a share without it,
// and a test measures the noise of emitted shares. (CKKS decryption without
// flooding leaks the key: Li–Micciancio 2021.)
//
// # Wire format
//
// Every object is "VHE1" | kind | 8-byte parameter fingerprint | body. The
// fingerprint is a hash of the set's name, lattigo parameters and σ, so an
// object made under another set (other LogN, moduli, ring) is rejected before
// parsing (ErrParamsMismatch). The body size is fixed by the header and the
// parameters and is checked exactly; every coefficient must be reduced mod
// its prime; ciphertexts must be degree 1, NTT form, within the set's levels
// and at the level the caller expects. Garbage yields ErrMalformed, never a
// panic (FuzzUnmarshal).
//
// # Security assumptions
//
// Semi-honest parties (they follow the protocol; shares are not proven
// correct); N-of-N trust: any single party, the platform included, or any
// coalition short of all N learns nothing from ciphertexts. A coalition of
// all key holders can decrypt anything. Secret shares stay with their holder
// (MarshalSecret is for its own storage only). The CRS seed is public.
//
// Lattigo objects are not goroutine-safe; Parallel runs work across
// ciphertexts with one ShallowCopy per goroutine.
package he
