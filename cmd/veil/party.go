package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	veilv1 "veil/proto/veil/v1"
)

func newPartyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "party",
		Short: "Register and list the parties the platform works with (operator)",
		Long: `The operator registers each party with the platform. For a party that runs an
agent, the platform dials the address and checks that the certificate there
carries the party's name and role before recording it.`,
	}
	c.AddCommand(newPartyAddCmd(), newPartyListCmd(), newPartyRemoveCmd(), newPartyShowCmd())
	return c
}

func newPartyAddCmd() *cobra.Command {
	var cf clientFlags
	var name, role, address string
	c := &cobra.Command{
		Use:   "add",
		Short: "Register a party (the platform dials and checks its agent)",
		Example: `  veil party add --tls-dir platform/ --name tax --role provider --address 10.0.0.5:7501
  veil party add --tls-dir platform/ --name bank-a --role bank`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || role == "" {
				return usagef("--name and --role are required")
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := veilv1.NewRegistryClient(conn).AddParty(ctx, &veilv1.AddPartyRequest{Name: name, Role: role, Address: address})
			if err != nil {
				return rpcError("party add", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			p := resp.GetParty()
			fmt.Fprintf(cmd.OutOrStdout(), "registered %s (role %s)", p.GetName(), p.GetRole())
			if p.GetAddress() != "" {
				fmt.Fprintf(cmd.OutOrStdout(), " at %s; certificate sha256 %s…; agent reports %d rows", p.GetAddress(), short(p.GetCertSha256()), resp.GetHealth().GetRows())
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&name, "name", "", "party name, as in its certificate")
	c.Flags().StringVar(&role, "role", "", "provider, bank, auditor or platform, as in its certificate")
	c.Flags().StringVar(&address, "address", "", "host:port of the party's agent (omit for pure clients such as a bank without labels)")
	return c
}

func newPartyListCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:     "list",
		Short:   "List registered parties",
		Example: `  veil party list --tls-dir platform/ --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := veilv1.NewRegistryClient(conn).ListParties(ctx, &veilv1.ListPartiesRequest{})
			if err != nil {
				return rpcError("party list", err)
			}
			if cf.json {
				type row struct {
					Name       string `json:"name"`
					Role       string `json:"role"`
					Address    string `json:"address,omitempty"`
					CertSHA256 string `json:"cert_sha256,omitempty"`
					AddedAt    string `json:"added_at"`
				}
				rows := []row{}
				for _, p := range resp.GetParties() {
					rows = append(rows, row{p.GetName(), p.GetRole(), p.GetAddress(), p.GetCertSha256(), time.Unix(p.GetAddedUnix(), 0).UTC().Format(time.RFC3339)})
				}
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tADDRESS\tCERT SHA-256\tADDED")
			for _, p := range resp.GetParties() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.GetName(), p.GetRole(), dash(p.GetAddress()), dash(short(p.GetCertSha256())), time.Unix(p.GetAddedUnix(), 0).UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cf.register(c)
	return c
}

func newPartyRemoveCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a party from the registry",
		Example: `  veil party remove --tls-dir platform/ tax`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			if _, err := veilv1.NewRegistryClient(conn).RemoveParty(ctx, &veilv1.RemovePartyRequest{Name: args[0]}); err != nil {
				return rpcError("party remove", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", args[0])
			return nil
		},
	}
	cf.register(c)
	return c
}

func newPartyShowCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a registered agent's dataset summary (row count and feature names, never values)",
		Example: `  veil party show --tls-dir platform/ tax --json`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			s, err := veilv1.NewRegistryClient(conn).PartySummary(ctx, &veilv1.PartySummaryRequest{Name: args[0]})
			if err != nil {
				return rpcError("party show", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), summaryJSON(s))
			}
			printSummary(cmd, s)
			return nil
		},
	}
	cf.register(c)
	return c
}

type datasetSummary struct {
	Party        string   `json:"party"`
	Rows         int64    `json:"rows"`
	IDColumn     string   `json:"id_column"`
	Features     []string `json:"features"`
	Label        string   `json:"label,omitempty"`
	WarningCount int64    `json:"warning_count"`
}

func summaryJSON(s *veilv1.DatasetSummary) datasetSummary {
	return datasetSummary{Party: s.GetParty(), Rows: s.GetRows(), IDColumn: s.GetIdColumn(), Features: s.GetFeatures(), Label: s.GetLabelName(), WarningCount: s.GetWarningCount()}
}

func printSummary(cmd *cobra.Command, s *veilv1.DatasetSummary) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: %d rows, id column %q, %d features", s.GetParty(), s.GetRows(), s.GetIdColumn(), len(s.GetFeatures()))
	if s.GetHasLabel() {
		fmt.Fprintf(w, ", label %q", s.GetLabelName())
	}
	if s.GetWarningCount() > 0 {
		fmt.Fprintf(w, ", %d load warnings", s.GetWarningCount())
	}
	fmt.Fprintf(w, "\n  features: %s\n", strings.Join(s.GetFeatures(), ", "))
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
