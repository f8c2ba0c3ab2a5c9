package exampledata

import "embed"

// Polish holds polish/{bank,tax,social,utility}.csv: the Polish bankruptcy
// data (1year) split by columns into a label-holding bank and three data
// providers, keyed by USCC-style enterprise IDs.
//
//go:embed polish/*.csv
var Polish embed.FS
