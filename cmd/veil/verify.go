package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"veil/hub"
	"veil/modeling/score"
	veilv1 "veil/proto/veil/v1"
)

func newVerifyCmd() *cobra.Command {
	var cf clientFlags
	var provider, field, op, enterprise, grantArg, out, check, providerKey string
	var value float64
	c := &cobra.Command{
		Use:   "verify",
		Short: "Ask a provider a yes/no question about an enterprise's field, signed by the provider",
		Long: `Asks "is <enterprise>'s <field> at <provider> <op> <value>?" (op: ge, gt, le,
lt, eq, ne). The grant must carry verify:<provider>.<field>; the platform and
the provider both check it and the request is audited. The answer is signed
with the provider's Ed25519 key; save it with --out and anyone can check it
offline with 'veil verify --check result.json' (with --provider-key, against
the provider's published key; with --tls-dir, against the key fetched from the
platform; with neither, against the key included in the file, which proves
only that the file is intact).`,
		Example: `  veil verify --provider tax --field annual_tax_paid --op ge --value 100000 --enterprise 91350100M000100Y43 --grant g.jwt --out result.json --tls-dir bank-a/
  veil verify --check result.json --provider-key tax-verify.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if check != "" {
				return runVerifyCheck(cmd, &cf, check, providerKey)
			}
			if provider == "" || field == "" || enterprise == "" || op == "" {
				return usagef("--provider, --field, --op, --value and --enterprise are required (or --check result.json)")
			}
			if _, err := score.ParseOp(op); err != nil {
				return usagef("--op: %v", err)
			}
			tok, err := readGrant(grantArg)
			if err != nil {
				return usagef("%v", err)
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := hub.VerifyRemote(ctx, conn, &veilv1.VerifyRequest{Provider: provider, Field: field, Op: op, Value: value, Enterprise: enterprise, Grant: tok})
			if err != nil {
				return rpcError("verify", err)
			}
			b, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
			}
			if cf.json {
				_, err := cmd.OutOrStdout().Write(append(b, '\n'))
				return err
			}
			ans := "NO"
			if res.Statement.Answer {
				ans = "YES"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s %s %s %g at %s (signed by %s, key %s)\n", ans, enterprise, field, op, value, provider, provider, res.KeyID)
			if out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "signed result written to %s\n", out)
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&provider, "provider", "", "provider holding the field")
	c.Flags().StringVar(&field, "field", "", "field (column) name")
	c.Flags().StringVar(&op, "op", "", "comparison: ge, gt, le, lt, eq or ne")
	c.Flags().Float64Var(&value, "value", 0, "value to compare with")
	c.Flags().StringVar(&enterprise, "enterprise", "", "the enterprise's USCC")
	c.Flags().StringVar(&grantArg, "grant", "", "grant file (or token)")
	c.Flags().StringVar(&out, "out", "", "save the signed result (JSON) here")
	c.Flags().StringVar(&check, "check", "", "check a saved result offline instead of asking")
	c.Flags().StringVar(&providerKey, "provider-key", "", "with --check: the provider's public key (base64, or a file holding it)")
	return c
}

func runVerifyCheck(cmd *cobra.Command, cf *clientFlags, path, keyArg string) error {
	asJSON := cf.json
	b, err := os.ReadFile(path)
	if err != nil {
		return usagef("--check: %v", err)
	}
	var res score.VerifyResult
	if err := json.Unmarshal(b, &res); err != nil {
		return usagef("--check %s: not a verification result: %v", path, err)
	}
	var trusted ed25519.PublicKey
	if keyArg != "" {
		s := keyArg
		if kb, err := os.ReadFile(keyArg); err == nil {
			s = strings.TrimSpace(string(kb))
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return usagef("--provider-key: not a base64 Ed25519 public key")
		}
		trusted = k
	} else if cf.tlsDir != "" { // fetch the provider's published key from the platform
		conn, ctx, done, err := cf.connect(cmd)
		if err != nil {
			return err
		}
		defer done()
		k, err := veilv1.NewScoringClient(conn).ProviderKey(ctx, &veilv1.ProviderKeyRequest{Provider: res.Statement.Provider})
		if err != nil {
			return rpcError("provider key", err)
		}
		trusted = ed25519.PublicKey(k.GetPublicKey())
	}
	if err := res.Check(trusted); err != nil {
		return withCode(exitRefused, err)
	}
	st := res.Statement
	if asJSON {
		return printJSON(cmd.OutOrStdout(), map[string]any{"valid": true, "trusted_key": trusted != nil, "key_id": res.KeyID, "statement": st})
	}
	ans := "NO"
	if st.Answer {
		ans = "YES"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "valid signature by %s (key %s)\n%s: %s %s %s %g, for %s, %s\n", st.Provider, res.KeyID, ans, st.Enterprise, st.Field, st.Op, st.Value, st.Bank, st.Time.Format("2006-01-02 15:04:05Z"))
	if trusted == nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: checked against the key inside the file; pass --provider-key to check it is %s's published key (key %s)\n", st.Provider, res.KeyID)
	}
	return nil
}

func newQueryCmd() *cobra.Command {
	var cf clientFlags
	var provider, field, enterprise, grantArg string
	c := &cobra.Command{
		Use:   "query",
		Short: "Get the raw value of an enterprise's field (needs a query: scope)",
		Long: `Returns the raw value of <field> at <provider> for the enterprise. Only a
grant with the scope query:<provider>.<field> allows it (verify: scopes do
not); the platform and the provider both check the grant and audit the use.`,
		Example: `  veil query --provider tax --field annual_tax_paid --enterprise 91350100M000100Y43 --grant g.jwt --tls-dir bank-a/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if provider == "" || field == "" || enterprise == "" {
				return usagef("--provider, --field and --enterprise are required")
			}
			tok, err := readGrant(grantArg)
			if err != nil {
				return usagef("%v", err)
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := veilv1.NewScoringClient(conn).Query(ctx, &veilv1.QueryRequest{Provider: provider, Field: field, Enterprise: enterprise, Grant: tok})
			if err != nil {
				return rpcError("query", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"provider": resp.GetProvider(), "field": resp.GetField(), "enterprise": resp.GetEnterprise(), "value": resp.GetValue(), "missing": resp.GetMissing()})
			}
			if resp.GetMissing() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s has no value of %s for %s\n", provider, field, resp.GetEnterprise())
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s = %g (from %s)\n", resp.GetEnterprise(), field, resp.GetValue(), provider)
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&provider, "provider", "", "provider holding the field")
	c.Flags().StringVar(&field, "field", "", "field (column) name")
	c.Flags().StringVar(&enterprise, "enterprise", "", "the enterprise's USCC")
	c.Flags().StringVar(&grantArg, "grant", "", "grant file (or token)")
	return c
}
