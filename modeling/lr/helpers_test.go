package lr

import (
	"encoding/csv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"veil/modeling/metrics"
)

// dataDir is the repository's copy of the example data (never ../shared).
var dataDir = filepath.Join("..", "..", "examples", "data", "default_credit")

type csvTable struct {
	ids  []string
	y    []float64
	cols [][]float64
}

func readCSV(t testing.TB, path string, label string) *csvTable {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("example data not available: %v", err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	tb := &csvTable{}
	var featIdx []int
	labelIdx := -1
	for j, h := range head {
		switch {
		case j == 0:
		case h == label:
			labelIdx = j
		default:
			featIdx = append(featIdx, j)
		}
	}
	tb.cols = make([][]float64, len(featIdx))
	for _, r := range recs[1:] {
		tb.ids = append(tb.ids, r[0])
		if labelIdx >= 0 {
			v, err := strconv.ParseFloat(r[labelIdx], 64)
			if err != nil {
				t.Fatal(err)
			}
			tb.y = append(tb.y, v)
		}
		for k, j := range featIdx {
			v, err := strconv.ParseFloat(r[j], 64)
			if err != nil {
				t.Fatal(err)
			}
			tb.cols[k] = append(tb.cols[k], v)
		}
	}
	return tb
}

// creditSplit loads default_credit (guest = label party, host = provider),
// joins by id and splits 70/30 with a fixed seed.
type split struct {
	trainY, testY []float64
	trainG, testG [][]float64
	trainH, testH [][]float64
}

func loadDefaultCredit(t testing.TB) *split {
	g := readCSV(t, filepath.Join(dataDir, "default_credit_hetero_guest.csv"), "y")
	h := readCSV(t, filepath.Join(dataDir, "default_credit_hetero_host.csv"), "")
	hIdx := map[string]int{}
	for i, id := range h.ids {
		hIdx[id] = i
	}
	n := len(g.ids)
	perm := rand.New(rand.NewPCG(42, 7)).Perm(n)
	nTrain := n * 7 / 10
	s := &split{trainG: make([][]float64, len(g.cols)), testG: make([][]float64, len(g.cols)),
		trainH: make([][]float64, len(h.cols)), testH: make([][]float64, len(h.cols))}
	for k, i := range perm {
		hi, ok := hIdx[g.ids[i]]
		if !ok {
			t.Fatalf("id %s missing at host", g.ids[i])
		}
		train := k < nTrain
		if train {
			s.trainY = append(s.trainY, g.y[i])
		} else {
			s.testY = append(s.testY, g.y[i])
		}
		for j := range g.cols {
			if train {
				s.trainG[j] = append(s.trainG[j], g.cols[j][i])
			} else {
				s.testG[j] = append(s.testG[j], g.cols[j][i])
			}
		}
		for j := range h.cols {
			if train {
				s.trainH[j] = append(s.trainH[j], h.cols[j][hi])
			} else {
				s.testH[j] = append(s.testH[j], h.cols[j][hi])
			}
		}
	}
	return s
}

// auc is metrics.AUC (Mann–Whitney U, ties counting one half).
func auc(t testing.TB, score, y []float64) float64 {
	t.Helper()
	a, err := metrics.AUC(score, y)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAUCKnownValues(t *testing.T) {
	if got := auc(t, []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}); got != 0.75 {
		t.Errorf("auc = %v, want 0.75", got)
	}
	if got := auc(t, []float64{1, 1, 1, 1}, []float64{0, 1, 0, 1}); got != 0.5 {
		t.Errorf("tied auc = %v, want 0.5", got)
	}
}
