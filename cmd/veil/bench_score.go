package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"veil/bench"
)

func newBenchScoreCmd() *cobra.Command {
	var opt bench.ScoreOptions
	var asJSON bool
	c := &cobra.Command{
		Use:   "score",
		Short: "Batch scoring throughput and latency over loopback gRPC, grant checks and audit included",
		Long: `Starts a whole deployment in this process (platform, a label holder, --providers
providers; gRPC with mTLS on loopback, SQLite, the audit log), trains a small
model, registers --n enterprises each with its own key and a fresh grant, and
scores them all as a bank: every grant is checked at the platform and at each
provider and every decision is audited. A second batch with the same grants
shows the effect of the verification cache. --repeat R adds R single-
enterprise requests for the p50/p99 latency.`,
		Example: `  veil bench score --n 100000 --json
  veil bench score --n 1 --repeat 200 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.N < 1 {
				return usagef("--n must be at least 1")
			}
			res, err := bench.RunScore(cmd.Context(), opt)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d enterprises, %d providers, %d cores (setup %.1fs)\n", res.N, res.Providers, res.Cores, res.SetupSeconds)
			fmt.Fprintf(w, "first batch:  %.2fs  %.0f/s wall, %.1f CPU-s (%.0f us CPU per enterprise, all parties)\n", res.FirstBatchSeconds, res.FirstBatchPerSecond, res.FirstBatchCPUSeconds, res.CPUMicrosPerEnt)
			fmt.Fprintf(w, "second batch: %.2fs  %.0f/s wall (same grants: %.1fx)\n", res.SecondBatchSeconds, res.SecondBatchPerSecond, res.CacheSpeedup)
			for k, v := range res.StageSeconds {
				fmt.Fprintf(w, "  stage %-18s %.2fs\n", k, v)
			}
			if res.LatencyP50Ms > 0 {
				fmt.Fprintf(w, "latency: p50 %.1f ms, p99 %.1f ms\n", res.LatencyP50Ms, res.LatencyP99Ms)
			}
			return nil
		},
	}
	c.Flags().IntVar(&opt.N, "n", 100000, "enterprises (each with its own fresh grant)")
	c.Flags().IntVar(&opt.Providers, "providers", 3, "feature providers")
	c.Flags().IntVar(&opt.Repeat, "repeat", 0, "single-enterprise requests for p50/p99 latency")
	c.Flags().Uint64Var(&opt.Seed, "seed", 1, "synthetic data seed")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
