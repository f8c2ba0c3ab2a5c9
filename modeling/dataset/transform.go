package dataset

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// TransformVersion is the version of the Transform JSON layout.
const TransformVersion = 1

// Column kinds in a Transform.
const (
	KindNumeric     = "numeric"
	KindCategorical = "categorical"
)

// Transform is a fitted preprocessing: everything needed to turn a raw row of
// the party's table into exactly the feature vector the model was trained
// on. It is plain data (JSON), kept by the party beside its model weights.
// It holds medians, means and category names of the party's own columns, so
// it is as private as the data and never leaves the party.
type Transform struct {
	Version     int               `json:"version"`
	IDColumn    string            `json:"id_column"`
	IDFormat    string            `json:"id_format,omitempty"`
	LabelColumn string            `json:"label_column,omitempty"`
	SkipBadRows bool              `json:"skip_bad_rows,omitempty"`
	Columns     []ColumnTransform `json:"columns"` // source feature columns, in output order
}

// ColumnTransform is the preprocessing of one source column. A numeric column
// gives one feature (missing values replaced by Median), a categorical column
// one feature per category (1 for its category, 0 otherwise; a missing value
// is all zeros). With MissingIndicator a last feature <col>_missing is 1 for
// a missing value. Every feature is then scaled as described in FeatureScale.
type ColumnTransform struct {
	Name             string         `json:"name"`
	Kind             string         `json:"kind"`
	Median           float64        `json:"median,omitempty"`
	Clipped          bool           `json:"clipped,omitempty"` // numeric: clamp to [Low, High]
	Low              float64        `json:"low,omitempty"`
	High             float64        `json:"high,omitempty"`
	Categories       []string       `json:"categories,omitempty"` // may end with OtherCategory
	MissingIndicator bool           `json:"missing_indicator,omitempty"`
	Features         []FeatureScale `json:"features"`
}

// FeatureScale standardises one output feature: (x - Mean) / SD. SD 0 marks
// a column that was constant when fitted: its feature is always 0, so a
// different value at scoring time cannot enter the model unscaled. Without
// standardisation Mean is 0 and SD is 1.
type FeatureScale struct {
	Name string  `json:"name"`
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// FeatureNames returns the output feature names in order.
func (tr *Transform) FeatureNames() []string {
	var names []string
	for _, c := range tr.Columns {
		for _, f := range c.Features {
			names = append(names, f.Name)
		}
	}
	return names
}

// Validate checks that a Transform (for example one read back from JSON) is
// consistent, so Apply cannot fail on its structure.
func (tr *Transform) Validate() error {
	if tr == nil {
		return errors.New("dataset: nil transform")
	}
	if tr.Version != TransformVersion {
		return fmt.Errorf("dataset: transform version %d, want %d", tr.Version, TransformVersion)
	}
	if tr.IDColumn == "" {
		return errors.New("dataset: transform has no ID column")
	}
	if tr.IDFormat != "" && tr.IDFormat != "uscc" {
		return fmt.Errorf("dataset: transform has unknown ID format %q", tr.IDFormat)
	}
	seen := map[string]bool{}
	for _, c := range tr.Columns {
		want := 1
		switch c.Kind {
		case KindNumeric:
			if math.IsNaN(c.Median) || math.IsInf(c.Median, 0) {
				return fmt.Errorf("dataset: transform column %s: median is not finite", c.Name)
			}
			if c.Clipped && !(c.Low <= c.High && !math.IsInf(c.Low, 0) && !math.IsInf(c.High, 0)) {
				return fmt.Errorf("dataset: transform column %s: clip bounds must be finite and ordered", c.Name)
			}
		case KindCategorical:
			want = len(c.Categories)
		default:
			return fmt.Errorf("dataset: transform column %s: unknown kind %q", c.Name, c.Kind)
		}
		if c.MissingIndicator {
			want++
		}
		if len(c.Features) != want {
			return fmt.Errorf("dataset: transform column %s: %d features, want %d", c.Name, len(c.Features), want)
		}
		for _, f := range c.Features {
			if seen[f.Name] {
				return fmt.Errorf("dataset: transform: feature name %s is repeated", f.Name)
			}
			seen[f.Name] = true
			if math.IsNaN(f.Mean) || math.IsInf(f.Mean, 0) || !(f.SD >= 0) || math.IsInf(f.SD, 0) {
				return fmt.Errorf("dataset: transform feature %s: mean and sd must be finite, sd >= 0", f.Name)
			}
		}
	}
	return nil
}

// Apply preprocesses one raw row, given as column name -> cell text, exactly
// as the rows of the table the transform was fitted on. Columns the transform
// does not use are ignored; a column it uses must be present (an empty string
// is a missing value and is imputed). A category not seen when fitting counts
// as OtherCategory if the column has one, else as all zeros.
func (tr *Transform) Apply(row map[string]string) ([]float64, error) {
	if err := tr.Validate(); err != nil {
		return nil, err
	}
	out := make([]float64, 0, len(tr.FeatureNames()))
	for i := range tr.Columns {
		c := &tr.Columns[i]
		cell, ok := row[c.Name]
		if !ok {
			return nil, fmt.Errorf("dataset: apply: column %s is missing from the row", c.Name)
		}
		enc := newEncoder(c, -1)
		dst := make([]float64, len(c.Features))
		if _, err := enc.encode(cell, dst); err != nil {
			return nil, fmt.Errorf("dataset: apply: column %s: %w", c.Name, err)
		}
		enc.scale(dst)
		out = append(out, dst...)
	}
	return out, nil
}

// encoder is a ColumnTransform ready to use on cells of source column src.
type encoder struct {
	ct    *ColumnTransform
	src   int
	index map[string]int
	other int // index of OtherCategory in Categories, or -1
}

func newEncoder(ct *ColumnTransform, src int) *encoder {
	e := &encoder{ct: ct, src: src, other: -1}
	if ct.Kind == KindCategorical {
		e.index = make(map[string]int, len(ct.Categories))
		for k, v := range ct.Categories {
			if v == OtherCategory {
				e.other = k
				continue
			}
			e.index[v] = k
		}
	}
	return e
}

// errNotNumber is returned by encode for an unparsable cell of a numeric column.
var errNotNumber = errors.New("not a number")

// encode writes the unscaled features of one cell into dst and reports
// whether a categorical value was unseen at fit time.
func (e *encoder) encode(cell string, dst []float64) (unseen bool, err error) {
	for k := range dst {
		dst[k] = 0
	}
	missing := isMissing(cell)
	if missing && e.ct.MissingIndicator {
		dst[len(dst)-1] = 1
	}
	switch e.ct.Kind {
	case KindNumeric:
		if missing {
			// The median lies within the clip bounds: no clamp needed.
			dst[0] = e.ct.Median
			return false, nil
		}
		v, ok := parseNumber(cell)
		if !ok {
			return false, errNotNumber
		}
		if e.ct.Clipped {
			v = math.Min(math.Max(v, e.ct.Low), e.ct.High)
		}
		dst[0] = v
	case KindCategorical:
		if missing {
			return false, nil
		}
		k, ok := e.index[strings.TrimSpace(cell)]
		if !ok {
			if e.other < 0 {
				return true, nil
			}
			k = e.other
		}
		dst[k] = 1
	}
	return false, nil
}

// scale standardises the features of one cell in place.
func (e *encoder) scale(dst []float64) {
	for k, f := range e.ct.Features {
		dst[k] = standardise(dst[k], f)
	}
}

func standardise(x float64, f FeatureScale) float64 {
	if f.SD == 0 {
		return 0
	}
	return (x - f.Mean) / f.SD
}

// isMissing reports whether a cell is a missing value: empty, or one of
// NA, N/A, ?, null, NaN (any case), after trimming white space.
func isMissing(cell string) bool {
	s := strings.TrimSpace(cell)
	if s == "" || s == "?" {
		return true
	}
	for _, tok := range [...]string{"NA", "N/A", "null", "NaN"} {
		if strings.EqualFold(s, tok) {
			return true
		}
	}
	return false
}

// MaxAbsValue bounds the numbers a feature cell may hold. Larger magnitudes
// (and infinities) are unparsable: standardising them would overflow.
const MaxAbsValue = 1e150

// parseNumber parses a finite number of magnitude at most MaxAbsValue.
func parseNumber(cell string) (float64, bool) {
	v, err := strconv.ParseFloat(strings.TrimSpace(cell), 64)
	if err != nil || math.IsNaN(v) || math.Abs(v) > MaxAbsValue {
		return 0, false
	}
	return v, true
}
