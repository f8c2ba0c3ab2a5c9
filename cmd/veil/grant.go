package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/pki"
)

func newGrantCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "grant",
		Short: "Issue, inspect, revoke and check authorization grants",
		Long: `A grant is a JWT signed by the enterprise (EdDSA, Ed25519) that authorizes one
bank, for one purpose, to use the listed scopes a limited number of times
before it expires:

  score:<model>               a credit score under that model
  verify:<provider>.<field>   a yes/no check of one field at one provider
  query:<provider>.<field>    the value of one field

The bank passes it with every request. The platform, and again each provider
agent for its own fields, checks it; a refusal says why (expired,
not_yet_valid, revoked, wrong_audience, out_of_scope, over_use_count,
unknown_enterprise, bad_signature, alg_not_allowed, ...). Every decision is
written to the audit log before any result is returned.`,
	}
	c.AddCommand(newGrantIssueCmd(), newGrantInspectCmd(), newGrantRevokeCmd(), newGrantCheckCmd())
	return c
}

// enterpriseFlags are for the commands an enterprise runs against the
// platform: it has a signing key, not a certificate, so it connects with
// the platform CA's certificate only (--tls-dir only locates a ca.crt). Its
// dial and connect replace those of clientFlags.
type enterpriseFlags struct {
	clientFlags
	caCert string
}

func (f *enterpriseFlags) register(cmd *cobra.Command) {
	f.registerTLSDir(cmd, "alternatively, a certificate directory whose ca.crt to use (no client certificate is sent)")
	cmd.Flags().StringVar(&f.caCert, "ca-cert", "", "the platform CA's certificate (ca.crt), to check the platform's identity")
}

func (f *enterpriseFlags) dial() (*grpc.ClientConn, error) {
	ca := f.caCert
	if ca == "" && f.tlsDir != "" {
		ca = filepath.Join(f.tlsDir, pki.CACertFile)
	}
	if ca == "" {
		return nil, usagef("--ca-cert is required (the platform CA's ca.crt, published by the operator)")
	}
	pool, err := hub.LoadCAPool(ca)
	if err != nil {
		return nil, err
	}
	return hub.DialPlatformNoCert(pool, f.platform)
}

// connect is clientFlags.connect without a client certificate.
func (f *enterpriseFlags) connect(cmd *cobra.Command) (*grpc.ClientConn, context.Context, func(), error) {
	conn, err := f.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, done := f.session(cmd, conn)
	return conn, ctx, done, nil
}

// readToken reads a grant from a file ("-": stdin) and trims it.
func readToken(path string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read grant: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

type claimsJSON struct {
	Issuer    string   `json:"iss"`
	Audience  string   `json:"aud"`
	ID        string   `json:"jti"`
	IssuedAt  string   `json:"iat"`
	NotBefore string   `json:"nbf"`
	ExpiresAt string   `json:"exp"`
	Purpose   string   `json:"purpose"`
	Scopes    []string `json:"scope"`
	MaxUses   int64    `json:"max_uses"`
}

func toClaimsJSON(c *grant.Claims) claimsJSON {
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	return claimsJSON{c.Issuer, c.Audience, c.ID, f(c.IssuedAt), f(c.NotBefore), f(c.ExpiresAt), c.Purpose, c.Scopes, c.MaxUses}
}

func newGrantIssueCmd() *cobra.Command {
	var keyPath, uscc, to, purpose, id string
	var scopes []string
	var ttl, notBefore time.Duration
	var maxUses int64
	var asJSON bool
	c := &cobra.Command{
		Use:   "issue",
		Short: "Sign a grant with the enterprise's key (offline) and print it",
		Long: `Signs a grant with your key and prints the token (nothing is sent anywhere).
Give the token to the bank; it passes it with every request.`,
		Example: `  veil grant issue --key ent.key --uscc 91110000MA01ABCDE4 --to bank-a --purpose loan-application \
    --scope score:default-v1 --scope verify:tax.annual_tax_paid --ttl 720h --max-uses 5 > grant.jwt
  veil grant issue --key ent.key --uscc 91110000MA01ABCDE4 --to bank-a --purpose credit-line \
    --scope score:default-v1 --ttl 24h --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := parseUSCC(uscc)
			if err != nil {
				return err
			}
			switch {
			case keyPath == "":
				return usagef("--key is required (your private key from 'veil keys gen')")
			case to == "":
				return usagef("--to is required (the bank's party name)")
			case purpose == "":
				return usagef("--purpose is required (e.g. loan-application)")
			case len(scopes) == 0:
				return usagef("at least one --scope is required (score:<model>, verify:<provider>.<field> or query:<provider>.<field>)")
			case ttl <= 0:
				return usagef("--ttl must be positive")
			case maxUses < 1:
				return usagef("--max-uses must be at least 1")
			}
			for _, s := range scopes {
				if _, err := grant.ParseScope(s); err != nil {
					return usagef("--scope %q: %v", s, err)
				}
			}
			key, err := keys.LoadPrivate(keyPath)
			if err != nil {
				return err
			}
			now := time.Now()
			nbf := now.Add(notBefore)
			tok, err := grant.Issue(key, grant.Claims{Issuer: u, Audience: to, ID: id, IssuedAt: now, NotBefore: nbf,
				ExpiresAt: nbf.Add(ttl), Purpose: purpose, Scopes: scopes, MaxUses: maxUses})
			if err != nil {
				return usagef("%v", err)
			}
			if asJSON {
				c, err := grant.Inspect(tok)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), map[string]any{"token": tok, "claims": toClaimsJSON(c)})
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "your private key file (.key)")
	c.Flags().StringVar(&uscc, "uscc", "", "your Unified Social Credit Code (iss and sub)")
	c.Flags().StringVar(&to, "to", "", "the bank's party name (aud)")
	c.Flags().StringVar(&purpose, "purpose", "", "why the bank may use your data (e.g. loan-application)")
	c.Flags().StringArrayVar(&scopes, "scope", nil, "what the bank may ask for (repeatable)")
	c.Flags().DurationVar(&ttl, "ttl", 720*time.Hour, "how long the grant is valid")
	c.Flags().DurationVar(&notBefore, "not-before", 0, "delay before the grant becomes valid")
	c.Flags().Int64Var(&maxUses, "max-uses", 1, "uses allowed (counted at the platform and at each provider)")
	c.Flags().StringVar(&id, "id", "", "grant ID (jti); default random")
	c.Flags().BoolVar(&asJSON, "json", false, "print the token and its claims as JSON")
	return c
}

func newGrantInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Decode a grant for display (UNVERIFIED: nothing is checked)",
		Long: `Prints a grant's claims without verifying its signature or anything else. Use
'veil grant check' to ask the platform whether it would accept it.`,
		Example: `  veil grant inspect grant.jwt
  veil grant issue ... | veil grant inspect - --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := readToken(args[0], cmd.InOrStdin())
			if err != nil {
				return err
			}
			c, err := grant.Inspect(tok)
			if err != nil {
				return usagef("not a grant: %v", err)
			}
			cj := toClaimsJSON(c)
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"verified": false, "claims": cj})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "UNVERIFIED: decoded without checking the signature, the key or revocation")
			fmt.Fprintf(w, "enterprise  %s\nbank        %s\ngrant id    %s\npurpose     %s\nscopes      %s\nvalid       %s .. %s\nissued      %s\nmax uses    %d\n",
				cj.Issuer, cj.Audience, cj.ID, cj.Purpose, strings.Join(cj.Scopes, " "), cj.NotBefore, cj.ExpiresAt, cj.IssuedAt, cj.MaxUses)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return c
}

func newGrantRevokeCmd() *cobra.Command {
	var ef enterpriseFlags
	var keyPath, uscc, id, grantFile string
	c := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a grant (the enterprise signs the revocation; no certificate needed)",
		Long: `Signs a revocation of one of your grants with your key and sends it to the
platform, which logs it and forwards the signed statement to every provider
agent; each agent checks your signature itself. From then on the grant is
refused everywhere with reason "revoked".`,
		Example: `  veil grant revoke --platform plat:7443 --ca-cert ca.crt --key ent.key --uscc 91110000MA01ABCDE4 --id 3f2a...
  veil grant revoke --platform plat:7443 --ca-cert ca.crt --key ent.key --grant grant.jwt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if grantFile != "" {
				tok, err := readToken(grantFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				c, err := grant.Inspect(tok)
				if err != nil {
					return usagef("--grant: %v", err)
				}
				if id == "" {
					id = c.ID
				}
				if uscc == "" {
					uscc = c.Issuer
				}
			}
			u, err := parseUSCC(uscc)
			if err != nil {
				return err
			}
			if id == "" {
				return usagef("--id (the grant's jti) or --grant is required")
			}
			if keyPath == "" {
				return usagef("--key is required (your private key)")
			}
			key, err := keys.LoadPrivate(keyPath)
			if err != nil {
				return err
			}
			conn, ctx, done, err := ef.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := hub.RevokeGrant(ctx, conn, key, u, id)
			if err != nil {
				return rpcError("grant revoke", err)
			}
			if ef.json {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			w := cmd.OutOrStdout()
			if resp.GetAlreadyRevoked() {
				fmt.Fprintf(w, "grant %s of %s was already revoked\n", resp.GetGrantId(), resp.GetUscc())
			} else {
				fmt.Fprintf(w, "revoked grant %s of %s (audit entry #%d)\n", resp.GetGrantId(), resp.GetUscc(), resp.GetAuditSeq())
			}
			fmt.Fprintf(w, "agents notified: %s\n", dash(strings.Join(resp.GetAgentsNotified(), ", ")))
			for _, f := range resp.GetAgentsFailed() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: agent not reached (the platform refuses the grant; the agent learns of the revocation when re-synced): %s\n", f)
			}
			return nil
		},
	}
	ef.register(c)
	c.Flags().StringVar(&keyPath, "key", "", "your private key file (.key)")
	c.Flags().StringVar(&uscc, "uscc", "", "your Unified Social Credit Code")
	c.Flags().StringVar(&id, "id", "", "the grant's ID (jti; see 'veil grant inspect')")
	c.Flags().StringVar(&grantFile, "grant", "", "take the ID and USCC from this grant file instead")
	return c
}

func newGrantCheckCmd() *cobra.Command {
	var cf clientFlags
	var grantFile, subject string
	var scopes []string
	c := &cobra.Command{
		Use:   "check",
		Short: "Ask the platform whether it would accept a grant (bank; consumes no use)",
		Long: `Sends the grant to the platform, which runs the full check (signature,
enterprise key, audience = your certificate's name, validity, scopes,
revocation, remaining uses) and says whether it would accept it, and if not,
why. The check is written to the audit log but consumes no use. Exit status
3 when refused.`,
		Example: `  veil grant check --tls-dir bank/ --grant grant.jwt --scope score:default-v1
  veil grant check --tls-dir bank/ --grant grant.jwt --scope verify:tax.annual_tax_paid --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if grantFile == "" {
				return usagef("--grant is required (the grant file the enterprise gave you)")
			}
			if len(scopes) == 0 {
				return usagef("at least one --scope is required")
			}
			tok, err := readToken(grantFile, cmd.InOrStdin())
			if err != nil {
				return err
			}
			conn, id, err := cf.dial()
			if err != nil {
				return err
			}
			ctx, done := cf.session(cmd, conn)
			defer done()
			resp, err := hub.CheckGrant(ctx, conn, tok, subject, scopes...)
			if err != nil {
				return rpcError("grant check", err)
			}
			if cf.json {
				if err := printJSON(cmd.OutOrStdout(), resp); err != nil {
					return err
				}
			} else if resp.GetAllowed() {
				fmt.Fprintf(cmd.OutOrStdout(), "allowed: grant %s of %s for %s; %d of %d uses recorded at the platform; expires %s\n",
					resp.GetGrantId(), resp.GetSubject(), strings.Join(scopes, " "), resp.GetUses(), resp.GetMaxUses(), time.Unix(resp.GetExpiresUnix(), 0).UTC().Format(time.RFC3339))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "refused: %s", resp.GetReason())
				if resp.GetDetail() != "" {
					fmt.Fprintf(cmd.OutOrStdout(), ": %s", resp.GetDetail())
				}
				fmt.Fprintln(cmd.OutOrStdout())
			}
			if !resp.GetAllowed() {
				return withCode(exitRefused, fmt.Errorf("grant refused for %s (%s): %s", id.Identity.Name, id.Identity.Role, resp.GetReason()))
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&grantFile, "grant", "", "the grant file ('-' for stdin)")
	c.Flags().StringArrayVar(&scopes, "scope", nil, "the scope you would ask for (repeatable)")
	c.Flags().StringVar(&subject, "subject", "", "the enterprise (USCC) you would ask about; default: not checked")
	return c
}
