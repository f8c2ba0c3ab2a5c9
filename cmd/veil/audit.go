package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"veil/authz/audit"
	"veil/authz/keys"
	"veil/hub"
	veilv1 "veil/proto/veil/v1"
)

func newAuditCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit",
		Short: "Read and verify the audit log (enterprises, auditors, providers)",
		Long: `The platform's audit log records every enterprise registration, every grant
revocation, every allowed or refused request (with the reason) and every
PSI, training and scoring job, each committed before any result is released.
It is an RFC 6962 Merkle tree of canonical-JSON entries with checkpoints
signed by the platform's Ed25519 key (signed-note format).

Pin the platform's checkpoint key: get it once out of band (the operator
runs 'veil audit log-key') and pass it with --log-key or VEIL_LOG_KEY.
Without it the key is fetched from the platform, which proves nothing
against that platform, and the commands say so.`,
	}
	c.AddCommand(newAuditLogKeyCmd(), newAuditMineCmd(), newAuditVerifyCmd(), newAuditQueryCmd(), newAuditExportCmd())
	return c
}

func newAuditLogKeyCmd() *cobra.Command {
	var ef enterpriseFlags
	c := &cobra.Command{
		Use:   "log-key",
		Short: "Print the platform's checkpoint verification key (to pin)",
		Example: `  veil audit log-key --platform plat:7443 --ca-cert ca.crt > platform.logkey
  export VEIL_LOG_KEY=$(cat platform.logkey)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, ctx, done, err := ef.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			k, err := hub.AuditLogKey(ctx, conn)
			if err != nil {
				return rpcError("audit log-key", err)
			}
			if ef.json {
				return printJSON(cmd.OutOrStdout(), map[string]string{"log_key": k})
			}
			fmt.Fprintln(cmd.OutOrStdout(), k)
			return nil
		},
	}
	ef.register(c)
	return c
}

// logKeyValue reads --log-key: the key itself, or a file holding it.
func logKeyValue(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || strings.Contains(v, "+") {
		return v, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return "", usagef("--log-key: neither a key (name+hash+base64) nor a readable file: %v", err)
	}
	return strings.TrimSpace(string(b)), nil
}

const notPinned = "warning: the log key was not pinned: it was fetched from the platform itself, so these proofs show consistency with what this platform signs, not that it is the platform you trust (pass --log-key or VEIL_LOG_KEY)"

func newAuditMineCmd() *cobra.Command {
	var ef enterpriseFlags
	var keyPath, uscc, logKey string
	c := &cobra.Command{
		Use:   "mine",
		Short: "List every audit entry about your enterprise, each proven against a signed checkpoint",
		Long: `Signs a request with your key (so no one else can list your history), fetches
the entries whose subject is your USCC with an RFC 6962 inclusion proof each,
and verifies every proof locally against a checkpoint signed with the pinned
log key. Exit status 4 if any proof or signature fails.`,
		Example: `  veil audit mine --platform plat:7443 --ca-cert ca.crt --key ent.key --uscc 91110000MA01ABCDE4 --log-key platform.logkey
  VEIL_LOG_KEY="$(cat platform.logkey)" veil audit mine --ca-cert ca.crt --key ent.key --uscc 91110000MA01ABCDE4 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := parseUSCC(uscc)
			if err != nil {
				return err
			}
			if keyPath == "" {
				return usagef("--key is required (your private key)")
			}
			key, err := keys.LoadPrivate(keyPath)
			if err != nil {
				return err
			}
			lk, err := logKeyValue(logKey)
			if err != nil {
				return err
			}
			conn, ctx, done, err := ef.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := hub.AuditMine(ctx, conn, key, u, lk)
			if err != nil {
				if _, ok := status.FromError(err); ok { // a server answer, not a local verification failure
					return rpcError("audit mine", err)
				}
				return withCode(exitMismatch, fmt.Errorf("audit mine: %w", err))
			}
			if !res.Pinned {
				fmt.Fprintln(cmd.ErrOrStderr(), notPinned)
			}
			if ef.json {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "%d entries about %s; checkpoint size %d, root %x\n", len(res.Entries), u, res.Size, res.Root)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tBY\tDECISION\tREASON\tGRANT\tSCOPES\tPROOF")
				for _, e := range res.Entries {
					proof := "ok"
					if !e.ProofOK {
						proof = "FAILED"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Kind, e.Actor,
						dash(e.Decision), dash(e.Reason), dash(short(e.GrantID)), dash(strings.Join(e.Scopes, " ")), proof)
				}
				tw.Flush()
			}
			if len(res.Problems) > 0 {
				for _, p := range res.Problems {
					fmt.Fprintln(cmd.ErrOrStderr(), "problem:", p)
				}
				return withCode(exitMismatch, fmt.Errorf("audit mine: %d of %d entries failed verification", len(res.Problems), len(res.Entries)))
			}
			return nil
		},
	}
	ef.register(c)
	c.Flags().StringVar(&keyPath, "key", "", "your private key file (.key)")
	c.Flags().StringVar(&uscc, "uscc", "", "your Unified Social Credit Code")
	c.Flags().StringVar(&logKey, "log-key", "", "the pinned checkpoint key (or a file holding it); env VEIL_LOG_KEY")
	return c
}

func newAuditVerifyCmd() *cobra.Command {
	var cf clientFlags
	var savedPath, savePath, logKey string
	var noSign bool
	c := &cobra.Command{
		Use:   "verify",
		Short: "Verify the whole log: every entry, every checkpoint, consistency with a saved checkpoint (auditor)",
		Long: `Asks the platform to sign a checkpoint of the current log (unless --no-sign),
fetches every checkpoint and streams every entry, then verifies on this
machine: each checkpoint's signature (pinned --log-key), each entry's
canonical form and position, the Merkle tree recomputed from the entries
against every signed root, and consistency with the checkpoint you saved
last time (--checkpoint). Any entry altered, removed, reordered, or a log
rolled back, is reported with WHERE it is, and the exit status is 4.
Save the latest checkpoint for next time with --save-checkpoint.`,
		Example: `  veil audit verify --tls-dir auditor/ --log-key platform.logkey --save-checkpoint cp-1.txt
  veil audit verify --tls-dir auditor/ --log-key platform.logkey --checkpoint cp-1.txt --save-checkpoint cp-2.txt --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lk, err := logKeyValue(logKey)
			if err != nil {
				return err
			}
			var saved []byte
			if savedPath != "" {
				if saved, err = os.ReadFile(savedPath); err != nil {
					return usagef("--checkpoint: %v", err)
				}
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := hub.VerifyAuditLog(ctx, conn, lk, saved, !noSign)
			if err != nil {
				if _, ok := status.FromError(err); ok { // a server answer, not a local verification failure
					return rpcError("audit verify", err)
				}
				return withCode(exitMismatch, fmt.Errorf("audit verify: %w", err))
			}
			if !res.Pinned {
				fmt.Fprintln(cmd.ErrOrStderr(), notPinned)
			}
			if res.OK() && savePath != "" && res.Latest != nil {
				if err := os.WriteFile(savePath, res.Latest.Note, 0o644); err != nil {
					return fmt.Errorf("save checkpoint: %w", err)
				}
			}
			if cf.json {
				if err := printJSON(cmd.OutOrStdout(), map[string]any{"ok": res.OK(), "report": res}); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "log %s: %d entries, root %s\n", res.Origin, res.Entries, res.Root)
				fmt.Fprintf(w, "checkpoints verified: %d (latest covers %d entries; %d not yet signed)\n", res.CheckpointsChecked, res.LatestCheckpoint, res.Unsigned)
				if saved != nil {
					fmt.Fprintf(w, "consistent with saved checkpoint of %d entries: %v\n", res.SavedCheckpoint, res.SavedConsistent)
				}
				for _, p := range res.Problems {
					fmt.Fprintln(w, "PROBLEM:", p.String())
				}
				if res.MoreProblems > 0 {
					fmt.Fprintf(w, "... and %d more problems\n", res.MoreProblems)
				}
				if res.OK() {
					fmt.Fprintln(w, "OK: the log is complete and unaltered")
					if savePath != "" && res.Latest != nil {
						fmt.Fprintf(w, "saved checkpoint of %d entries to %s\n", res.Latest.Size, savePath)
					}
				}
			}
			if !res.OK() {
				return withCode(exitMismatch, res.Err())
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&savedPath, "checkpoint", "", "a checkpoint saved earlier: prove the log still extends it")
	c.Flags().StringVar(&savePath, "save-checkpoint", "", "write the latest verified checkpoint here (when the log verifies)")
	c.Flags().StringVar(&logKey, "log-key", "", "the pinned checkpoint key (or a file holding it); env VEIL_LOG_KEY")
	c.Flags().BoolVar(&noSign, "no-sign", false, "do not ask the platform to sign a checkpoint first")
	return c
}

// parseSince accepts RFC 3339, a date (2006-01-02) or a duration ago (24h).
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usagef("time %q: want RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration ago (24h)", s)
}

func newAuditQueryCmd() *cobra.Command {
	var cf clientFlags
	var subject, party, provider, kind, since, until string
	c := &cobra.Command{
		Use:   "query",
		Short: "Answer questions about the log: who used whose data, when, why (auditor; providers: their own data)",
		Example: `  veil audit query --tls-dir auditor/ --subject 91110000MA01ABCDE4
  veil audit query --tls-dir auditor/ --party bank-a --since 24h --json
  veil audit query --tls-dir tax/ --provider tax        # a provider: every use of its data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if subject == "" && party == "" && provider == "" && kind == "" {
				return usagef("give at least one of --subject, --party, --provider or --kind (or use 'veil audit export')")
			}
			s, err := parseSince(since)
			if err != nil {
				return err
			}
			u, err := parseSince(until)
			if err != nil {
				return err
			}
			q := &veilv1.AuthzAuditQueryRequest{Subject: subject, Party: party, Provider: provider, Kind: kind}
			if !s.IsZero() {
				q.SinceUnix = s.Unix()
			}
			if !u.IsZero() {
				q.UntilUnix = u.Unix()
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			entries := []audit.Entry{}
			leaves := []json.RawMessage{}
			err = hub.AuditStream(ctx, conn, q, func(seq uint64, data []byte) error {
				e, err := audit.Decode(data)
				if err != nil {
					return withCode(exitMismatch, fmt.Errorf("entry %d is not a canonical entry (the log was altered; run 'veil audit verify'): %w", seq, err))
				}
				entries = append(entries, e)
				leaves = append(leaves, data)
				return nil
			})
			if err != nil {
				var ce *codedError
				if errors.As(err, &ce) {
					return err
				}
				return rpcError("audit query", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), leaves)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tBY\tSUBJECT\tPROVIDERS\tDECISION\tREASON\tSCOPES\tJOB")
			for _, e := range entries {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), e.Kind, e.Actor, dash(e.Subject),
					dash(strings.Join(e.Providers, ",")), dash(e.Decision), dash(e.Reason), dash(strings.Join(e.Scopes, " ")), dash(e.JobID))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d entries\n", len(entries))
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&subject, "subject", "", "entries about this enterprise (USCC)")
	c.Flags().StringVar(&party, "party", "", "entries where this party acted (e.g. bank-a)")
	c.Flags().StringVar(&provider, "provider", "", "entries involving this provider's data")
	c.Flags().StringVar(&kind, "kind", "", "entries of this kind (request_denied, grant_revoked, psi_job, ...)")
	c.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, date, or duration ago such as 24h)")
	c.Flags().StringVar(&until, "until", "", "before this time")
	return c
}

func newAuditExportCmd() *cobra.Command {
	var cf clientFlags
	var out string
	c := &cobra.Command{
		Use:   "export",
		Short: "Export the whole log as JSON Lines, one canonical entry (Merkle leaf) per line (auditor)",
		Example: `  veil audit export --tls-dir auditor/ --out log.jsonl
  veil audit export --tls-dir auditor/ --out - | jq -c 'select(.decision == "deny")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out is required (a file, or - for stdout)")
			}
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			n, err := exportLog(ctx, conn, out, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if out != "-" {
				if cf.json {
					return printJSON(cmd.OutOrStdout(), map[string]any{"entries": n, "out": out})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "exported %d entries to %s\n", n, out)
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&out, "out", "", "output file (- for stdout)")
	return c
}

func exportLog(ctx context.Context, conn grpc.ClientConnInterface, out string, stdout io.Writer) (int, error) {
	var w io.Writer = stdout
	var f *os.File
	if out != "-" {
		var err error
		if f, err = os.Create(out); err != nil {
			return 0, fmt.Errorf("export: %w", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	n := 0
	err := hub.AuditStream(ctx, conn, nil, func(_ uint64, data []byte) error {
		n++
		bw.Write(data)
		return bw.WriteByte('\n')
	})
	if err != nil {
		return n, rpcError("audit export", err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("export: %w", err)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return n, fmt.Errorf("export: %w", err)
		}
	}
	return n, nil
}

// usageLine is one line of an agent's local usage record (hub/usage.go).
type usageLine struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Job     string    `json:"job,omitempty"`
	Bank    string    `json:"bank,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Scope   string    `json:"scope,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

func newAgentUsageCmd() *cobra.Command {
	var dataDir, kind, since string
	var asJSON bool
	c := &cobra.Command{
		Use:   "usage",
		Short: "Show the agent's own record of every use of its data (read locally, no platform involved)",
		Long: `Every agent keeps its own record (<data-dir>/usage.jsonl) of each request it
answered and each grant it refused or saw revoked, independently of the
platform's audit log. Compare it with 'veil audit query --provider NAME'.`,
		Example: `  veil agent usage --data-dir tax-data
  veil agent usage --data-dir tax-data --kind grant_refused --since 24h --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usagef("--data-dir is required (the agent's --data-dir)")
			}
			from, err := parseSince(since)
			if err != nil {
				return err
			}
			f, err := os.Open(filepath.Join(dataDir, "usage.jsonl"))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no usage record in %s (the agent has answered nothing yet, or --data-dir is wrong)", dataDir)
			}
			if err != nil {
				return err
			}
			defer f.Close()
			rows := []usageLine{}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for n := 1; sc.Scan(); n++ {
				var u usageLine
				if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
					return fmt.Errorf("usage record line %d: %w", n, err)
				}
				if (kind == "" || u.Kind == kind) && !u.Time.Before(from) {
					rows = append(rows, u)
				}
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("usage record: %w", err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tKIND\tBANK\tSUBJECT\tSCOPE\tJOB\tDETAIL")
			for _, u := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Time.UTC().Format(time.RFC3339), u.Kind, dash(u.Bank), dash(u.Subject), dash(u.Scope), dash(u.Job), dash(u.Detail))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&dataDir, "data-dir", "", "the agent's data directory")
	c.Flags().StringVar(&kind, "kind", "", "only records of this kind (grant_use, grant_refused, grant_revoked, ...)")
	c.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, date, or duration ago such as 24h)")
	c.Flags().BoolVar(&asJSON, "json", false, "print machine-readable JSON")
	return c
}
