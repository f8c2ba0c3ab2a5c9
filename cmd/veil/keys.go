package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"veil/authz/keys"
)

func newKeysCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "keys",
		Short: "Create and inspect Ed25519 keys (an enterprise's grant-signing key)",
		Long: `An enterprise (the information subject) signs grants and revocations with an
Ed25519 key. The operator registers its public half with the platform
('veil enterprise register'); the private half never leaves the enterprise.`,
	}
	c.AddCommand(newKeysGenCmd(), newKeysFingerprintCmd())
	return c
}

func newKeysGenCmd() *cobra.Command {
	var out string
	var asJSON bool
	c := &cobra.Command{
		Use:   "gen",
		Short: "Generate a key pair: <out>.key (private, mode 0600) and <out>.pub",
		Long: `Writes <out>.key (PKCS #8 PEM, mode 0600) and <out>.pub (PKIX PEM). Existing
files are never overwritten. Give the .pub file and the printed fingerprint to
the platform operator; keep the .key file safe: whoever holds it can issue
grants over your data.`,
		Example: `  veil keys gen --out ent
  openssl pkey -in ent.key -text -noout   # standard formats`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required (a path prefix such as 'ent')")
			}
			pub, _, err := keys.WritePair(out, nil)
			if err != nil {
				return err
			}
			fp := keys.Fingerprint(pub)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]string{"private_key": out + ".key", "public_key": out + ".pub", "fingerprint": fp})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key (private: keep it safe) and %s.pub\nfingerprint %s\n", out, out, fp)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "path prefix of the key files")
	c.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return c
}

func newKeysFingerprintCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "fingerprint FILE.pub",
		Short:   "Print a public key's fingerprint, to compare out of band",
		Example: `  veil keys fingerprint ent.pub`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := keys.LoadPublic(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), keys.Fingerprint(pub))
			return nil
		},
	}
}
