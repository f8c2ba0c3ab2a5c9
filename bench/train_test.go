package bench

import (
	"context"
	"testing"
)

func TestRunTrainSmall(t *testing.T) {
	res, err := RunTrain(context.Background(), TrainOptions{Rows: 3000, LabelFeatures: 3, Features: []int{5}, Epochs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Iterations != 2 || res.FederatedSecPerEpoch <= 0 || res.PlaintextSecPerEpoch <= 0 || res.Ratio <= 0 {
		t.Errorf("implausible result %+v", res)
	}
	if res.MaxWeightDiff > 1e-4 {
		t.Errorf("federated and plaintext models differ by %g", res.MaxWeightDiff)
	}
}

// BenchmarkTrainFATEShape runs FATE's benchmark shape (100k rows, 30 + 300
// features, 1 epoch): go test ./bench -run NONE -bench TrainFATEShape -benchtime 1x
func BenchmarkTrainFATEShape(b *testing.B) {
	for i := 0; i < b.N; i++ {
		res, err := RunTrain(context.Background(), TrainOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.FederatedSecPerEpoch, "fed-s/epoch")
		b.ReportMetric(res.PlaintextSecPerEpoch, "plain-s/epoch")
		b.ReportMetric(res.Ratio, "ratio")
		b.Logf("%+v", *res)
	}
}
