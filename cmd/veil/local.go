package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	"veil/hub/local"
)

// localSubcommands are the subcommands of `veil local`: each runs one job
// with every party in this process. Add yours here (one line).
func localSubcommands() []*cobra.Command {
	return []*cobra.Command{
		newLocalPSICmd(),
		newLocalTrainCmd(),
	}
}

// newLocalCmd is `veil local`: try Veil on your own files before a
// deployment, with a platform and one agent per party in this process, on
// exactly the deployment's code path (gRPC with mutual TLS on loopback).
func newLocalCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "local",
		Short: "Run a job on your files with every party in this process (loopback gRPC, mTLS)",
		Long: `Starts a certificate authority, a platform and one agent per party inside this
process, each a real gRPC server with mutual TLS on 127.0.0.1 and the platform's
state in SQLite, and runs one job on exactly the code path of a deployment (like
FATE's standalone mode). Use it to try your data before deploying.`,
		Example: `  veil local train --party bank=bank.csv --party tax=tax.csv --label-party bank --label y --id-column uscc --json`,
	}
	c.AddCommand(localSubcommands()...)
	return c
}

// startLocal starts an in-process deployment for a `veil local` (or `veil
// bench`) command in dir, or in a temporary directory removed by the
// returned stop function.
func startLocal(cmd *cobra.Command, dir string, specs []local.AgentSpec) (*local.Deployment, func(), error) {
	work, cleanup := dir, func() {}
	if work == "" {
		d, err := os.MkdirTemp("", "veil-local-")
		if err != nil {
			return nil, nil, err
		}
		work, cleanup = d, func() { os.RemoveAll(d) }
	}
	log, err := newLogger(cmd, io.Discard)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	dep, err := local.Start(cmd.Context(), work, log, specs...)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return dep, func() { dep.Stop(); cleanup() }, nil
}
