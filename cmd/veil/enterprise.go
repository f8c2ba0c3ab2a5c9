package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"veil/authz/keys"
	"veil/hub"
	"veil/modeling/dataset"
	veilv1 "veil/proto/veil/v1"
)

func newEnterpriseCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "enterprise",
		Short: "Register enterprises' grant-signing keys with the platform (operator)",
		Long: `The platform keeps the directory of enterprises' Ed25519 public keys; grants
are checked against it, at the platform and again at every provider agent
(the platform pushes the directory to them). In real life registration
follows identity checks. Every registration is an audit log entry that the
enterprise itself sees with 'veil audit mine'.`,
	}
	c.AddCommand(newEnterpriseRegisterCmd(), newEnterpriseListCmd())
	return c
}

// parseUSCC normalises and validates a Unified Social Credit Code.
func parseUSCC(s string) (string, error) {
	if s == "" {
		return "", usagef("--uscc is required (the enterprise's 18-character Unified Social Credit Code)")
	}
	u := dataset.NormalizeID(s)
	if err := dataset.ValidUSCC(u); err != nil {
		return "", usagef("--uscc %q: %v", s, err)
	}
	return u, nil
}

func newEnterpriseRegisterCmd() *cobra.Command {
	var cf clientFlags
	var uscc, pubPath string
	var replace bool
	c := &cobra.Command{
		Use:   "register",
		Short: "Record an enterprise's public key (platform role)",
		Example: `  veil enterprise register --tls-dir platform/ --uscc 91110000MA01ABCDE4 --pubkey ent.pub
  veil enterprise register --tls-dir platform/ --uscc 91110000MA01ABCDE4 --pubkey new.pub --replace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := parseUSCC(uscc)
			if err != nil {
				return err
			}
			if pubPath == "" {
				return usagef("--pubkey is required (the enterprise's .pub file from 'veil keys gen')")
			}
			pub, err := keys.LoadPublic(pubPath)
			if err != nil {
				return usagef("--pubkey: %v", err)
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := hub.RegisterEnterprise(ctx, conn, u, pub, replace)
			if err != nil {
				return rpcError("enterprise register", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			w := cmd.OutOrStdout()
			if resp.GetChanged() {
				fmt.Fprintf(w, "registered %s with key %s (audit entry #%d)\n", u, keys.Fingerprint(pub), resp.GetAuditSeq())
			} else {
				fmt.Fprintf(w, "%s was already registered with key %s (nothing changed)\n", u, keys.Fingerprint(pub))
			}
			fmt.Fprintf(w, "agents updated: %s\n", dash(strings.Join(resp.GetAgentsNotified(), ", ")))
			for _, f := range resp.GetAgentsFailed() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: agent not updated (it will refuse this enterprise's grants until re-synced with 'veil party add'): %s\n", f)
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&uscc, "uscc", "", "the enterprise's Unified Social Credit Code")
	c.Flags().StringVar(&pubPath, "pubkey", "", "the enterprise's public key file (.pub)")
	c.Flags().BoolVar(&replace, "replace", false, "replace a different key already registered")
	return c
}

func newEnterpriseListCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:     "list",
		Short:   "List registered enterprises (platform or auditor role)",
		Example: `  veil enterprise list --tls-dir platform/ --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := veilv1.NewAuthzClient(conn).ListEnterprises(ctx, &veilv1.AuthzListEnterprisesRequest{})
			if err != nil {
				return rpcError("enterprise list", err)
			}
			if cf.json {
				type row struct {
					USCC         string `json:"uscc"`
					Fingerprint  string `json:"fingerprint"`
					RegisteredAt string `json:"registered_at"`
				}
				rows := []row{}
				for _, e := range resp.GetEnterprises() {
					rows = append(rows, row{e.GetUscc(), e.GetFingerprint(), time.Unix(e.GetRegisteredUnix(), 0).UTC().Format(time.RFC3339)})
				}
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USCC\tKEY FINGERPRINT\tREGISTERED")
			for _, e := range resp.GetEnterprises() {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", e.GetUscc(), e.GetFingerprint(), time.Unix(e.GetRegisteredUnix(), 0).UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cf.register(c)
	return c
}
