// Command polish-split splits the Polish companies bankruptcy data (1year,
// with synthetic USCC keys) vertically into the four parties of the Veil
// demo: a bank that holds only the label, and three data providers that each
// hold one family of financial ratios. Each provider file misses a different
// random ~4% of the companies (fixed seed), so PSI alignment has work to do.
//
//	go run ./examples/polish-split -in /path/to/polish_1year.csv -out examples/data/polish
//
// The output is deterministic: the same input, seed and fraction give the
// same bytes. Cell text is copied verbatim (numbers are never reformatted).
package main
