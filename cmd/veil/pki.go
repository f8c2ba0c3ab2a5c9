package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"veil/hub/pki"
)

func newPKICmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "pki",
		Short: "Create the platform CA and issue party certificates",
		Long: `Every party talks over mutual TLS with a certificate from the platform CA.
The certificate carries the party's name and role (provider, bank, auditor or
platform); the role decides what the party may call.`,
	}
	c.AddCommand(newPKIInitCmd(), newPKIIssueCmd())
	return c
}

func newPKIInitCmd() *cobra.Command {
	var dir string
	var validity time.Duration
	c := &cobra.Command{
		Use:   "init",
		Short: "Create a new platform CA",
		Long: `Creates ca.crt and ca.key in --dir. The CA key can mint identities: keep it on
the platform host (or offline) and never copy it to a party.`,
		Example: `  veil pki init --dir ca/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir is required")
			}
			if err := pki.InitCA(dir, validity); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created CA in %s (ca.crt, ca.key)\n", dir)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory for ca.crt and ca.key (created)")
	c.Flags().DurationVar(&validity, "validity", 10*365*24*time.Hour, "how long the CA certificate is valid")
	return c
}

func newPKIIssueCmd() *cobra.Command {
	var caDir, name, role, out string
	var hosts []string
	var validity time.Duration
	c := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate and key to a party",
		Long: `Writes party.crt, party.key and ca.crt to --out. Give the directory to the
party; it passes it to its commands with --tls-dir.`,
		Example: `  veil pki issue --ca ca/ --name tax --role provider --out tax/
  veil pki issue --ca ca/ --name bank-a --role bank --out bank-a/ --host bank-a.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caDir == "" || name == "" || role == "" || out == "" {
				return usagef("--ca, --name, --role and --out are required")
			}
			r, err := pki.ParseRole(role)
			if err != nil {
				return usageError{err}
			}
			if err := pki.Issue(caDir, out, pki.IssueRequest{Name: name, Role: r, Hosts: hosts, Validity: validity}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s (role %s) in %s (party.crt, party.key, ca.crt)\n", name, r, out)
			return nil
		},
	}
	c.Flags().StringVar(&caDir, "ca", "", "CA directory made by 'veil pki init'")
	c.Flags().StringVar(&name, "name", "", "party name (lower-case letters, digits, '.', '_', '-')")
	c.Flags().StringVar(&role, "role", "", "role: provider, bank, auditor or platform")
	c.Flags().StringVar(&out, "out", "", "output directory (created)")
	c.Flags().StringSliceVar(&hosts, "host", nil, "extra DNS name or IP for the certificate (repeatable)")
	c.Flags().DurationVar(&validity, "validity", 365*24*time.Hour, "certificate validity")
	return c
}
