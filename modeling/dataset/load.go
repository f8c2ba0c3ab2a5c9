package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// LoadCSV reads a CSV file (header row first) and preprocesses it with a
// transform fitted on its own rows (Table.Transform).
func LoadCSV(path string, opt Options) (*Table, error) {
	raw, err := readCSVFile(path)
	if err != nil {
		return nil, err
	}
	return fit(raw, opt)
}

// ReadCSV is LoadCSV on a stream.
func ReadCSV(r io.Reader, opt Options) (*Table, error) {
	raw, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	return fit(raw, opt)
}

// LoadSQL runs query on a database and preprocesses its result set like a
// CSV file whose header is the result's column names. driver is "sqlite"
// (dsn is the path of an existing SQLite file, opened read-only) or "pgx"
// (dsn is a PostgreSQL URL or key=value DSN). NULL is a missing value.
func LoadSQL(ctx context.Context, driver, dsn, query string, opt Options) (*Table, error) {
	raw, err := readSQL(ctx, driver, dsn, query)
	if err != nil {
		return nil, err
	}
	return fit(raw, opt)
}

// LoadCSVWithTransform reads a CSV file and preprocesses it with a transform
// fitted earlier (at training time), so every row gets exactly the features
// the model was trained on. The file needs the ID column and the columns the
// transform uses; the label column is read if present.
func LoadCSVWithTransform(path string, tr *Transform) (*Table, error) {
	raw, err := readCSVFile(path)
	if err != nil {
		return nil, err
	}
	return applyRaw(raw, tr)
}

// ReadCSVWithTransform is LoadCSVWithTransform on a stream.
func ReadCSVWithTransform(r io.Reader, tr *Transform) (*Table, error) {
	raw, err := readCSV(r)
	if err != nil {
		return nil, err
	}
	return applyRaw(raw, tr)
}

// LoadSQLWithTransform is LoadSQL with a transform fitted earlier.
func LoadSQLWithTransform(ctx context.Context, driver, dsn, query string, tr *Transform) (*Table, error) {
	raw, err := readSQL(ctx, driver, dsn, query)
	if err != nil {
		return nil, err
	}
	return applyRaw(raw, tr)
}

// Source names where an agent's table comes from, as given on the command
// line (--data, --query).
type Source struct {
	// Data is a CSV path, a SQLite file path (with Query), or a PostgreSQL
	// URL postgres://... or postgresql://... (with Query).
	Data  string
	Query string
}

func (s Source) driver() (driver string, err error) {
	isPG := strings.HasPrefix(s.Data, "postgres://") || strings.HasPrefix(s.Data, "postgresql://")
	switch {
	case s.Data == "":
		return "", errors.New("dataset: no data source given")
	case isPG && s.Query == "":
		return "", errors.New("dataset: a PostgreSQL source needs a query")
	case isPG:
		return "pgx", nil
	case s.Query != "":
		return "sqlite", nil
	}
	return "", nil // CSV
}

// Load reads a Source: CSV when there is no query, otherwise SQLite or
// PostgreSQL (chosen by the postgres:// prefix).
func Load(ctx context.Context, src Source, opt Options) (*Table, error) {
	drv, err := src.driver()
	if err != nil {
		return nil, err
	}
	if drv == "" {
		return LoadCSV(src.Data, opt)
	}
	return LoadSQL(ctx, drv, src.Data, src.Query, opt)
}

// LoadWithTransform reads a Source with a transform fitted earlier.
func LoadWithTransform(ctx context.Context, src Source, tr *Transform) (*Table, error) {
	drv, err := src.driver()
	if err != nil {
		return nil, err
	}
	if drv == "" {
		return LoadCSVWithTransform(src.Data, tr)
	}
	return LoadSQLWithTransform(ctx, drv, src.Data, src.Query, tr)
}

// layout is the role of every source column.
type layout struct {
	id       int
	label    int // -1 if none
	features []int
}

// headerIndex checks the header (trimmed names, none empty or repeated) and
// returns name -> position.
func headerIndex(raw *rawTable) (map[string]int, error) {
	idx := make(map[string]int, len(raw.header))
	for i, h := range raw.header {
		h = strings.TrimSpace(h)
		raw.header[i] = h
		if h == "" {
			return nil, fmt.Errorf("dataset: header column %d has no name", i+1)
		}
		if _, dup := idx[h]; dup {
			return nil, fmt.Errorf("dataset: header names column %s twice", h)
		}
		idx[h] = i
	}
	return idx, nil
}

// badRows collects row-level problems: an error at the first one, or, when
// skipping, a count and the first locations of each reason.
type badRows struct {
	raw     *rawTable
	skip    bool
	bad     map[int]bool
	reasons []string
	locs    map[string][]int
}

func newBadRows(raw *rawTable, skip bool) *badRows {
	return &badRows{raw: raw, skip: skip, bad: map[int]bool{}, locs: map[string][]int{}}
}

// add records that row i has a problem; it returns an error unless skipping.
// detail is appended to the error only (it names other lines, not values).
func (b *badRows) add(i int, reason, detail string) error {
	if !b.skip {
		return fmt.Errorf("dataset: %s: %s%s", b.raw.where(i), reason, detail)
	}
	if b.bad[i] {
		return nil
	}
	b.bad[i] = true
	if _, ok := b.locs[reason]; !ok {
		b.reasons = append(b.reasons, reason)
	}
	b.locs[reason] = append(b.locs[reason], b.raw.locs[i])
	return nil
}

func (b *badRows) warnings() []string {
	var out []string
	for _, r := range b.reasons {
		locs := b.locs[r]
		shown := locs
		more := ""
		if len(shown) > 10 {
			shown = shown[:10]
			more = ", ..."
		}
		parts := make([]string, len(shown))
		for k, l := range shown {
			parts[k] = strconv.Itoa(l)
		}
		out = append(out, fmt.Sprintf("skipped %d rows: %s (%ss %s%s)", len(locs), r, b.raw.locKind, strings.Join(parts, ", "), more))
	}
	return out
}

// checkRows validates IDs and labels of every record; it returns the IDs and
// labels indexed by record (entries of bad rows are unspecified).
func checkRows(raw *rawTable, lay layout, idFormat string, bad *badRows) (ids []string, labels []float64, err error) {
	ids = make([]string, len(raw.records))
	if lay.label >= 0 {
		labels = make([]float64, len(raw.records))
	}
	first := make(map[string]int, len(raw.records))
	for i, rec := range raw.records {
		id := NormalizeID(rec[lay.id])
		switch {
		case id == "":
			if err := bad.add(i, "empty ID", ""); err != nil {
				return nil, nil, err
			}
			continue
		case idFormat == "uscc":
			if verr := ValidUSCC(id); verr != nil {
				if err := bad.add(i, "invalid USCC", ": "+verr.Error()); err != nil {
					return nil, nil, err
				}
				continue
			}
		}
		if j, dup := first[id]; dup {
			if err := bad.add(i, "duplicate ID (the first occurrence is kept)", " (first seen at "+raw.where(j)+")"); err != nil {
				return nil, nil, err
			}
			continue
		}
		first[id] = i
		ids[i] = id
		if lay.label >= 0 {
			cell := rec[lay.label]
			v, ok := parseNumber(cell)
			switch {
			case isMissing(cell):
				err = bad.add(i, "missing label", "")
			case !ok || (v != 0 && v != 1):
				err = bad.add(i, "label is not 0 or 1", "")
			default:
				labels[i] = v
			}
			if err != nil {
				return nil, nil, err
			}
		}
	}
	return ids, labels, nil
}

func checkIDFormat(f string) error {
	if f != "" && f != "uscc" {
		return fmt.Errorf("dataset: unknown ID format %q (use \"\" or \"uscc\")", f)
	}
	return nil
}

// fit preprocesses raw with a transform fitted on its own rows.
func fit(raw *rawTable, opt Options) (*Table, error) {
	if err := checkIDFormat(opt.IDFormat); err != nil {
		return nil, err
	}
	if !(opt.Clip >= 0 && opt.Clip < 0.5) {
		return nil, fmt.Errorf("dataset: Clip %v must be in [0, 0.5)", opt.Clip)
	}
	if opt.MaxCategories < 0 {
		return nil, fmt.Errorf("dataset: MaxCategories %d is negative", opt.MaxCategories)
	}
	maxCat := opt.MaxCategories
	if maxCat == 0 {
		maxCat = DefaultMaxCategories
	}
	idx, err := headerIndex(raw)
	if err != nil {
		return nil, err
	}
	lay := layout{label: -1}
	if opt.IDColumn == "" {
		return nil, errors.New("dataset: no ID column given")
	}
	var ok bool
	if lay.id, ok = idx[opt.IDColumn]; !ok {
		return nil, fmt.Errorf("dataset: ID column %s is not in the header", opt.IDColumn)
	}
	if opt.LabelColumn != "" {
		if opt.LabelColumn == opt.IDColumn {
			return nil, errors.New("dataset: the label column cannot be the ID column")
		}
		if lay.label, ok = idx[opt.LabelColumn]; !ok {
			return nil, fmt.Errorf("dataset: label column %s is not in the header", opt.LabelColumn)
		}
	}
	skipCol := map[int]bool{lay.id: true, lay.label: true}
	for _, d := range opt.Drop {
		j, ok := idx[strings.TrimSpace(d)]
		if !ok {
			return nil, fmt.Errorf("dataset: column %s to drop is not in the header", d)
		}
		if j == lay.id || j == lay.label {
			return nil, fmt.Errorf("dataset: column %s to drop is the ID or label column", d)
		}
		skipCol[j] = true
	}
	forceCat := map[int]bool{}
	for _, c := range opt.Categorical {
		j, ok := idx[strings.TrimSpace(c)]
		if !ok {
			return nil, fmt.Errorf("dataset: categorical column %s is not in the header", c)
		}
		forceCat[j] = true
	}
	for j := range raw.header {
		if !skipCol[j] {
			lay.features = append(lay.features, j)
		}
	}
	if len(raw.records) == 0 {
		return nil, errors.New("dataset: no rows (the input has only a header)")
	}

	bad := newBadRows(raw, opt.SkipBadRows)
	ids, labels, err := checkRows(raw, lay, opt.IDFormat, bad)
	if err != nil {
		return nil, err
	}

	// Classify columns on the rows that passed the ID and label checks.
	tr := &Transform{
		Version:     TransformVersion,
		IDColumn:    opt.IDColumn,
		IDFormat:    opt.IDFormat,
		LabelColumn: opt.LabelColumn,
		SkipBadRows: opt.SkipBadRows,
	}
	var warnings []string
	for _, j := range lay.features {
		nonMissing, numeric := 0, 0
		for i, rec := range raw.records {
			if bad.bad[i] || isMissing(rec[j]) {
				continue
			}
			nonMissing++
			if _, ok := parseNumber(rec[j]); ok {
				numeric++
			}
		}
		kind := KindNumeric
		if forceCat[j] || (nonMissing > 0 && numeric*10 < nonMissing*9) {
			kind = KindCategorical
		}
		tr.Columns = append(tr.Columns, ColumnTransform{Name: raw.header[j], Kind: kind})
	}
	keep, err := keptRows(raw, lay, tr, bad)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, bad.warnings()...)

	// Fit medians and categories on the kept rows.
	imputed, imputedCols := 0, 0
	for c, j := range lay.features {
		ct := &tr.Columns[c]
		var nums []float64
		counts := map[string]int{}
		missing := 0
		for _, i := range keep {
			cell := raw.records[i][j]
			if isMissing(cell) {
				missing++
				continue
			}
			if ct.Kind == KindNumeric {
				v, _ := parseNumber(cell)
				nums = append(nums, v)
			} else {
				counts[strings.TrimSpace(cell)]++
			}
		}
		if missing > 0 {
			imputedCols++
			imputed += missing
			ct.MissingIndicator = opt.MissingIndicators
		}
		if missing == len(keep) {
			warnings = append(warnings, fmt.Sprintf("column %s has no values; it is kept as a constant feature", ct.Name))
		}
		switch ct.Kind {
		case KindNumeric:
			sort.Float64s(nums)
			ct.Median = quantile(nums, 0.5)
			if opt.Clip > 0 && len(nums) > 0 {
				ct.Clipped, ct.Low, ct.High = true, quantile(nums, opt.Clip), quantile(nums, 1-opt.Clip)
			}
			ct.Features = []FeatureScale{{Name: ct.Name}}
		case KindCategorical:
			ct.Categories = topCategories(counts, maxCat)
			if n := len(counts); n > maxCat {
				warnings = append(warnings, fmt.Sprintf("column %s has %d distinct text values; the %d most frequent are one-hot encoded, the rest share %s=%s", ct.Name, n, maxCat-1, ct.Name, OtherCategory))
			}
			for _, v := range ct.Categories {
				ct.Features = append(ct.Features, FeatureScale{Name: ct.Name + "=" + v})
			}
		}
		if ct.MissingIndicator {
			ct.Features = append(ct.Features, FeatureScale{Name: ct.Name + "_missing"})
		}
	}
	if imputed > 0 {
		if opt.MissingIndicators {
			warnings = append(warnings, fmt.Sprintf("imputed %d missing values in %d columns with the column median (numbers) or no category (text), with a _missing indicator column", imputed, imputedCols))
		} else {
			warnings = append(warnings, fmt.Sprintf("imputed %d missing values in %d columns with the column median (numbers) or no category (text)", imputed, imputedCols))
		}
	}
	seen := map[string]bool{}
	for _, c := range tr.Columns {
		for _, f := range c.Features {
			if seen[f.Name] {
				return nil, fmt.Errorf("dataset: two features would be named %s; rename a column", f.Name)
			}
			seen[f.Name] = true
		}
	}

	// Encode, then fit and apply the standardisation.
	t, _, err := encodeRows(raw, lay, tr, keep, ids, labels)
	if err != nil {
		return nil, err
	}
	k := 0
	for c := range tr.Columns {
		for f := range tr.Columns[c].Features {
			fs := &tr.Columns[c].Features[f]
			if opt.NoStandardize {
				fs.Mean, fs.SD = 0, 1
			} else {
				fs.Mean, fs.SD = meanSD(t.Columns[k])
			}
			k++
		}
	}
	standardiseColumns(t, tr)
	t.Warnings = warnings
	t.Transform = tr
	return t, nil
}

// applyRaw preprocesses raw with a transform fitted earlier.
func applyRaw(raw *rawTable, tr *Transform) (*Table, error) {
	if err := tr.Validate(); err != nil {
		return nil, err
	}
	idx, err := headerIndex(raw)
	if err != nil {
		return nil, err
	}
	lay := layout{label: -1}
	var ok bool
	if lay.id, ok = idx[tr.IDColumn]; !ok {
		return nil, fmt.Errorf("dataset: ID column %s is not in the header", tr.IDColumn)
	}
	if tr.LabelColumn != "" {
		if j, ok := idx[tr.LabelColumn]; ok {
			lay.label = j
		}
	}
	for _, c := range tr.Columns {
		j, ok := idx[c.Name]
		if !ok {
			return nil, fmt.Errorf("dataset: column %s used by the transform is not in the header", c.Name)
		}
		lay.features = append(lay.features, j)
	}
	if len(raw.records) == 0 {
		return nil, errors.New("dataset: no rows (the input has only a header)")
	}
	bad := newBadRows(raw, tr.SkipBadRows)
	ids, labels, err := checkRows(raw, lay, tr.IDFormat, bad)
	if err != nil {
		return nil, err
	}
	keep, err := keptRows(raw, lay, tr, bad)
	if err != nil {
		return nil, err
	}
	warnings := bad.warnings()
	t, unseen, err := encodeRows(raw, lay, tr, keep, ids, labels)
	if err != nil {
		return nil, err
	}
	standardiseColumns(t, tr)
	for _, c := range tr.Columns {
		if n := unseen[c.Name]; n > 0 {
			warnings = append(warnings, fmt.Sprintf("column %s: %d values were not seen when the transform was fitted and are encoded as no category", c.Name, n))
		}
	}
	t.Warnings = warnings
	t.Transform = tr
	return t, nil
}

// keptRows marks a row bad when a numeric column of tr has an unparsable
// cell in it and returns the indexes of the rows that are not bad.
func keptRows(raw *rawTable, lay layout, tr *Transform, bad *badRows) ([]int, error) {
	for c, j := range lay.features {
		if tr.Columns[c].Kind != KindNumeric {
			continue
		}
		for i, rec := range raw.records {
			if bad.bad[i] || isMissing(rec[j]) {
				continue
			}
			if _, ok := parseNumber(rec[j]); !ok {
				if err := bad.add(i, "unparsable number in column "+raw.header[j], ""); err != nil {
					return nil, err
				}
			}
		}
	}
	var keep []int
	for i := range raw.records {
		if !bad.bad[i] {
			keep = append(keep, i)
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("dataset: no rows left after skipping %d bad rows", len(bad.bad))
	}
	return keep, nil
}

// standardiseColumns scales every feature column of t with its FeatureScale
// in tr, in place.
func standardiseColumns(t *Table, tr *Transform) {
	k := 0
	for _, c := range tr.Columns {
		for _, fs := range c.Features {
			col := t.Columns[k]
			for i, x := range col {
				col[i] = standardise(x, fs)
			}
			k++
		}
	}
}

// encodeRows builds the unscaled feature columns of the kept rows.
func encodeRows(raw *rawTable, lay layout, tr *Transform, keep []int, ids []string, labels []float64) (*Table, map[string]int, error) {
	names := tr.FeatureNames()
	t := &Table{
		IDColumn:     tr.IDColumn,
		IDs:          make([]string, len(keep)),
		FeatureNames: names,
		Columns:      make([][]float64, len(names)),
	}
	for k := range t.Columns {
		t.Columns[k] = make([]float64, len(keep))
	}
	if labels != nil {
		t.LabelName = tr.LabelColumn
		t.Labels = make([]float64, len(keep))
	}
	for r, i := range keep {
		t.IDs[r] = ids[i]
		if labels != nil {
			t.Labels[r] = labels[i]
		}
	}
	unseen := map[string]int{}
	k := 0
	for c := range tr.Columns {
		ct := &tr.Columns[c]
		enc := newEncoder(ct, lay.features[c])
		dst := make([]float64, len(ct.Features))
		for r, i := range keep {
			u, err := enc.encode(raw.records[i][enc.src], dst)
			if err != nil {
				// Unparsable numbers were checked before; this is a bug guard.
				return nil, nil, fmt.Errorf("dataset: %s: column %s: %w", raw.where(i), ct.Name, err)
			}
			if u {
				unseen[ct.Name]++
			}
			for f, v := range dst {
				t.Columns[k+f][r] = v
			}
		}
		k += len(ct.Features)
	}
	return t, unseen, nil
}

// quantile of sorted values (linear interpolation between the two nearest
// ranks, numpy's default); 0 when there are none (an all-missing column, which
// then is constant). quantile(s, 0.5) is the median.
func quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	pos := q * float64(n-1)
	i := int(math.Floor(pos))
	if i >= n-1 {
		return sorted[n-1]
	}
	f := pos - float64(i)
	if f == 0 {
		return sorted[i]
	}
	return sorted[i] + f*(sorted[i+1]-sorted[i])
}

// meanSD returns the mean and population standard deviation; SD is exactly 0
// when all values are equal (rounding could otherwise give a tiny SD that
// blows the column up).
func meanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	constant := true
	for _, x := range xs[1:] {
		if x != xs[0] {
			constant = false
			break
		}
	}
	if constant {
		return xs[0], 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		d := x - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

// topCategories returns the categories of a text column: all of them if at
// most max, otherwise the max-1 most frequent (ties by value) plus
// OtherCategory. The order is by decreasing frequency, then by value.
func topCategories(counts map[string]int, max int) []string {
	vals := make([]string, 0, len(counts))
	for v := range counts {
		vals = append(vals, v)
	}
	sort.Slice(vals, func(a, b int) bool {
		if counts[vals[a]] != counts[vals[b]] {
			return counts[vals[a]] > counts[vals[b]]
		}
		return vals[a] < vals[b]
	})
	if len(vals) <= max {
		return vals
	}
	if max == 1 {
		return []string{OtherCategory}
	}
	return append(vals[:max-1:max-1], OtherCategory)
}
