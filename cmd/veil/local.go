package main

import "github.com/spf13/cobra"

// newLocalCmd is `veil local`: whole jobs with every party in this process,
// over loopback gRPC with mTLS, so users can try their data before a
// deployment. Each feature adds its subcommand to the list below.
func newLocalCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "local",
		Short: "Run a job with every party in this process (loopback gRPC with mTLS) to try your data",
		Long: `Starts a CA, a platform and one agent per --party inside this process, each a
real gRPC server with mutual TLS on 127.0.0.1 and the platform's state in an
embedded SQLite file, then runs the job exactly as a deployment would (like
FATE's standalone mode). Nothing is mocked.`,
	}
	c.AddCommand(
		newLocalPSICmd(),
	)
	return c
}
