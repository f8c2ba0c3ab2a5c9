package dataset

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// FuzzReadCSV feeds arbitrary bytes to the CSV path. It must never panic, and
// whatever it accepts must satisfy the Table invariants, and reloading the
// same input with the fitted transform must give the same features.
// Run longer with: go test ./modeling/dataset -run '^$' -fuzz FuzzReadCSV -fuzztime 30s
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("id,y,a,b\n1,0,1.5,x\n2,1,,y\n3,0,NA,x\n"), uint8(0))
	f.Add([]byte("id,y,a\n1,1,2\n1,0,3\n"), uint8(1))
	f.Add([]byte("\ufeffuscc,a\n91990101100482908N,1\n91990101100482908X,2\n"), uint8(3))
	f.Add([]byte("id,a\n\"1\n2\",3\n2,\"4\"\"\"\n"), uint8(2))
	f.Add([]byte("id,y,a\n1,1,1e400\n2,0,-0\n"), uint8(5))
	f.Add([]byte("id,a,b\n1,2\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		opt := Options{
			IDColumn:          "id",
			SkipBadRows:       flags&1 != 0,
			MissingIndicators: flags&2 != 0,
			NoStandardize:     flags&8 != 0,
			MaxCategories:     int(flags>>4) % 4,
			Clip:              float64(flags>>6) * 0.1,
		}
		if flags&4 != 0 {
			opt.IDColumn, opt.IDFormat = "uscc", "uscc"
		}
		if bytes.HasPrefix(data, []byte("id,y")) {
			opt.LabelColumn = "y"
		}
		tab, err := ReadCSV(bytes.NewReader(data), opt)
		if err != nil {
			return
		}
		n := tab.Rows()
		if n == 0 {
			t.Fatal("accepted a table with no rows")
		}
		seen := map[string]bool{}
		for _, id := range tab.IDs {
			if id == "" || id != NormalizeID(id) || seen[id] {
				t.Fatalf("bad or repeated ID %q", id)
			}
			seen[id] = true
			if opt.IDFormat == "uscc" && ValidUSCC(id) != nil {
				t.Fatalf("invalid USCC %q accepted", id)
			}
		}
		if len(tab.Columns) != len(tab.FeatureNames) {
			t.Fatalf("%d columns, %d names", len(tab.Columns), len(tab.FeatureNames))
		}
		for j, c := range tab.Columns {
			if len(c) != n {
				t.Fatalf("column %d has %d rows, want %d", j, len(c), n)
			}
			for _, v := range c {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("column %s holds %v", tab.FeatureNames[j], v)
				}
			}
		}
		if opt.LabelColumn != "" {
			if len(tab.Labels) != n {
				t.Fatalf("%d labels for %d rows", len(tab.Labels), n)
			}
			for _, y := range tab.Labels {
				if y != 0 && y != 1 {
					t.Fatalf("label %v", y)
				}
			}
		}
		if err := tab.Transform.Validate(); err != nil {
			t.Fatalf("fitted transform invalid: %v", err)
		}
		again, err := ReadCSVWithTransform(bytes.NewReader(data), tab.Transform)
		if err != nil {
			t.Fatalf("reload with the fitted transform: %v", err)
		}
		if !reflect.DeepEqual(again.IDs, tab.IDs) || !reflect.DeepEqual(again.Columns, tab.Columns) {
			t.Fatal("reload with the fitted transform gives different features")
		}
	})
}
