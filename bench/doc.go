// Package bench holds Veil's end-to-end benchmarks, each of which reports
// its figures beside a baseline measured in the same run, since the
// reference machines are shared and noisy:
//
//   - RunPSI: an n x n two-party alignment (ECDH or KKRT) and, for ECDH, the
//     floor: the same number of raw ristretto255 hash-to-group operations
//     and scalar multiplications on all cores. `veil bench psi`.
//   - RunTrain: one epoch of vertical logistic regression under CKKS in
//     FATE's benchmark shape (30 + 300 features) against plaintext Go on the
//     same data. `veil bench train`.
//   - scoring: batch scoring with a fresh grant per enterprise, grant checks
//     and the audit log included, against the encryption work alone.
//     `veil bench score`.
//
// Figures measured on the reference machine are in README.md beside this
// file, with the commands that produced them. Nothing here runs in `go
// test` beyond small smoke tests: speed targets live in benchmarks.
package bench
