package dataset

import (
	"fmt"
)

// DefaultMaxCategories is the one-hot cap used when Options.MaxCategories is 0.
const DefaultMaxCategories = 32

// OtherCategory is the category value that collects the rarer values of a
// text column with more distinct values than the cap, and at scoring time the
// values that were not seen when the transform was fitted. Its feature is
// named "<col>=<other>".
const OtherCategory = "<other>"

// Options says how a table is read and preprocessed.
type Options struct {
	IDColumn          string   // required: name of the ID column
	IDFormat          string   // "" (any non-empty string) or "uscc" (GB 32100-2015 check character enforced)
	LabelColumn       string   // optional: 0/1 label column (only the label holder sets it)
	Drop              []string // columns to ignore
	MissingIndicators bool     // add a <col>_missing 0/1 column for columns that had missing values
	NoStandardize     bool     // by default every feature column is standardised (mean 0, sd 1)

	// Categorical names columns to one-hot encode even when their values
	// look numeric (codes such as NAICS or ZIP). Other columns are one-hot
	// encoded when fewer than 90% of their non-missing values parse as numbers.
	Categorical []string
	// MaxCategories caps the one-hot columns made from one text column
	// (0 means DefaultMaxCategories). A column with more distinct values keeps
	// its MaxCategories-1 most frequent values (ties broken by value) and
	// maps the rest to "<col>=<other>"; a warning says so.
	MaxCategories int
	// SkipBadRows drops rows with a row-level problem (empty ID, bad USCC,
	// duplicate ID, unparsable number, bad label) and reports each reason in
	// Table.Warnings with a count and the first line numbers. By default the
	// first such problem is an error naming its line. A row with the wrong
	// number of fields is always an error.
	SkipBadRows bool
	// Clip winsorises numeric columns: values below the Clip quantile or
	// above the 1-Clip quantile of the column's values (linear
	// interpolation, fitted on the party's rows) are set to those bounds,
	// after imputation and before standardisation. 0 disables it; it must be
	// below 0.5. Heavy-tailed ratios (the Polish data) need it for a linear
	// model: 0.01 clips to the 1st-99th percentile.
	Clip float64
}

// Table is a preprocessed table held by one party. Values never leave the
// party; only Summary() (schema and counts) may.
type Table struct {
	IDColumn     string
	IDs          []string    // normalised (trimmed, upper-case), unique, in file order
	FeatureNames []string    // after preprocessing (one-hot columns are named col=value)
	Columns      [][]float64 // column-major: Columns[j][i] = feature j of row i, preprocessed
	LabelName    string
	Labels       []float64 // nil unless LabelColumn was set; values 0 or 1
	Warnings     []string  // counted, human-readable warnings (duplicate IDs dropped, ...)

	// Transform is the fitted preprocessing (medians, categories, means and
	// standard deviations). Save it with the model and load later data with
	// it (LoadCSVWithTransform, Transform.Apply) so a scored enterprise is
	// preprocessed exactly as the training rows were.
	Transform *Transform
}

// Summary is what a party may publish about its table: schema and counts,
// never a value or an ID.
type Summary struct {
	Rows         int      `json:"rows"`
	IDColumn     string   `json:"id_column"`
	FeatureNames []string `json:"feature_names"`
	LabelName    string   `json:"label_name,omitempty"`
	HasLabel     bool     `json:"has_label"`
	Warnings     int      `json:"warnings"`
}

// Rows returns the number of rows.
func (t *Table) Rows() int { return len(t.IDs) }

// Summary returns the row count and feature names; never values.
func (t *Table) Summary() Summary {
	names := make([]string, len(t.FeatureNames))
	copy(names, t.FeatureNames)
	return Summary{
		Rows:         t.Rows(),
		IDColumn:     t.IDColumn,
		FeatureNames: names,
		LabelName:    t.LabelName,
		HasLabel:     t.Labels != nil,
		Warnings:     len(t.Warnings),
	}
}

// Index returns the row of id (normalised first) and whether it exists.
// It scans the IDs; use Select for many IDs.
func (t *Table) Index(id string) (int, bool) {
	id = NormalizeID(id)
	for i, v := range t.IDs {
		if v == id {
			return i, true
		}
	}
	return -1, false
}

// Row returns the features of row i in FeatureNames order.
func (t *Table) Row(i int) []float64 {
	out := make([]float64, len(t.Columns))
	for j, col := range t.Columns {
		out[j] = col[i]
	}
	return out
}

// RowMajor returns the features as one row-major slice: x[i*len(FeatureNames)+j].
func (t *Table) RowMajor() []float64 {
	d := len(t.Columns)
	out := make([]float64, t.Rows()*d)
	for j, col := range t.Columns {
		for i, v := range col {
			out[i*d+j] = v
		}
	}
	return out
}

// Select returns a new table whose rows are those of ids, in that order
// (for example the sorted common IDs of a PSI alignment). IDs are normalised
// before lookup. It is an error if an ID is missing or repeated. The
// returned table shares the Transform and copies the warnings.
func (t *Table) Select(ids []string) (*Table, error) {
	pos := make(map[string]int, len(t.IDs))
	for i, id := range t.IDs {
		pos[id] = i
	}
	rows := make([]int, len(ids))
	seen := make(map[string]struct{}, len(ids))
	out := &Table{
		IDColumn:     t.IDColumn,
		IDs:          make([]string, len(ids)),
		FeatureNames: append([]string(nil), t.FeatureNames...),
		Columns:      make([][]float64, len(t.Columns)),
		LabelName:    t.LabelName,
		Warnings:     append([]string(nil), t.Warnings...),
		Transform:    t.Transform,
	}
	for k, raw := range ids {
		id := NormalizeID(raw)
		i, ok := pos[id]
		if !ok {
			return nil, fmt.Errorf("dataset: select: ID number %d of %d is not in the table", k+1, len(ids))
		}
		if _, dup := seen[id]; dup {
			return nil, fmt.Errorf("dataset: select: ID number %d of %d is repeated", k+1, len(ids))
		}
		seen[id] = struct{}{}
		rows[k] = i
		out.IDs[k] = id
	}
	for j, col := range t.Columns {
		c := make([]float64, len(rows))
		for k, i := range rows {
			c[k] = col[i]
		}
		out.Columns[j] = c
	}
	if t.Labels != nil {
		out.Labels = make([]float64, len(rows))
		for k, i := range rows {
			out.Labels[k] = t.Labels[i]
		}
	}
	return out, nil
}
