package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"veil/hub"
	"veil/internal/fileutil"
	"veil/modeling/score"
	"veil/mpc/he"
)

func newBankCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bank",
		Short: "A bank's own scoring keys",
		Long: `A bank receives scores under its own CKKS key: the platform and the providers
switch each result to the bank's public key, and only the bank's secret key
decrypts it. The secret key never leaves the bank's machine.`,
	}
	keys := &cobra.Command{Use: "keys", Short: "Generate and register the bank's scoring key pair"}
	keys.AddCommand(newBankKeysGenCmd(), newBankKeysRegisterCmd())
	c.AddCommand(keys)
	return c
}

func newBankKeysGenCmd() *cobra.Command {
	var out, paramSet string
	var force bool
	c := &cobra.Command{
		Use:   "gen",
		Short: "Generate the bank's CKKS scoring key pair",
		Long: `Writes <out>.key (the key pair, mode 0600: keep it on this machine) and
<out>.pub (the public key with its parameter set and fingerprint, to register
with 'veil bank keys register').`,
		Example: `  veil bank keys gen --out bankkey`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required (a path prefix: <out>.key and <out>.pub are written)")
			}
			params, err := he.ByName(paramSet)
			if err != nil {
				return usagef("--params: %v", err)
			}
			if _, err := os.Stat(out + ".key"); err == nil && !force {
				return usagef("%s.key exists (use --force to replace it)", out)
			}
			k, err := score.GenerateBankKey(params)
			if err != nil {
				return err
			}
			sec, err := k.MarshalSecret()
			if err != nil {
				return err
			}
			pub, err := k.MarshalPublic()
			if err != nil {
				return err
			}
			if err := fileutil.WriteAtomic(out+".key", sec, 0o600); err != nil {
				return fmt.Errorf("write key: %w", err)
			}
			if err := fileutil.WriteAtomic(out+".pub", pub, 0o644); err != nil {
				return fmt.Errorf("write public key: %w", err)
			}
			pkb, err := k.PublicKey().MarshalBinary()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s.key (secret, keep it here) and %s.pub (key %s, parameter set %s)\n", out, out, score.KeyID(ed25519.PublicKey(pkb)), params.Name())
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "bankkey", "path prefix of the key files")
	c.Flags().StringVar(&paramSet, "params", score.DefaultParamSet, "CKKS parameter set (the models' scoring set)")
	c.Flags().BoolVar(&force, "force", false, "replace an existing key")
	return c
}

// loadBankKey reads <path> or <path>.key.
func loadBankKey(path string) (*score.BankKey, error) {
	if path == "" {
		return nil, usagef("--key is required (the file from 'veil bank keys gen')")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(path + ".key")
	}
	if err != nil {
		return nil, fmt.Errorf("bank key: %w", err)
	}
	k, err := score.UnmarshalBankKey(b)
	if err != nil {
		return nil, usagef("bank key %s: %v", path, err)
	}
	return k, nil
}

func newBankKeysRegisterCmd() *cobra.Command {
	var cf clientFlags
	var keyPath string
	c := &cobra.Command{
		Use:     "register",
		Short:   "Register the bank's scoring public key with the platform",
		Example: `  veil bank keys register --key bankkey --tls-dir bank-a/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := loadBankKey(keyPath)
			if err != nil {
				return err
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := hub.RegisterBankKey(ctx, conn, k)
			if err != nil {
				return rpcError("bank keys register", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"bank": resp.GetBank(), "param_set": resp.GetParamSet(), "key_id": resp.GetKeyId()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered the scoring key of %s (%s, key %s)\n", resp.GetBank(), resp.GetParamSet(), resp.GetKeyId())
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&keyPath, "key", "bankkey", "bank key file (or prefix) from 'veil bank keys gen'")
	return c
}
