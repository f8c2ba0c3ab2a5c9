package dataset

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.csv")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, content string, opt Options) *Table {
	t.Helper()
	tab, err := LoadCSV(writeFile(t, content), opt)
	if err != nil {
		t.Fatalf("LoadCSV: %v", err)
	}
	return tab
}

func loadErr(t *testing.T, content string, opt Options) error {
	t.Helper()
	_, err := LoadCSV(writeFile(t, content), opt)
	if err == nil {
		t.Fatalf("LoadCSV accepted %q", content)
	}
	return err
}

func col(t *testing.T, tab *Table, name string) []float64 {
	t.Helper()
	for j, n := range tab.FeatureNames {
		if n == name {
			return tab.Columns[j]
		}
	}
	t.Fatalf("no feature %s in %v", name, tab.FeatureNames)
	return nil
}

func near(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-12 {
			return false
		}
	}
	return true
}

func TestStandardisedNumericAndNormalisedIDs(t *testing.T) {
	tab := load(t, "id,a,b,y\n ab ,1,10,0\ncd,2,10,1\nEf,3,10,0\ngh,6,10,1\n",
		Options{IDColumn: "id", LabelColumn: "y"})
	if want := []string{"AB", "CD", "EF", "GH"}; !reflect.DeepEqual(tab.IDs, want) {
		t.Errorf("IDs = %v, want %v", tab.IDs, want)
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Errorf("features = %v", tab.FeatureNames)
	}
	// a: mean 3, population sd sqrt((4+1+0+9)/4) = sqrt(3.5).
	sd := math.Sqrt(3.5)
	if want := []float64{-2 / sd, -1 / sd, 0, 3 / sd}; !near(col(t, tab, "a"), want) {
		t.Errorf("a = %v, want %v", col(t, tab, "a"), want)
	}
	// b is constant: kept, all zeros.
	if want := []float64{0, 0, 0, 0}; !near(col(t, tab, "b"), want) {
		t.Errorf("constant b = %v", col(t, tab, "b"))
	}
	if !reflect.DeepEqual(tab.Labels, []float64{0, 1, 0, 1}) || tab.LabelName != "y" {
		t.Errorf("labels = %v (%s)", tab.Labels, tab.LabelName)
	}
	if tab.Rows() != 4 {
		t.Errorf("Rows = %d", tab.Rows())
	}
}

func TestMissingValuesImputedWithMedian(t *testing.T) {
	content := "id,a,b\n" +
		"1,1,5\n2,,5\n3,NA,5\n4,n/a,5\n5,?,5\n6,NULL,5\n7,nan,5\n8,3,5\n9,10,5\n10, 2 ,5\n"
	tab := load(t, content, Options{IDColumn: "id", NoStandardize: true, MissingIndicators: true})
	// Parsed a values 1, 3, 10, 2: median (2+3)/2 = 2.5.
	want := []float64{1, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 3, 10, 2}
	if got := col(t, tab, "a"); !near(got, want) {
		t.Errorf("a = %v, want %v", got, want)
	}
	if got := col(t, tab, "a_missing"); !near(got, []float64{0, 1, 1, 1, 1, 1, 1, 0, 0, 0}) {
		t.Errorf("a_missing = %v", got)
	}
	// b had no missing value: no indicator.
	if want := []string{"a", "a_missing", "b"}; !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Errorf("features = %v, want %v", tab.FeatureNames, want)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "imputed 6 missing values in 1 columns") {
		t.Errorf("warnings = %q", tab.Warnings)
	}
	// Without indicators there is no _missing column.
	tab = load(t, content, Options{IDColumn: "id", NoStandardize: true})
	if want := []string{"a", "b"}; !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Errorf("features = %v, want %v", tab.FeatureNames, want)
	}
}

func TestTextColumnsOneHot(t *testing.T) {
	content := "id,city,n\n1,Paris,1\n2,Rome,2\n3,Paris,3\n4,,4\n5,Oslo,5\n6,Paris,6\n7,Rome,7\n"
	tab := load(t, content, Options{IDColumn: "id", NoStandardize: true, MissingIndicators: true})
	// Ordered by decreasing frequency, then by value.
	want := []string{"city=Paris", "city=Rome", "city=Oslo", "city_missing", "n"}
	if !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Fatalf("features = %v, want %v", tab.FeatureNames, want)
	}
	if got := col(t, tab, "city=Paris"); !near(got, []float64{1, 0, 1, 0, 0, 1, 0}) {
		t.Errorf("city=Paris = %v", got)
	}
	if got := col(t, tab, "city=Oslo"); !near(got, []float64{0, 0, 0, 0, 1, 0, 0}) {
		t.Errorf("city=Oslo = %v", got)
	}
	// The missing city is no category, with the indicator set.
	if got := tab.Row(3)[:4]; !near(got, []float64{0, 0, 0, 1}) {
		t.Errorf("row with missing city = %v", got)
	}

	// A cap of 2 keeps the most frequent value and folds the rest into <other>.
	tab = load(t, content, Options{IDColumn: "id", NoStandardize: true, MaxCategories: 2})
	if want := []string{"city=Paris", "city=<other>", "n"}; !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Fatalf("capped features = %v, want %v", tab.FeatureNames, want)
	}
	if got := col(t, tab, "city=<other>"); !near(got, []float64{0, 1, 0, 0, 1, 0, 1}) {
		t.Errorf("city=<other> = %v", got)
	}
	var capped bool
	for _, w := range tab.Warnings {
		capped = capped || strings.Contains(w, "city has 3 distinct text values")
	}
	if !capped {
		t.Errorf("no cap warning in %q", tab.Warnings)
	}

	// Categorical forces one-hot on numeric-looking codes.
	tab = load(t, "id,zip\n1,0100\n2,0200\n3,0100\n", Options{IDColumn: "id", NoStandardize: true, Categorical: []string{"zip"}})
	if want := []string{"zip=0100", "zip=0200"}; !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Errorf("forced categorical features = %v", tab.FeatureNames)
	}
}

func TestUnparsableNumber(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,a\n")
	for i := 1; i <= 20; i++ {
		v := fmt.Sprint(i)
		if i == 7 {
			v = "12,5x"
		}
		fmt.Fprintf(&b, "%d,%q\n", i, v)
	}
	err := loadErr(t, b.String(), Options{IDColumn: "id"})
	// Row i is on line i+1.
	if !strings.Contains(err.Error(), "line 8") || !strings.Contains(err.Error(), "unparsable number in column a") {
		t.Errorf("error %q does not name line 8 and column a", err)
	}
	if strings.Contains(err.Error(), "12,5x") {
		t.Errorf("error %q quotes the cell value", err)
	}
	tab := load(t, b.String(), Options{IDColumn: "id", SkipBadRows: true})
	if tab.Rows() != 19 {
		t.Errorf("rows = %d, want 19", tab.Rows())
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "skipped 1 rows: unparsable number in column a (lines 8)") {
		t.Errorf("warnings = %q", tab.Warnings)
	}
}

func TestDuplicateIDs(t *testing.T) {
	content := "id,a\nx1,1\nx2,2\n X1 ,3\nx3,4\nx2,5\n"
	err := loadErr(t, content, Options{IDColumn: "id"})
	if !strings.Contains(err.Error(), "line 4: duplicate ID") || !strings.Contains(err.Error(), "first seen at line 2") {
		t.Errorf("error %q does not name both lines", err)
	}
	tab := load(t, content, Options{IDColumn: "id", SkipBadRows: true, NoStandardize: true})
	if want := []string{"X1", "X2", "X3"}; !reflect.DeepEqual(tab.IDs, want) {
		t.Errorf("IDs = %v, want %v", tab.IDs, want)
	}
	// The first occurrence is kept.
	if got := col(t, tab, "a"); !near(got, []float64{1, 2, 4}) {
		t.Errorf("a = %v", got)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "skipped 2 rows: duplicate ID (the first occurrence is kept) (lines 4, 6)") {
		t.Errorf("warnings = %q", tab.Warnings)
	}
}

func TestBadUSCC(t *testing.T) {
	good1, _ := USCCFromSeed(1, 1, 1)
	good2, _ := USCCFromSeed(1, 1, 2)
	badCheck := good2[:17] + "0"
	content := "uscc,a\n" + strings.ToLower(good1) + ",1\n" + badCheck + ",2\n" + good2 + ",3\nnot-a-code,4\n"
	err := loadErr(t, content, Options{IDColumn: "uscc", IDFormat: "uscc"})
	if !strings.Contains(err.Error(), "line 3: invalid USCC") {
		t.Errorf("error %q does not name line 3", err)
	}
	if strings.Contains(err.Error(), badCheck) {
		t.Errorf("error %q quotes the ID", err)
	}
	tab := load(t, content, Options{IDColumn: "uscc", IDFormat: "uscc", SkipBadRows: true})
	if want := []string{good1, good2}; !reflect.DeepEqual(tab.IDs, want) {
		t.Errorf("IDs = %v, want %v", tab.IDs, want)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "skipped 2 rows: invalid USCC (lines 3, 5)") {
		t.Errorf("warnings = %q", tab.Warnings)
	}
	// Without IDFormat any non-empty ID is accepted.
	if tab := load(t, content, Options{IDColumn: "uscc"}); tab.Rows() != 4 {
		t.Errorf("rows without format = %d", tab.Rows())
	}
	if err := loadErr(t, content, Options{IDColumn: "uscc", IDFormat: "lei"}); !strings.Contains(err.Error(), "unknown ID format") {
		t.Errorf("error = %v", err)
	}
}

func TestEmptyID(t *testing.T) {
	content := "id,a\n1,1\n  ,2\n3,3\n"
	err := loadErr(t, content, Options{IDColumn: "id"})
	if !strings.Contains(err.Error(), "line 3: empty ID") {
		t.Errorf("error = %q", err)
	}
	if tab := load(t, content, Options{IDColumn: "id", SkipBadRows: true}); tab.Rows() != 2 {
		t.Errorf("rows = %d, want 2", tab.Rows())
	}
}

func TestWrongFieldCountIsAlwaysAnError(t *testing.T) {
	for _, content := range []string{
		"id,a,b\n1,1,2\n2,3\n3,4,5\n",     // short row on line 3
		"id,a,b\n1,1,2\n2,3,4,9\n3,4,5\n", // long row on line 3
	} {
		for _, skip := range []bool{false, true} {
			err := loadErr(t, content, Options{IDColumn: "id", SkipBadRows: skip})
			if !strings.Contains(err.Error(), "line 3:") || !strings.Contains(err.Error(), "but the header has 3") {
				t.Errorf("error %q does not name line 3", err)
			}
		}
	}
	// A quoted field spanning lines: the next record's line is still right.
	err := loadErr(t, "id,a\n1,\"x\ny\"\n2\n", Options{IDColumn: "id"})
	if !strings.Contains(err.Error(), "line 4:") {
		t.Errorf("error %q does not name line 4", err)
	}
}

func TestConstantColumnStaysZeroAtScoring(t *testing.T) {
	tab := load(t, "id,a,c\n1,1,7\n2,2,7\n3,3,7\n", Options{IDColumn: "id"})
	if got := col(t, tab, "c"); !near(got, []float64{0, 0, 0}) {
		t.Errorf("c = %v", got)
	}
	x, err := tab.Transform.Apply(map[string]string{"a": "2", "c": "1000"})
	if err != nil {
		t.Fatal(err)
	}
	if x[1] != 0 {
		t.Errorf("constant column at scoring = %v, want 0", x[1])
	}
}

func TestAllMissingColumn(t *testing.T) {
	tab := load(t, "id,a,e\n1,1,\n2,2,NA\n3,3,?\n", Options{IDColumn: "id", MissingIndicators: true})
	if got := col(t, tab, "e"); !near(got, []float64{0, 0, 0}) {
		t.Errorf("e = %v", got)
	}
	// The indicator is constant (all 1) and so also 0 after standardising.
	if got := col(t, tab, "e_missing"); !near(got, []float64{0, 0, 0}) {
		t.Errorf("e_missing = %v", got)
	}
	var warned bool
	for _, w := range tab.Warnings {
		warned = warned || strings.Contains(w, "column e has no values")
	}
	if !warned {
		t.Errorf("no warning in %q", tab.Warnings)
	}
}

func TestLabels(t *testing.T) {
	tab := load(t, "id,y,a\n1,1.0,1\n2,0,2\n3, 1 ,3\n", Options{IDColumn: "id", LabelColumn: "y"})
	if !reflect.DeepEqual(tab.Labels, []float64{1, 0, 1}) {
		t.Errorf("labels = %v", tab.Labels)
	}
	for _, tc := range []struct{ content, want string }{
		{"id,y,a\n1,1,1\n2,2,2\n", "line 3: label is not 0 or 1"},
		{"id,y,a\n1,1,1\n2,yes,2\n", "line 3: label is not 0 or 1"},
		{"id,y,a\n1,1,1\n2,,2\n", "line 3: missing label"},
	} {
		if err := loadErr(t, tc.content, Options{IDColumn: "id", LabelColumn: "y"}); !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q, want %q", err, tc.want)
		}
	}
	// Without a label column, y is an ordinary feature and Labels is nil.
	tab = load(t, "id,y\n1,1\n2,0\n", Options{IDColumn: "id"})
	if tab.Labels != nil || tab.FeatureNames[0] != "y" {
		t.Errorf("labels %v, features %v", tab.Labels, tab.FeatureNames)
	}
}

func TestStructuralErrors(t *testing.T) {
	for _, tc := range []struct {
		content string
		opt     Options
		want    string
	}{
		{"id,a\n", Options{IDColumn: "id"}, "no rows"},
		{"", Options{IDColumn: "id"}, "no header row"},
		{"id,a\n1,2\n", Options{}, "no ID column given"},
		{"id,a\n1,2\n", Options{IDColumn: "uscc"}, "ID column uscc is not in the header"},
		{"id,a\n1,2\n", Options{IDColumn: "id", LabelColumn: "y"}, "label column y is not in the header"},
		{"id,a\n1,2\n", Options{IDColumn: "id", Drop: []string{"b"}}, "column b to drop is not in the header"},
		{"id,a,a\n1,2,3\n", Options{IDColumn: "id"}, "header names column a twice"},
		{"id,,b\n1,2,3\n", Options{IDColumn: "id"}, "header column 2 has no name"},
		{"id,a,a_missing\n1,,0\n2,1,0\n", Options{IDColumn: "id", MissingIndicators: true}, "two features would be named a_missing"},
		{"id,a\n1,x\n", Options{IDColumn: "id", SkipBadRows: true, Categorical: []string{"b"}}, "categorical column b"},
	} {
		_, err := ReadCSV(strings.NewReader(tc.content), tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadCSV(%q) error %v, want %q", tc.content, err, tc.want)
		}
	}
	// Every row bad and skipped: no rows left.
	_, err := ReadCSV(strings.NewReader("id,a\n,1\n,2\n"), Options{IDColumn: "id", SkipBadRows: true})
	if err == nil || !strings.Contains(err.Error(), "no rows left after skipping 2 bad rows") {
		t.Errorf("error = %v", err)
	}
	// A missing file names the problem.
	if _, err := LoadCSV(filepath.Join(t.TempDir(), "nope.csv"), Options{IDColumn: "id"}); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file error = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

func TestDropAndBOM(t *testing.T) {
	tab := load(t, "\ufeffid,a,secret,b\n1,1,x,2\n2,2,y,3\n", Options{IDColumn: "id", Drop: []string{"secret"}})
	if want := []string{"a", "b"}; !reflect.DeepEqual(tab.FeatureNames, want) {
		t.Errorf("features = %v", tab.FeatureNames)
	}
}

func TestSelect(t *testing.T) {
	tab := load(t, "id,y,a\nA,0,1\nB,1,2\nC,0,3\n", Options{IDColumn: "id", LabelColumn: "y", NoStandardize: true})
	sel, err := tab.Select([]string{"c", " A "})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sel.IDs, []string{"C", "A"}) || !near(sel.Columns[0], []float64{3, 1}) || !reflect.DeepEqual(sel.Labels, []float64{0, 0}) {
		t.Errorf("select = %v %v %v", sel.IDs, sel.Columns, sel.Labels)
	}
	if sel.Transform != tab.Transform {
		t.Error("Select dropped the transform")
	}
	if _, err := tab.Select([]string{"A", "Z"}); err == nil || !strings.Contains(err.Error(), "ID number 2 of 2 is not in the table") {
		t.Errorf("missing ID error = %v", err)
	}
	if _, err := tab.Select([]string{"A", "a"}); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Errorf("repeated ID error = %v", err)
	}
	if i, ok := tab.Index("b"); !ok || i != 1 {
		t.Errorf("Index(b) = %d, %v", i, ok)
	}
	if got := tab.RowMajor(); !near(got, []float64{1, 2, 3}) {
		t.Errorf("RowMajor = %v", got)
	}
}

func TestSummaryCarriesNoValues(t *testing.T) {
	tab := load(t, "id,y,income,city\nSECRETID1,1,123456.5,Atlantis\nSECRETID2,0,654321.5,Lemuria\n",
		Options{IDColumn: "id", LabelColumn: "y"})
	b, err := json.Marshal(tab.Summary())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"SECRETID", "123456", "654321"} {
		if strings.Contains(string(b), v) {
			t.Errorf("summary %s contains %s", b, v)
		}
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Rows != 2 || !s.HasLabel || s.LabelName != "y" || len(s.FeatureNames) != 3 {
		t.Errorf("summary = %+v", s)
	}
}

// rawRows reads a CSV into maps, for feeding Transform.Apply.
func rawRows(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for j, h := range recs[0] {
			m[h] = r[j]
		}
		out = append(out, m)
	}
	return out
}

func TestTransformReusedAtScoring(t *testing.T) {
	// Real data with missing values, plus a text column.
	path := filepath.Join("..", "..", "examples", "data", "polish", "social.csv")
	opt := Options{IDColumn: "uscc", IDFormat: "uscc", MissingIndicators: true}
	tab, err := LoadCSV(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(tab.Transform)
	if err != nil {
		t.Fatal(err)
	}
	var tr Transform
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&tr, tab.Transform) {
		t.Fatal("transform changed in a JSON round trip")
	}
	rows := rawRows(t, path)
	for _, i := range []int{0, 1, 2, 100, len(rows) - 1} {
		x, err := tr.Apply(rows[i])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(x, tab.Row(i)) {
			t.Fatalf("Apply(row %d) differs from the table row", i)
		}
	}
	// A whole later file with the same transform gives identical features.
	again, err := LoadCSVWithTransform(path, &tr)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Columns, tab.Columns) || !reflect.DeepEqual(again.FeatureNames, tab.FeatureNames) {
		t.Fatal("LoadCSVWithTransform differs from the fitted table")
	}

	// Text columns, unseen categories and missing columns at scoring time.
	small := load(t, "id,city,a\n1,Paris,1\n2,Rome,2\n3,Paris,\n", Options{IDColumn: "id", NoStandardize: true})
	x, err := small.Transform.Apply(map[string]string{"city": "Oslo", "a": "NA", "ignored": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !near(x, []float64{0, 0, 1.5}) {
		t.Errorf("Apply(unseen, missing) = %v, want [0 0 1.5]", x)
	}
	if _, err := small.Transform.Apply(map[string]string{"city": "Rome"}); err == nil || !strings.Contains(err.Error(), "column a is missing") {
		t.Errorf("missing column error = %v", err)
	}
	if _, err := small.Transform.Apply(map[string]string{"city": "Rome", "a": "x"}); err == nil {
		t.Error("unparsable number accepted by Apply")
	}
	later, err := ReadCSVWithTransform(strings.NewReader("id,a,city\n9,5,Oslo\n"), small.Transform)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(later.FeatureNames, small.FeatureNames) || !near(later.Row(0), []float64{0, 0, 5}) {
		t.Errorf("later = %v %v", later.FeatureNames, later.Row(0))
	}
	if len(later.Warnings) != 1 || !strings.Contains(later.Warnings[0], "1 values were not seen") {
		t.Errorf("warnings = %q", later.Warnings)
	}
	if _, err := ReadCSVWithTransform(strings.NewReader("id,a\n9,5\n"), small.Transform); err == nil || !strings.Contains(err.Error(), "column city used by the transform") {
		t.Errorf("missing column error = %v", err)
	}
	bad := *small.Transform
	bad.Version = 99
	if _, err := bad.Apply(map[string]string{}); err == nil {
		t.Error("transform with a wrong version accepted")
	}
}

func TestBundledData(t *testing.T) {
	dir := filepath.Join("..", "..", "examples", "data")
	guest, err := LoadCSV(filepath.Join(dir, "default_credit", "default_credit_hetero_guest.csv"), Options{IDColumn: "id", LabelColumn: "y"})
	if err != nil {
		t.Fatal(err)
	}
	if guest.Rows() != 30000 || len(guest.FeatureNames) != 13 {
		t.Errorf("default_credit guest: %d rows, %d features", guest.Rows(), len(guest.FeatureNames))
	}
	pos := 0.0
	for _, y := range guest.Labels {
		pos += y
	}
	if pos != 6636 {
		t.Errorf("default_credit positives = %v, want 6636", pos)
	}
	want := map[string][2]int{"bank": {7027, 0}, "tax": {6746, 20}, "social": {6746, 27}, "utility": {6746, 17}}
	features := map[string]bool{}
	for name, w := range want {
		opt := Options{IDColumn: "uscc", IDFormat: "uscc"}
		if name == "bank" {
			opt.LabelColumn = "y"
		}
		tab, err := LoadCSV(filepath.Join(dir, "polish", name+".csv"), opt)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tab.Rows() != w[0] || len(tab.FeatureNames) != w[1] {
			t.Errorf("%s: %d rows, %d features; want %v", name, tab.Rows(), len(tab.FeatureNames), w)
		}
		for _, f := range tab.FeatureNames {
			if features[f] {
				t.Errorf("feature %s held by two providers", f)
			}
			features[f] = true
		}
	}
	if len(features) != 64 {
		t.Errorf("providers hold %d features, want 64", len(features))
	}
}

func TestSharedEnterpriseUSCCsValidate(t *testing.T) {
	path := "/work/shared/data/enterprise/polish_1year.csv"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared data not present: %v", err)
	}
	tab, err := LoadCSV(path, Options{IDColumn: "uscc", IDFormat: "uscc", LabelColumn: "class"})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows() != 7027 {
		t.Errorf("rows = %d", tab.Rows())
	}
}

func sqliteFixture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "party.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE firms (uscc TEXT, revenue REAL, employees INTEGER, sector TEXT, y INTEGER)`,
		`INSERT INTO firms VALUES ('91990101100482908n', 1.5, 10, 'retail', 0)`,
		`INSERT INTO firms VALUES ('91990101100965619W', NULL, 20, 'mining', 1)`,
		`INSERT INTO firms VALUES ('91990101101448322N', 4.25, NULL, 'retail', 0)`,
		`INSERT INTO firms VALUES ('919901011019310316', 8, 40, NULL, 1)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

const sqlEquivalentCSV = "uscc,revenue,employees,sector,y\n" +
	"91990101100482908n,1.5,10,retail,0\n" +
	"91990101100965619W,,20,mining,1\n" +
	"91990101101448322N,4.25,,retail,0\n" +
	"919901011019310316,8,40,,1\n"

func TestSQLiteSourceMatchesCSV(t *testing.T) {
	for n := 1; n <= 4; n++ {
		u, _ := USCCFromSeed(1, 1, n)
		if !strings.Contains(strings.ToUpper(sqlEquivalentCSV), u) {
			t.Fatalf("fixture lacks valid key %s", u)
		}
	}
	path := sqliteFixture(t)
	opt := Options{IDColumn: "uscc", IDFormat: "uscc", LabelColumn: "y", MissingIndicators: true}
	fromSQL, err := LoadSQL(context.Background(), "sqlite", path, "SELECT * FROM firms ORDER BY rowid", opt)
	if err != nil {
		t.Fatal(err)
	}
	fromCSV, err := ReadCSV(strings.NewReader(sqlEquivalentCSV), opt)
	if err != nil {
		t.Fatal(err)
	}
	fromSQL.Transform, fromCSV.Transform = nil, nil
	if !reflect.DeepEqual(fromSQL, fromCSV) {
		t.Errorf("SQLite table\n%+v\ndiffers from CSV table\n%+v", fromSQL, fromCSV)
	}
	viaSource, err := Load(context.Background(), Source{Data: path, Query: "SELECT * FROM firms ORDER BY rowid"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if viaSource.Rows() != 4 {
		t.Errorf("Load(sqlite) rows = %d", viaSource.Rows())
	}
	// Bad rows name the result row.
	_, err = LoadSQL(context.Background(), "sqlite", path, "SELECT uscc, y FROM firms ORDER BY rowid", Options{IDColumn: "uscc", LabelColumn: "employees"})
	if err == nil || !strings.Contains(err.Error(), "label column employees is not in the header") {
		t.Errorf("error = %v", err)
	}
	_, err = LoadSQL(context.Background(), "sqlite", path, "SELECT uscc, employees FROM firms ORDER BY rowid", Options{IDColumn: "uscc", LabelColumn: "employees"})
	if err == nil || !strings.Contains(err.Error(), "row 1: label is not 0 or 1") {
		t.Errorf("error = %v", err)
	}
	// A missing file is not created.
	missing := filepath.Join(t.TempDir(), "nope.db")
	if _, err := LoadSQL(context.Background(), "sqlite", missing, "SELECT 1", opt); err == nil {
		t.Error("missing SQLite file accepted")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Error("loading created the missing SQLite file")
	}
	if _, err := LoadSQL(context.Background(), "oracle", path, "SELECT 1", opt); err == nil || !strings.Contains(err.Error(), "unknown SQL driver") {
		t.Errorf("driver error = %v", err)
	}
	if _, err := LoadSQL(context.Background(), "sqlite", path, "SELECT * FROM nope", opt); err == nil {
		t.Error("bad query accepted")
	}
	if _, err := Load(context.Background(), Source{Data: "postgres://x/y"}, opt); err == nil || !strings.Contains(err.Error(), "needs a query") {
		t.Errorf("postgres without query error = %v", err)
	}
}

func TestPostgresSourceMatchesCSV(t *testing.T) {
	dsn := os.Getenv("VEIL_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://veil:veil@127.0.0.1:5432/veil_test?sslmode=disable"
	}
	ctx := context.Background()
	db, err := sql.Open("pgx", dsn)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must provide PostgreSQL (VEIL_TEST_POSTGRES): %v", err)
		}
		t.Skipf("no PostgreSQL server reachable at %s (set VEIL_TEST_POSTGRES): %v", dsn, err)
	}
	defer db.Close()
	table := fmt.Sprintf("dataset_test_%d", os.Getpid())
	for _, q := range []string{
		`DROP TABLE IF EXISTS ` + table,
		`CREATE TABLE ` + table + ` (uscc TEXT, revenue DOUBLE PRECISION, employees BIGINT, sector TEXT, y INTEGER, n SERIAL)`,
		`INSERT INTO ` + table + ` (uscc, revenue, employees, sector, y) VALUES
			('91990101100482908n', 1.5, 10, 'retail', 0),
			('91990101100965619W', NULL, 20, 'mining', 1),
			('91990101101448322N', 4.25, NULL, 'retail', 0),
			('919901011019310316', 8, 40, NULL, 1)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	defer db.ExecContext(ctx, `DROP TABLE IF EXISTS `+table)
	opt := Options{IDColumn: "uscc", IDFormat: "uscc", LabelColumn: "y", MissingIndicators: true}
	query := "SELECT uscc, revenue, employees, sector, y FROM " + table + " ORDER BY n"
	fromPG, err := Load(ctx, Source{Data: dsn, Query: query}, opt)
	if err != nil {
		t.Fatal(err)
	}
	fromCSV, err := ReadCSV(strings.NewReader(sqlEquivalentCSV), opt)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromPG.Columns, fromCSV.Columns) || !reflect.DeepEqual(fromPG.IDs, fromCSV.IDs) || !reflect.DeepEqual(fromPG.Labels, fromCSV.Labels) {
		t.Errorf("PostgreSQL table differs from the CSV table")
	}
	again, err := LoadWithTransform(ctx, Source{Data: dsn, Query: query}, fromPG.Transform)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Columns, fromPG.Columns) {
		t.Errorf("LoadWithTransform differs")
	}
}

func TestClip(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,a\n")
	for i := 0; i <= 100; i++ {
		fmt.Fprintf(&b, "%d,%d\n", i, i)
	}
	b.WriteString("x,\n") // missing: imputed with the median 50
	tab := load(t, b.String(), Options{IDColumn: "id", NoStandardize: true, Clip: 0.05})
	a := col(t, tab, "a")
	if a[0] != 5 || a[3] != 5 || a[50] != 50 || a[99] != 95 || a[101] != 50 {
		t.Errorf("clipped a = %v ... %v", a[:6], a[95:])
	}
	ct := tab.Transform.Columns[0]
	if !ct.Clipped || ct.Low != 5 || ct.High != 95 {
		t.Errorf("clip bounds %+v", ct)
	}
	x, err := tab.Transform.Apply(map[string]string{"a": "1e9"})
	if err != nil || x[0] != 95 {
		t.Errorf("Apply(1e9) = %v, %v; want 95", x, err)
	}
	// Interpolated quantiles.
	tab = load(t, "id,a\n1,0\n2,10\n", Options{IDColumn: "id", NoStandardize: true, Clip: 0.1})
	if got := col(t, tab, "a"); !near(got, []float64{1, 9}) {
		t.Errorf("a = %v, want [1 9]", got)
	}
	if err := loadErr(t, "id,a\n1,0\n", Options{IDColumn: "id", Clip: 0.5}); !strings.Contains(err.Error(), "Clip") {
		t.Errorf("error = %v", err)
	}
}
