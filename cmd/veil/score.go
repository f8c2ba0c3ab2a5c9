package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"veil/hub"
	veilv1 "veil/proto/veil/v1"
)

// readGrant accepts a grant token or the path of a file holding one.
func readGrant(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", errors.New("no grant (pass --grant with a grant file or token)")
	}
	if b, err := os.ReadFile(v); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if strings.Count(v, ".") == 2 && !strings.ContainsAny(v, "/\\ ") {
		return v, nil
	} else {
		return "", fmt.Errorf("grant %s: %w", v, err)
	}
}

// batchRow is one parsed row of a batch file; bad rows carry their reason.
type batchRow struct {
	line       int
	enterprise string
	grant      string
	bad        string
}

// readBatch reads "enterprise,grant" rows (a header line is optional; grant
// is a token or a grant file path). A malformed row is kept with its reason
// so it is reported on its own.
func readBatch(r io.Reader) ([]batchRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var rows []batchRow
	line := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rows = append(rows, batchRow{line: line, bad: "malformed row: " + pe.Err.Error()})
				continue
			}
			return nil, fmt.Errorf("batch: %w", err)
		}
		if line == 1 && len(rec) >= 1 && strings.EqualFold(strings.TrimSpace(rec[0]), "enterprise") {
			continue
		}
		row := batchRow{line: line}
		switch {
		case len(rec) != 2:
			row.bad = fmt.Sprintf("malformed row: %d fields, want 2 (enterprise,grant)", len(rec))
		case strings.TrimSpace(rec[0]) == "":
			row.bad = "malformed row: empty enterprise"
		default:
			row.enterprise = strings.TrimSpace(rec[0])
			tok, err := readGrant(rec[1])
			if err != nil {
				row.bad = "malformed row: " + err.Error()
			}
			row.grant = tok
		}
		if len(rec) > 0 && row.enterprise == "" {
			row.enterprise = strings.TrimSpace(rec[0])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

type scoreFlags struct {
	cf         clientFlags
	model      string
	version    int
	enterprise string
	grant      string
	batch      string
	out        string
	key        string
	cutoff     float64
	domain     float64
	chunk      int
}

func newScoreCmd() *cobra.Command { return scoreCommand(false) }

func newPrescreenCmd() *cobra.Command { return scoreCommand(true) }

func scoreCommand(prescreen bool) *cobra.Command {
	var f scoreFlags
	c := &cobra.Command{
		Use:   "score",
		Short: "Score an enterprise (or a batch) under a model; only this bank can decrypt the result",
		Long: `Each provider of the model computes its partial logit locally and encrypts it
under the model's collective key; the platform adds them and the intercept,
and the sum is switched (PCKS, with flooding noise) to this bank's key. The
bank decrypts the logit here and prints the probability of default and the
scorecard points (600 at odds 50:1, 20 points to double the odds, unless the
model says otherwise). Every row needs the enterprise's grant for
score:<model>; a row without a valid grant is refused on its own, with the
reason, and the other rows are scored.

Batch file: CSV rows "enterprise,grant" (an optional header line
"enterprise,grant"); grant is a token or the path of a grant file.`,
		Example: `  veil score --model default-v1 --enterprise 91350100M000100Y43 --grant grant.jwt --key bankkey --tls-dir bank-a/
  veil score --model default-v1 --batch requests.csv --out scores.csv --key bankkey --tls-dir bank-a/`,
		Args: cobra.NoArgs,
	}
	if prescreen {
		c.Use = "prescreen"
		c.Short = "Pass/fail of enterprises against a PD cutoff, computed under encryption"
		c.Long = `Like 'veil score', but the comparison with the cutoff is evaluated under
encryption (a degree-15 polynomial step on (logit(cutoff) - logit)/domain)
before the key switch, so the bank learns pass (PD below the cutoff) or fail
only. Outputs are close to 1 or 0 unless the score lies within about a
quarter of --domain (in logits) of the cutoff, where the output is marked
unclear (the polynomial's transition band). --domain must bound
|logit - logit(cutoff)| for the model's enterprises.`
		c.Example = `  veil prescreen --model default-v1 --cutoff 0.15 --enterprise 91350100M000100Y43 --grant grant.jwt --key bankkey --tls-dir bank-a/
  veil prescreen --model default-v1 --cutoff 0.15 --batch requests.csv --out passfail.csv --key bankkey --tls-dir bank-a/`
		c.Flags().Float64Var(&f.cutoff, "cutoff", 0, "probability-of-default cutoff (pass below it), 0 < cutoff < 1")
		c.Flags().Float64Var(&f.domain, "domain", 0, "bound on |logit - logit(cutoff)| (0: 16)")
	}
	f.cf.register(c)
	c.Flags().StringVar(&f.model, "model", "", "model name")
	c.Flags().IntVar(&f.version, "version", 0, "model version (0: latest)")
	c.Flags().StringVar(&f.enterprise, "enterprise", "", "the enterprise's USCC")
	c.Flags().StringVar(&f.grant, "grant", "", "grant file (or token) for --enterprise")
	c.Flags().StringVar(&f.batch, "batch", "", "CSV of enterprise,grant rows")
	c.Flags().StringVar(&f.out, "out", "", "write the batch results as CSV here (default: stdout)")
	c.Flags().StringVar(&f.key, "key", "bankkey", "bank key file (or prefix) from 'veil bank keys gen'")
	c.Flags().IntVar(&f.chunk, "chunk", 0, "rows per request (0: one ciphertext's worth)")
	c.RunE = func(cmd *cobra.Command, _ []string) error { return runScore(cmd, &f, prescreen) }
	return c
}

func runScore(cmd *cobra.Command, f *scoreFlags, prescreen bool) error {
	if f.model == "" {
		return usagef("--model is required")
	}
	if prescreen && !(f.cutoff > 0 && f.cutoff < 1) {
		return usagef("--cutoff must be a probability of default strictly between 0 and 1")
	}
	var rows []batchRow
	switch {
	case f.batch != "" && f.enterprise != "":
		return usagef("give either --enterprise or --batch, not both")
	case f.batch != "":
		fh, err := os.Open(f.batch)
		if err != nil {
			return usagef("--batch: %v", err)
		}
		rows, err = readBatch(fh)
		fh.Close()
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return usagef("--batch %s has no rows", f.batch)
		}
	case f.enterprise != "":
		tok, err := readGrant(f.grant)
		if err != nil {
			return usagef("%v", err)
		}
		rows = []batchRow{{line: 1, enterprise: f.enterprise, grant: tok}}
	default:
		return usagef("give --enterprise with --grant, or --batch")
	}
	key, err := loadBankKey(f.key)
	if err != nil {
		return err
	}
	var send []hub.ScoreRow
	var sendIdx []int
	for i, r := range rows {
		if r.bad == "" {
			send = append(send, hub.ScoreRow{Enterprise: r.enterprise, Grant: r.grant})
			sendIdx = append(sendIdx, i)
		}
	}
	out := make([]hub.ScoreOutcome, len(rows))
	for i, r := range rows {
		out[i] = hub.ScoreOutcome{Enterprise: r.enterprise, Refused: r.bad, RefusedBy: "bank"}
	}
	if len(send) > 0 {
		conn, ctx, done, err := f.cf.connect(cmd)
		if err != nil {
			return err
		}
		defer done()
		var bar *progressbar.ProgressBar
		if f.batch != "" && !f.cf.json {
			bar = progressbar.NewOptions(len(send), progressbar.OptionSetWriter(cmd.ErrOrStderr()), progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish(), progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetDescription("scoring"))
		}
		got, _, err := hub.ScoreRemote(ctx, conn, key, send, hub.ScoreOptions{Model: f.model, Version: f.version, Prescreen: prescreen,
			Cutoff: f.cutoff, Domain: f.domain, Chunk: f.chunk, Progress: func(done int) {
				if bar != nil {
					_ = bar.Set(done)
				}
			}})
		if bar != nil {
			_ = bar.Finish()
		}
		if err != nil {
			return rpcError("score", err)
		}
		for j, i := range sendIdx {
			out[i] = got[j]
		}
	}
	refused := 0
	for _, o := range out {
		if o.Refused != "" {
			refused++
		}
	}
	w := cmd.OutOrStdout()
	if f.out != "" {
		fh, err := os.Create(f.out)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		defer fh.Close()
		w = fh
	}
	if f.cf.json && f.out == "" {
		if f.batch == "" {
			if err := printJSON(w, out[0]); err != nil {
				return err
			}
		} else if err := printJSON(w, out); err != nil {
			return err
		}
	} else if f.batch == "" && f.out == "" {
		o := out[0]
		switch {
		case o.Refused != "":
		case o.Score != nil:
			fmt.Fprintf(w, "enterprise %s  model %s\nprobability of default %.4f\nscore %.0f points (logit %.4f)\n", o.Enterprise, f.model, o.Score.Probability, o.Score.Points, o.Score.Logit)
		case o.Prescreen != nil:
			verdict := "FAIL"
			if o.Prescreen.Pass {
				verdict = "PASS"
			}
			note := ""
			if !o.Prescreen.Clear {
				note = " (near the cutoff)"
			}
			fmt.Fprintf(w, "enterprise %s  model %s  cutoff %.4g\n%s%s\n", o.Enterprise, f.model, f.cutoff, verdict, note)
		}
	} else if err := writeScoreCSV(w, out, prescreen); err != nil {
		return err
	}
	if f.out != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d rows: %d scored, %d refused; wrote %s\n", len(out), len(out)-refused, refused, f.out)
	}
	if refused > 0 {
		for i, o := range out {
			if o.Refused != "" && (f.batch == "" || refused <= 20) {
				fmt.Fprintf(cmd.ErrOrStderr(), "row %d (%s): refused by %s: %s\n", rows[i].line, o.Enterprise, o.RefusedBy, o.Refused)
			}
		}
		if refused == len(out) {
			return withCode(exitRefused, fmt.Errorf("score: every row was refused"))
		}
	}
	return nil
}

func writeScoreCSV(w io.Writer, out []hub.ScoreOutcome, prescreen bool) error {
	cw := csv.NewWriter(w)
	if prescreen {
		_ = cw.Write([]string{"enterprise", "status", "pass", "clear", "refused_by", "reason"})
	} else {
		_ = cw.Write([]string{"enterprise", "status", "probability_of_default", "points", "logit", "refused_by", "reason"})
	}
	for _, o := range out {
		var rec []string
		switch {
		case o.Refused != "" && prescreen:
			rec = []string{o.Enterprise, "refused", "", "", o.RefusedBy, o.Refused}
		case o.Refused != "":
			rec = []string{o.Enterprise, "refused", "", "", "", o.RefusedBy, o.Refused}
		case prescreen && o.Prescreen != nil:
			rec = []string{o.Enterprise, "ok", strconv.FormatBool(o.Prescreen.Pass), strconv.FormatBool(o.Prescreen.Clear), "", ""}
		case o.Score != nil:
			rec = []string{o.Enterprise, "ok", strconv.FormatFloat(o.Score.Probability, 'f', 6, 64), strconv.FormatFloat(o.Score.Points, 'f', 1, 64),
				strconv.FormatFloat(o.Score.Logit, 'f', 5, 64), "", ""}
		default:
			continue
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// newModelSetupKeyCmd is `veil model setup-key`: (re)create a model's
// scoring key (it runs automatically when a model is registered).
func newModelSetupKeyCmd() *cobra.Command {
	var cf clientFlags
	var version int
	c := &cobra.Command{
		Use:   "setup-key MODEL",
		Short: "(Re)create a model's scoring key among its feature parties and the platform",
		Long: `Runs the collective key generation (CKG + RKG) of the model's scoring key among
the parties that hold its features and the platform; each keeps its secret
share in its own data directory. It runs automatically when a model is
registered; run it again after restoring a party's data directory.`,
		Example: `  veil model setup-key default-v1 --tls-dir platform/`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := veilv1.NewScoringClient(conn).SetupKey(ctx, &veilv1.ScoringKeyRequest{Model: args[0], Version: int64(version)})
			if err != nil {
				return rpcError("setup-key", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "model %s v%d: scoring key (%s) held by %s, %.1fs\n", resp.GetModel(), resp.GetVersion(), resp.GetParamSet(), strings.Join(resp.GetKeyHolders(), ", "), resp.GetSeconds())
			return nil
		},
	}
	cf.register(c)
	c.Flags().IntVar(&version, "version", 0, "model version (0: latest)")
	return c
}
