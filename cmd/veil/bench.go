package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"veil/bench"
	"veil/hub"
	"veil/hub/local"
	"veil/hub/pki"
	"veil/modeling/dataset"
)

// benchSubcommands are the subcommands of `veil bench`. Add yours here
// (one line).
func benchSubcommands() []*cobra.Command {
	return []*cobra.Command{
		newBenchPSICmd(),
		newBenchTrainCmd(),
		newBenchScoreCmd(),
	}
}

// newBenchCmd is `veil bench`: measurements on synthetic data, each printed
// beside its plaintext baseline.
func newBenchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "bench",
		Short:   "Measure Veil's protocols on this machine, beside their plaintext baselines",
		Example: `  veil bench train --rows 100000 --features 30,300 --epochs 1 --json`,
	}
	c.AddCommand(benchSubcommands()...)
	return c
}

func newBenchTrainCmd() *cobra.Command {
	var rows, epochs, batch int
	var features string
	var seed uint64
	var asJSON, overGRPC bool
	c := &cobra.Command{
		Use:   "train",
		Short: "Seconds per epoch of federated vs plaintext logistic regression",
		Long: `Generates synthetic standardised data from a logistic model (FATE's hetero-LR
benchmark shape by default: 100,000 rows, the label holder with 30 features and
one provider with 300), trains it federated under CKKS with every party in this
process (every message serialized, as on the wire) and in plaintext Go with the
same algorithm, and prints the seconds per epoch of each and their ratio.

With --grpc it also runs the federated epochs through a whole deployment in
this process (platform and one agent per party, gRPC with mutual TLS on
loopback; KKRT PSI alignment first, not timed) and reports its seconds per
epoch too.`,
		Example: `  veil bench train --rows 100000 --features 30,300 --epochs 1 --json
  veil bench train --rows 20000 --features 10,20,20 --epochs 3`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var counts []int
			for _, f := range strings.Split(features, ",") {
				k, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || k < 0 {
					return usagef("--features %q: want comma-separated feature counts, the label holder's first", features)
				}
				counts = append(counts, k)
			}
			if len(counts) < 2 {
				return usagef("--features needs the label holder's count and at least one provider's (e.g. 30,300)")
			}
			if rows < 2 || epochs < 1 || batch < 0 {
				return usagef("--rows must be ≥ 2, --epochs ≥ 1, --batch-size ≥ 0")
			}
			res, err := bench.RunTrain(cmd.Context(), bench.TrainOptions{Rows: rows, LabelFeatures: counts[0], Features: counts[1:],
				Epochs: epochs, BatchSize: batch, Seed: seed})
			if err != nil {
				return err
			}
			out := benchTrainOutput{TrainResult: res}
			if overGRPC {
				if out.GRPCSecPerEpoch, err = benchTrainGRPC(cmd, rows, counts, epochs, batch, seed); err != nil {
					return err
				}
				out.GRPCRatio = out.GRPCSecPerEpoch / res.PlaintextSecPerEpoch
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rows, features %s, %d epoch(s) on %d cores\n", rows, features, epochs, res.Cores)
			fmt.Fprintf(cmd.OutOrStdout(), "  federated  %.3f s/epoch (key setup %.3f s)\n", res.FederatedSecPerEpoch, res.SetupSeconds)
			fmt.Fprintf(cmd.OutOrStdout(), "  plaintext  %.3f s/epoch\n", res.PlaintextSecPerEpoch)
			fmt.Fprintf(cmd.OutOrStdout(), "  ratio      %.1fx   (FATE Paillier, quoted: %.0f s/epoch)\n", res.Ratio, res.FATESecPerEpochQuoted)
			if overGRPC {
				fmt.Fprintf(cmd.OutOrStdout(), "  over loopback gRPC + mTLS: %.3f s/epoch (%.1fx plaintext)\n", out.GRPCSecPerEpoch, out.GRPCRatio)
			}
			return nil
		},
	}
	c.Flags().IntVar(&rows, "rows", 100000, "rows")
	c.Flags().StringVar(&features, "features", "30,300", "feature counts: the label holder's, then each provider's")
	c.Flags().IntVar(&epochs, "epochs", 1, "epochs")
	c.Flags().IntVar(&batch, "batch-size", 0, "rows per iteration (0 = full batch)")
	c.Flags().Uint64Var(&seed, "seed", 1, "synthetic data seed")
	c.Flags().BoolVar(&overGRPC, "grpc", false, "also run the federated side through a loopback deployment (gRPC + mTLS)")
	c.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return c
}

type benchTrainOutput struct {
	*bench.TrainResult
	GRPCSecPerEpoch float64 `json:"grpc_federated_seconds_per_epoch,omitempty"`
	GRPCRatio       float64 `json:"grpc_ratio,omitempty"`
}

// benchTrainGRPC trains synthetic tables (rows training rows after a 10%
// test split) through a loopback deployment and returns the seconds per
// epoch between the end of the key setup and the last iteration.
func benchTrainGRPC(cmd *cobra.Command, rows int, counts []int, epochs, batch int, seed uint64) (float64, error) {
	const testFraction = 0.1
	n := int(math.Ceil(float64(rows) / (1 - testFraction)))
	r := rand.New(rand.NewPCG(seed, 0xb7))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("E%09d", i)
	}
	z := make([]float64, n)
	var specs []local.AgentSpec
	var names []string
	for k, m := range counts {
		t := &dataset.Table{IDColumn: "id", IDs: ids}
		for j := 0; j < m; j++ {
			col := make([]float64, n)
			w := r.NormFloat64() / math.Sqrt(float64(len(counts)*m))
			for i := range col {
				col[i] = r.NormFloat64()
				z[i] += w * col[i]
			}
			t.Columns = append(t.Columns, col)
			t.FeatureNames = append(t.FeatureNames, fmt.Sprintf("x%d", j))
		}
		name, role := fmt.Sprintf("p%d", k), pki.RoleProvider
		if k == 0 {
			name, role = "bank", pki.RoleBank
		}
		specs = append(specs, local.AgentSpec{Name: name, Role: role, Table: t})
		names = append(names, name)
	}
	y := make([]float64, n)
	for i := range y {
		if r.Float64() < 1/(1+math.Exp(-z[i])) {
			y[i] = 1
		}
	}
	specs[0].Table.Labels, specs[0].Table.LabelName = y, "y"
	dep, stop, err := startLocal(cmd, "", specs)
	if err != nil {
		return 0, err
	}
	defer stop()
	ctx := cmd.Context()
	var keysAt, lastAt time.Time
	spec := hub.TrainSpec{Name: "bench", LabelParty: "bank", Parties: names[1:], Epochs: epochs, BatchSize: batch,
		LearningRate: 0.5, L2: 0.001, TestFraction: testFraction, Seed: 7, PSIProtocol: "kkrt"}
	_, err = dep.Platform.Train(ctx, spec, func(p hub.Progress) {
		switch p.Phase {
		case "keys":
			keysAt = time.Now()
		case "train":
			lastAt = time.Now()
		}
	})
	if err != nil {
		return 0, fmt.Errorf("bench train over gRPC: %w", err)
	}
	return lastAt.Sub(keysAt).Seconds() / float64(epochs), nil
}
