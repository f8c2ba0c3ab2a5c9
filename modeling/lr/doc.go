// Package lr is vertical (feature-partitioned) logistic regression under
// CKKS with an N-of-N collective key, for one label holder and k ≥ 1 data
// providers, coordinated by the platform.
//
// # Parties
//
//   - LabelParty (the bank): labels y, optionally features X_B, and the
//     intercept. y never leaves it.
//   - FeatureParty (each provider): features X_k. They never leave it.
//   - Coordinator (the platform): relays, sums ciphertexts and shares, runs
//     the batch schedule and early stopping. It is one of the N key holders,
//     so nothing decrypts without it, but it holds no key that decrypts
//     anything alone, and it only ever opens the loss.
//
// Each party keeps its own weights w_p for ever; the model is the set of
// parts. All methods consume and produce serialized messages (messages.go),
// so the in-process driver (TrainInProcess) and the gRPC services run the
// same code path.
//
// # One iteration (batch of B rows, same schedule at every party)
//
//  1. Every party p computes u_p = X_p·w_p on the batch and encrypts its
//     residual share c_p under the collective key: c_p = u_p/4 for a
//     provider, c_B = u_B/4 + 1/2 − y for the label holder. Coefficient
//     packing: block k of m = N/kg rows in coefficients 0..m−1.
//  2. The coordinator adds the shares: Enc(d), d = σ_T(z) − y with the
//     Taylor-1 sigmoid σ_T(z) = 1/2 + z/4 (as FATE).
//  3. Every party computes Enc(X_p^T d / B) with one plaintext×ciphertext
//     product per (feature group, block): its features, reversed within each
//     block, make coefficient j·m + m − 1 of the product the inner sum for
//     feature j — no rotations, no evaluation keys. It adds a one-time pad
//     to those coefficients (only it knows the pad), and computes its loss
//     term Enc(⟨d, c_p⟩/B) + λ/4·‖w_p‖² the same way.
//  4. Every key holder sends decryption shares (flooded, σ = 2^26) for every
//     gradient ciphertext and the summed loss; each share opens only the
//     protocol's target coefficients (randomising all others), and a party
//     refuses requests for more. The coordinator sums them and returns each
//     party the sum for its own ciphertexts; the party opens them, removes
//     its pad and steps w_p ← w_p − η_t (g_p + λ w_p), η_t = η/(1 + decay·t).
//  5. The coordinator opens the loss: Σ_p ⟨d, c_p⟩ = ‖d‖², and the Taylor
//     loss is log 2 − 1/2 + 2‖d‖²/B (+ λ/2‖w‖²) — an exact identity of the
//     Taylor-1 loss, so the loss is computed under encryption with the
//     gradient's products. Early stopping: stop after Patience epochs whose
//     loss improved by less than Tol.
//
// Mini-batches: rows are permuted once from the shared seed and cut into
// fixed batches (so feature plaintexts can be pre-encoded and cached); each
// epoch visits them in an order drawn from (seed, epoch).
//
// # What each party learns
//
// Providers and the label holder: the collective public key, Enc(d) (can't
// decrypt), their own gradient X_p^T d / B each iteration (as in FATE and
// every vertical-LR protocol: it is what they need to update w_p), and the
// loss. The coordinator: ciphertexts, padded gradients (uniform to it), the
// loss, set sizes. No message contains a raw feature value or a label
// (TestWireCarriesNoRawValues), and the coordinator's share alone decrypts
// nothing (TestCoordinatorCannotDecryptAlone).
//
// Assumptions: semi-honest parties (a malicious coordinator could, e.g., ask
// for decryption of Enc(d) at the target positions; parties limit a share to
// kg target coefficients per ciphertext but do not otherwise authenticate
// what they decrypt); no collusion of all key holders; the gradients
// revealed to their owners are accepted leakage, as in FATE.
//
// # Evaluation on the test split (eval.go)
//
// After training, under the same collective key: each provider encrypts its
// test partial logits X_k^test·w_k (slot packing), the coordinator adds them
// and every key holder (the parties and the coordinator) sends PCKS shares
// switching the sum to a fresh key of the label holder, who decrypts Σ_k u_k,
// adds its own partial logits and intercept and computes AUC, KS and ROC with
// its labels. The label holder learns the per-row sum of the providers'
// partial logits on the test rows (with one provider: that provider's), no
// single one when there are several; providers learn nothing; the coordinator
// sees ciphertexts only and the metrics the label holder reports.
//
// # Checkpoints
//
// Party.Snapshot / Coordinator.Snapshot after a completed iteration hold the
// weights, the iteration counter and the early-stopping state (the schedule
// is a function of the seed and the counter). No key material is kept: no
// ciphertext outlives an iteration, so a resumed job runs a fresh CKG. The
// resumed model equals the uninterrupted one up to HE noise (~1e-6).
//
// TrainPlaintext is the same algorithm trained centrally (reference
// plaintext_auc); on default_credit (FATE split, 70/30) both reach test AUC
// 0.7204.
package lr
