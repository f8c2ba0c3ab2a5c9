package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func sourceTable(n int) ([]string, [][]string) {
	header := []string{"uscc"}
	for i := 1; i <= 64; i++ {
		header = append(header, "Attr"+strconv.Itoa(i))
	}
	header = append(header, "class")
	var rows [][]string
	for r := 0; r < n; r++ {
		row := []string{"ID" + strconv.Itoa(r)}
		for i := 1; i <= 64; i++ {
			row = append(row, strconv.Itoa(r)+"."+strconv.Itoa(i))
		}
		rows = append(rows, append(row, strconv.Itoa(r%2)))
	}
	return header, rows
}

func TestSplit(t *testing.T) {
	header, rows := sourceTable(1000)
	cfg := Config{IDColumn: "uscc", LabelColumn: "class", Seed: 7, DropFraction: 0.04}
	out, err := Split(header, rows, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := out["bank"][0]; !reflect.DeepEqual(got, []string{"uscc", "y"}) {
		t.Errorf("bank header %v", got)
	}
	if len(out["bank"]) != 1001 || out["bank"][10][1] != "1" {
		t.Errorf("bank rows %d", len(out["bank"]))
	}
	held := map[string]bool{}
	var missing []map[string]bool
	for _, p := range Providers {
		recs := out[p.Name]
		if len(recs) != 1+960 {
			t.Errorf("%s: %d rows, want 960", p.Name, len(recs)-1)
		}
		for _, c := range recs[0][1:] {
			if held[c] {
				t.Errorf("column %s in two files", c)
			}
			held[c] = true
		}
		present := map[string]bool{}
		for _, r := range recs[1:] {
			present[r[0]] = true
			// Values are copied verbatim from the right source row and column.
			row, _ := strconv.Atoi(strings.TrimPrefix(r[0], "ID"))
			for j, c := range recs[0][1:] {
				if want := strconv.Itoa(row) + "." + strings.TrimPrefix(c, "Attr"); r[j+1] != want {
					t.Fatalf("%s row %s column %s = %s, want %s", p.Name, r[0], c, r[j+1], want)
				}
			}
		}
		m := map[string]bool{}
		for _, r := range rows {
			if !present[r[0]] {
				m[r[0]] = true
			}
		}
		missing = append(missing, m)
	}
	if len(held) != 64 {
		t.Errorf("providers hold %d columns, want 64", len(held))
	}
	if reflect.DeepEqual(missing[0], missing[1]) || reflect.DeepEqual(missing[1], missing[2]) {
		t.Error("two providers miss the same rows")
	}
	again, _ := Split(header, rows, cfg)
	if !reflect.DeepEqual(out, again) {
		t.Error("split is not deterministic")
	}
	if _, err := Split(header[:10], rows, cfg); err == nil {
		t.Error("input without all columns accepted")
	}
	if _, err := Split(header, rows, Config{IDColumn: "uscc", LabelColumn: "class", DropFraction: 1}); err == nil {
		t.Error("drop fraction 1 accepted")
	}
}

func TestSplitFileReproducesBundledData(t *testing.T) {
	src := "/work/shared/data/enterprise/polish_1year.csv"
	if _, err := os.Stat(src); err != nil {
		t.Skipf("source data not present: %v", err)
	}
	dir := t.TempDir()
	counts, err := SplitFile(src, dir, Config{IDColumn: "uscc", LabelColumn: "class", Seed: 20240607, DropFraction: 0.04})
	if err != nil {
		t.Fatal(err)
	}
	if counts["bank"] != 7027 || counts["tax"] != 6746 {
		t.Errorf("counts %v", counts)
	}
	for _, name := range []string{"bank", "tax", "social", "utility"} {
		got, err := os.ReadFile(filepath.Join(dir, name+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "data", "polish", name+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s.csv differs from the bundled file", name)
		}
	}
}
