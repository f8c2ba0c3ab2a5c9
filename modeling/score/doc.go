// Package score is encrypted scoring for banks: the parties' partial logits
// are added under a collective CKKS key and switched to the bank's own key,
// so only the bank sees a score; a pre-screen mode gives the bank pass/fail
// only; verification answers yes/no questions signed by the provider.
//
// # Keys
//
// A model's scoring key (parameter set DefaultParamSet, LogN 14,
// conjugate-invariant ring: 16384 enterprises per ciphertext) is set up when
// the model is registered, among the parties holding the model's features
// and the platform only: a label holder that contributed only labels is not
// a key holder and need not be online to serve the model. Each key holder
// (KeyHolder) draws a secret share; the platform (KeyCoordinator) sums the
// CKG shares into the collective public key and runs the two RKG rounds for
// a relinearisation key (needed by the pre-screen polynomial). Each party
// stores its share in its own data directory. A bank makes its own key pair
// (BankKey); only the public half, tagged with the parameter fingerprint,
// goes to the platform, and a key of another parameter set is rejected
// (ErrWrongParams).
//
// # Scoring
//
//	provider k:  u_k = x_k·w_k for every enterprise of the batch (features
//	             preprocessed exactly as in training), encrypted under the
//	             collective key, many enterprises per ciphertext (slot i of
//	             ciphertext j = row j·16384+i of the request)
//	platform:    c = Σ_k Enc(u_k) + b   (b: the model's intercept)
//	all holders: PCKS shares of c towards the bank's public key, each with
//	             flooding noise (σ = 2^20)
//	platform:    sums the shares: c' is under the bank's key only
//	bank:        z = Dec(c'), PD = sigmoid(z), points = scorecard(z)
//
// The intercept is a model parameter, not data: the platform holds it in
// plaintext (taken from the label holder at registration) and adds it to
// every sum. In score mode the parties encrypt at level 0 (no multiplication
// follows); the decrypted logit is within about 1e-4 of the plaintext one
// (flooding of 4 key holders at scale 2^45).
//
// Pre-screen: the parties encrypt -u_k/D at the top level; the platform adds
// (logit(cutoff) - b)/D and evaluates StepPolynomial, a degree-15 Chebyshev
// interpolant of 0.5+0.5·erf(6t) on [-1, 1] (exactly the four levels of the
// set), before the key switch. The bank decrypts ≈ 1 (pass: PD below the
// cutoff) or ≈ 0 (fail) and thresholds at 0.5; the flooded output is within
// 0.02 of 0 or 1 whenever |logit - logit(cutoff)| ≥ D/4 and on the right
// side of 0.5 for any nonzero difference within ±D. D (default 16) must bound
// |logit - logit(cutoff)|: outside [-1, 1] the polynomial is meaningless.
//
// Enterprises a provider lacks: the row is refused with "unknown enterprise
// at <provider>" (no imputation), and it is dropped from the batch before
// any party encrypts, so the bank never receives a sum of a subset of the
// providers. This tells the platform and the bank that this provider has no
// record of the enterprise.
//
// # What each party learns
//
//   - Providers: their own u_k; nothing from the ciphertexts they switch.
//   - Platform: the request (enterprises, grants, model), which rows were
//     refused and why, the cutoff of a pre-screen; no u_k and no score (every
//     ciphertext it holds is under the collective key or the bank's key;
//     tests decrypt the recorded messages with each single share).
//   - Bank: the sum z (score mode) or the step output (pre-screen) for the
//     rows it was granted, never a single provider's u_k. In pre-screen mode,
//     enterprises within D/4 of the cutoff yield an output between 0 and 1
//     that reveals roughly how close the score is to the cutoff.
//
// # Verification and query
//
// A provider answers "E's field F op value" (ge, gt, le, lt, eq, ne) with a
// VerifyResult: the statement (provider, enterprise, field, op, value,
// answer, bank, grant ID, time) signed with the provider's Ed25519 key, kept
// in its data dir (LoadOrCreateSigningKey) and published via the platform.
// Anyone checks it offline with the provider's public key (Check). A query
// returns the raw value and is allowed only under a query: scope (the hub
// enforces scopes with the grant package at the platform and the provider).
//
// # Security assumptions
//
// Semi-honest parties; N-of-N trust in the scoring key (any coalition short
// of all key holders learns nothing from the ciphertexts). A platform that
// deviates could ask for the key switch of a single provider's ciphertext or
// towards a key of its own; providers limit this by switching only once per
// request they encrypted for, but do not authenticate the bank key beyond
// the platform's registry. Flooding σ = 2^20 follows the he package.
package score
