package main

import "github.com/spf13/cobra"

// newBenchCmd is `veil bench`: benchmarks that print figures beside a
// baseline measured in the same run. Each feature adds its subcommand to
// the list below.
func newBenchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Measure PSI, training and scoring against baselines measured in the same run",
		Long: `Benchmarks print their figures beside a baseline measured in the same run
(the raw crypto floor or plaintext Go), since shared machines are noisy: read
the ratios. bench/README.md records the figures measured on the reference
machine and the commands used.`,
	}
	c.AddCommand(
		newBenchPSICmd(),
	)
	return c
}
