package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Party is one output file: its name and the source columns it keeps after uscc.
type Party struct {
	Name    string
	Columns []string
}

// attrs returns "Attr<n>" for each n.
func attrs(ns ...int) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = "Attr" + strconv.Itoa(n)
	}
	return out
}

// Providers groups the 64 ratios by what they measure (see the attribute
// table in examples/data/README.md). The tax office sees the income
// statement (profitability), the social-insurance fund stands in for
// balance-sheet structure (leverage, liquidity, size), the utility for
// operating activity (turnover and cycle times).
var Providers = []Party{
	{Name: "tax", Columns: attrs(1, 6, 7, 11, 12, 13, 14, 18, 19, 22, 23, 24, 31, 35, 39, 42, 48, 49, 56, 58)},
	{Name: "social", Columns: attrs(2, 3, 4, 5, 8, 10, 15, 16, 17, 25, 26, 27, 28, 29, 30, 37, 38, 40, 41, 46, 50, 51, 53, 54, 55, 57, 59)},
	{Name: "utility", Columns: attrs(9, 20, 21, 32, 33, 34, 36, 43, 44, 45, 47, 52, 60, 61, 62, 63, 64)},
}

// Config controls a split.
type Config struct {
	IDColumn     string  // key column kept in every file
	LabelColumn  string  // source label column, written to bank.csv as "y"
	Seed         uint64  // seed of the rows each provider misses
	DropFraction float64 // fraction of rows each provider misses
}

func main() {
	in := flag.String("in", "", "path of polish_1year.csv (uscc, Attr1..Attr64, class)")
	out := flag.String("out", "examples/data/polish", "output directory")
	seed := flag.Uint64("seed", 20240607, "seed for the rows each provider misses")
	drop := flag.Float64("drop", 0.04, "fraction of rows each provider misses")
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "polish-split: -in is required")
		flag.Usage()
		os.Exit(2)
	}
	cfg := Config{IDColumn: "uscc", LabelColumn: "class", Seed: *seed, DropFraction: *drop}
	counts, err := SplitFile(*in, *out, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "polish-split:", err)
		os.Exit(1)
	}
	for _, name := range []string{"bank", "tax", "social", "utility"} {
		fmt.Printf("%s.csv: %d rows\n", name, counts[name])
	}
}

// SplitFile reads the source CSV and writes bank.csv, tax.csv, social.csv and
// utility.csv into dir. It returns the data-row count of each file.
func SplitFile(in, dir string, cfg Config) (map[string]int, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	header, rows, err := readAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	files, err := Split(header, rows, cfg)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for name, recs := range files {
		if err := writeCSV(filepath.Join(dir, name+".csv"), recs); err != nil {
			return nil, err
		}
		counts[name] = len(recs) - 1
	}
	return counts, nil
}

// Split returns the records (header first) of each output file by party name.
func Split(header []string, rows [][]string, cfg Config) (map[string][][]string, error) {
	if cfg.DropFraction < 0 || cfg.DropFraction >= 1 {
		return nil, fmt.Errorf("drop fraction %v must be in [0, 1)", cfg.DropFraction)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	need := []string{cfg.IDColumn, cfg.LabelColumn}
	used := map[string]string{}
	for _, p := range Providers {
		for _, c := range p.Columns {
			if prev, dup := used[c]; dup {
				return nil, fmt.Errorf("column %s given to both %s and %s", c, prev, p.Name)
			}
			used[c] = p.Name
			need = append(need, c)
		}
	}
	for _, c := range need {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("input has no column %s", c)
		}
	}
	id, label := col[cfg.IDColumn], col[cfg.LabelColumn]
	out := map[string][][]string{}

	bank := [][]string{{cfg.IDColumn, "y"}}
	for _, r := range rows {
		bank = append(bank, []string{r[id], r[label]})
	}
	out["bank"] = bank

	n := len(rows)
	k := int(math.Round(cfg.DropFraction * float64(n)))
	for p, party := range Providers {
		// A separate stream per provider, so each misses different rows.
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(p+1)))
		missing := map[int]bool{}
		for _, i := range rng.Perm(n)[:k] {
			missing[i] = true
		}
		idx := []int{id}
		for _, c := range party.Columns {
			idx = append(idx, col[c])
		}
		recs := [][]string{append([]string{cfg.IDColumn}, party.Columns...)}
		for i, r := range rows {
			if missing[i] {
				continue
			}
			rec := make([]string, len(idx))
			for j, c := range idx {
				rec[j] = r[c]
			}
			recs = append(recs, rec)
		}
		out[party.Name] = recs
	}
	return out, nil
}

func readAll(r io.Reader) ([]string, [][]string, error) {
	cr := csv.NewReader(r)
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("read CSV: %w", err)
	}
	if len(recs) < 2 {
		return nil, nil, errors.New("no data rows")
	}
	return recs[0], recs[1:], nil
}

func writeCSV(path string, recs [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
