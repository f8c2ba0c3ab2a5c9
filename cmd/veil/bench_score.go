package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"veil/bench"
)

func newBenchScoreCmd() *cobra.Command {
	var opt bench.ScoreOptions
	var asJSON, inProcess, quiet bool
	c := &cobra.Command{
		Use:   "score",
		Short: "Batch scoring throughput, latency and a load test over loopback gRPC, grant checks and audit included",
		Long: `Starts a deployment on this machine: the platform and every agent (a label
holder and --providers providers) as separate child processes of this binary
('veil platform serve', 'veil agent serve' on 127.0.0.1, gRPC with mTLS,
SQLite, the audit log), trains a small model, registers --n enterprises in
bulk (audit entries, then the key directory; each agent gets the directory in
one Sync), each with its own key and a fresh grant, and scores them all as a
bank: every grant is checked at the platform and at each provider, and every
decision is audited before any result is released. It reports the wall
throughput, each party's CPU time (from /proc/<pid>/stat), the busiest
party's CPU per enterprise and the throughput it implies for a deployment
where each party has 2 cores, the time per stage, and a second batch with the
same grants (verification cache).

--repeat R adds R single-enterprise requests for p50/p99 latency.
--clients C --duration D adds a load test: C concurrent bank clients for D,
and checks that no request failed and no audit entry (or provider usage
record) was lost. The command fails if the load test does not pass.`,
		Example: `  veil bench score --n 100000 --json
  veil bench score --n 1 --repeat 200 --json
  veil bench score --n 1000 --skip-batches --clients 64 --duration 30s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.N < 1 {
				return usagef("--n must be at least 1")
			}
			if (opt.Clients > 0) != (opt.Duration > 0) {
				return usagef("--clients and --duration go together")
			}
			if !inProcess {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("bench score: find this executable to start the parties: %w", err)
				}
				opt.Exe = exe
			}
			if !quiet {
				opt.Progress = cmd.ErrOrStderr()
			}
			res, err := bench.RunScore(cmd.Context(), opt)
			if err != nil {
				return err
			}
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				printScoreBench(cmd, res)
			}
			if res.Load != nil && !res.Load.OK {
				return fmt.Errorf("bench score: load test failed: %d errors (first: %s), %d audit entries lost, usage records %v (want %d each)",
					res.Load.Errors, res.Load.FirstError, res.Load.AuditLost, res.Load.UsageRecorded, res.Load.UsageExpected)
			}
			return nil
		},
	}
	c.Flags().IntVar(&opt.N, "n", 100000, "enterprises (each with its own fresh grant)")
	c.Flags().IntVar(&opt.Providers, "providers", 3, "feature providers")
	c.Flags().IntVar(&opt.Repeat, "repeat", 0, "single-enterprise requests for p50/p99 latency")
	c.Flags().IntVar(&opt.Chunk, "chunk", 0, "rows per Score call in the batches (0: one ciphertext's worth, 16384)")
	c.Flags().IntVar(&opt.Concurrency, "concurrency", 0, "Score calls in flight in the batches (0: 2)")
	c.Flags().BoolVar(&opt.SkipBatches, "skip-batches", false, "skip the two batches of --n enterprises")
	c.Flags().IntVar(&opt.Clients, "clients", 0, "load test: concurrent bank clients")
	c.Flags().DurationVar(&opt.Duration, "duration", 0, "load test: how long the clients send requests")
	c.Flags().IntVar(&opt.LoadRows, "load-rows", 1, "load test: enterprises per request")
	c.Flags().Uint64Var(&opt.Seed, "seed", 1, "synthetic data seed")
	c.Flags().BoolVar(&inProcess, "in-process", false, "run every party in this process instead of child processes (CPU not separated per party)")
	c.Flags().BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printScoreBench(cmd *cobra.Command, res *bench.ScoreResult) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%d enterprises, %d providers, %d cores, parties in %s process(es) (setup %.1fs; load avg %s)\n", res.N, res.Providers, res.Cores, res.Processes, res.SetupSeconds, res.LoadAverage)
	batch := func(name string, b *bench.BatchFigures) {
		if b == nil {
			return
		}
		fmt.Fprintf(w, "%s: %.2fs, %.0f/s wall; busiest %s %.0f us CPU per enterprise", name, b.Seconds, b.PerSecond, b.Busiest, b.BusiestMicros)
		if b.DerivedPerSec > 0 {
			fmt.Fprintf(w, " -> %.0f/s with 2 cores per party", b.DerivedPerSec)
		}
		fmt.Fprintln(w)
		for _, p := range b.CPU {
			fmt.Fprintf(w, "  cpu %-12s %7.2fs  %6.1f us/enterprise\n", p.Party, p.CPUSeconds, p.MicrosPer)
		}
		var stages []string
		for k := range b.StageSeconds {
			stages = append(stages, k)
		}
		sort.Strings(stages)
		for _, k := range stages {
			fmt.Fprintf(w, "  stage %-18s %.2fs\n", k, b.StageSeconds[k])
		}
	}
	batch("first batch", res.First)
	batch("second batch", res.Second)
	if res.CacheSpeedup > 0 {
		fmt.Fprintf(w, "second batch (same grants) %.1fx faster\n", res.CacheSpeedup)
	}
	if res.LatencyP50Ms > 0 {
		fmt.Fprintf(w, "latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs)
	}
	if l := res.Load; l != nil {
		fmt.Fprintf(w, "load: %d clients, %.1fs: %d requests (%.1f/s), %d errors, p50 %.0f ms, p99 %.0f ms; audit entries +%d (expected %d, lost %d); usage records %v (expected %d each); ok=%v\n",
			l.Clients, l.Seconds, l.Requests, l.RequestsPerSec, l.Errors, l.LatencyP50Ms, l.LatencyP99Ms, l.AuditAfter-l.AuditBefore, l.AuditExpected, l.AuditLost, l.UsageRecorded, l.UsageExpected, l.OK)
	}
}
