package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1 // the command failed
	exitUsage    = 2 // bad flags or arguments
	exitRefused  = 3 // the request was refused (permission, grant, revocation)
	exitMismatch = 4 // a verification found a problem (audit log altered, bad signature)
)

// exitError carries a specific exit code.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "veil:", err)
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	if isUsageError(err) {
		return exitUsage
	}
	return exitError
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "veil",
		Short: "Privacy-preserving joint credit modelling for small and medium-sized enterprises",
		Long: `Veil lets data providers and a platform train and score credit models together
with homomorphic encryption (CKKS with multiparty keys) and private set
intersection, so business-secret data never leaves the provider. Banks receive
only scores or verification results, and only after the enterprise has
authorized them. Auditors verify the authorization and usage log themselves.

Every setting can come from a flag, from a VEIL_* environment variable
(--data-dir -> VEIL_DATA_DIR) or from a config file (--config), in that order.`,
		Example: `  # The whole story on bundled real data, all parties on loopback:
  veil demo

  # A real deployment:
  veil pki init --dir ca/
  veil pki issue --ca ca/ --name platform --role platform --out platform/
  veil pki issue --ca ca/ --name tax --role provider --out tax/
  veil platform serve --listen :7443 --data-dir platform-data/ --tls-dir platform/
  veil agent serve --listen :7501 --tls-dir tax/ --data tax.csv --id-column uscc
  veil party add --tls-dir platform/ --name tax --role provider --address 127.0.0.1:7501`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "config file: lines of 'flag-name = value' (or 'flag-name: value'); env VEIL_CONFIG")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return applyConfig(cmd)
	}
	root.AddCommand(
		newDemoCmd(),
		newPKICmd(),
		newPlatformCmd(),
		newAgentCmd(),
		newPartyCmd(),
		newPSICmd(),
		newLocalCmd(),
		newBenchCmd(),
		newTrainCmd(), newModelCmd(),
		newKeysCmd(), newEnterpriseCmd(), newGrantCmd(), newAuditCmd(),
		newBankCmd(), newScoreCmd(), newPrescreenCmd(), newVerifyCmd(), newQueryCmd(),
	)
	annotateEnv(root)
	return root
}

// annotateEnv adds each flag's environment variable to its help text.
func annotateEnv(c *cobra.Command) {
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, "env VEIL_") {
			return
		}
		f.Usage += " [env " + envName(f.Name) + "]"
	})
	for _, sub := range c.Commands() {
		annotateEnv(sub)
	}
}
