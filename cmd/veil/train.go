package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"veil/hub"
	"veil/hub/local"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/lr"
	"veil/modeling/metrics"
)

// trainFlags are the hyperparameters shared by `veil train` and `veil local train`.
type trainFlags struct {
	name         string
	labelOnly    bool
	epochs       int
	batchSize    int
	learningRate float64
	l2           float64
	decay        float64
	tol          float64
	patience     int
	testFraction float64
	seed         uint64
	psiProtocol  string
}

func (f *trainFlags) register(cmd *cobra.Command, defaultName string) {
	d := hub.DefaultTrainSpec()
	cmd.Flags().StringVar(&f.name, "name", defaultName, "model name (a re-train of the same name bumps its version)")
	cmd.Flags().BoolVar(&f.labelOnly, "label-only", false, "the label party contributes labels only, no features")
	cmd.Flags().IntVar(&f.epochs, "epochs", d.Epochs, "maximum passes over the training rows")
	cmd.Flags().IntVar(&f.batchSize, "batch-size", d.BatchSize, "rows per iteration (0 = full batch)")
	cmd.Flags().Float64Var(&f.learningRate, "learning-rate", d.LearningRate, "initial step size")
	cmd.Flags().Float64Var(&f.l2, "l2", d.L2, "L2 penalty (not on the intercept)")
	cmd.Flags().Float64Var(&f.decay, "decay", d.Decay, "step size at iteration t is learning-rate/(1+decay*t)")
	cmd.Flags().Float64Var(&f.tol, "tol", d.Tol, "early stopping: an epoch improving the loss by less than this is a stall (0 disables)")
	cmd.Flags().IntVar(&f.patience, "patience", d.Patience, "stop after this many consecutive stalls")
	cmd.Flags().Float64Var(&f.testFraction, "test-fraction", d.TestFraction, "fraction of the aligned rows held out for evaluation")
	cmd.Flags().Uint64Var(&f.seed, "seed", d.Seed, "seed of the train/test split and the mini-batch schedule")
	cmd.Flags().StringVar(&f.psiProtocol, "psi-protocol", d.PSIProtocol, "PSI protocol for the alignment: ecdh or kkrt")
}

func (f *trainFlags) spec(label string, parties []string) (hub.TrainSpec, error) {
	if err := hub.ValidModelName(f.name); err != nil {
		return hub.TrainSpec{}, usageError{err}
	}
	if f.epochs < 1 {
		return hub.TrainSpec{}, usagef("--epochs must be at least 1")
	}
	if !(f.testFraction > 0 && f.testFraction < 1) {
		return hub.TrainSpec{}, usagef("--test-fraction must be between 0 and 1")
	}
	if !(f.learningRate > 0) {
		return hub.TrainSpec{}, usagef("--learning-rate must be positive")
	}
	if f.patience < 1 {
		return hub.TrainSpec{}, usagef("--patience must be at least 1")
	}
	return hub.TrainSpec{Name: f.name, LabelParty: label, Parties: parties, LabelOnly: f.labelOnly, Epochs: f.epochs,
		BatchSize: f.batchSize, LearningRate: f.learningRate, L2: f.l2, Decay: f.decay, Tol: f.tol, Patience: f.patience,
		TestFraction: f.testFraction, Seed: f.seed, PSIProtocol: f.psiProtocol}, nil
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressPrinter shows training progress on w: a progress bar on a
// terminal, otherwise one line per phase and per tenth of the iterations.
// quiet shows nothing (--json).
func progressPrinter(w io.Writer, quiet bool) (func(hub.Progress), func()) {
	if quiet {
		return func(hub.Progress) {}, func() {}
	}
	var bar *progressbar.ProgressBar
	lastPhase, lastTenth := "", -1
	terminal := isTerminal(w)
	update := func(p hub.Progress) {
		if terminal {
			if bar == nil && p.Iterations > 0 {
				bar = progressbar.NewOptions(p.Iterations, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
					progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish(), progressbar.OptionSetElapsedTime(true))
			}
			if bar != nil {
				desc := p.Phase
				if p.Phase == "train" {
					desc = fmt.Sprintf("train loss %.5f", p.Loss)
				}
				bar.Describe(fmt.Sprintf("%-22s", desc))
				_ = bar.Set(p.Iteration)
				return
			}
			if p.Phase != lastPhase {
				fmt.Fprintf(w, "%s: %s\n", p.Phase, p.Message)
			}
			lastPhase = p.Phase
			return
		}
		switch {
		case p.Phase != "train" && p.Phase != lastPhase:
			fmt.Fprintf(w, "[%6.1fs] %s %s\n", p.Elapsed.Seconds(), p.Phase, p.Message)
		case p.Phase == "train" && p.Iterations > 0 && p.Iteration*10/p.Iterations != lastTenth:
			lastTenth = p.Iteration * 10 / p.Iterations
			fmt.Fprintf(w, "[%6.1fs] iteration %d/%d loss %.6f\n", p.Elapsed.Seconds(), p.Iteration, p.Iterations, p.Loss)
		}
		lastPhase = p.Phase
	}
	done := func() {
		if bar != nil {
			_ = bar.Finish()
		}
	}
	return update, done
}

func newTrainCmd() *cobra.Command {
	var cf clientFlags
	var tf trainFlags
	var labelParty, alignJob string
	var parties []string
	c := &cobra.Command{
		Use:   "train",
		Short: "Train a joint credit model (operator)",
		Long: `Runs a whole training job on the platform: PSI alignment of the label party and
the feature parties, a deterministic train/test split of the common rows, a
collective CKKS key among the parties and the platform, vertical logistic
regression under encryption, evaluation on the test split (AUC, KS, ROC) and
registration of the model. Each party keeps its own weights in its agent's
data directory; the platform stores only the model's description and metrics.

If an agent restarts during the job, the platform waits for it (up to two
minutes) and resumes from the last iteration every party checkpointed.`,
		Example: `  veil train --tls-dir platform/ --name default-v1 --label-party bank --parties tax,social --epochs 30
  veil train --tls-dir platform/ --name polish --label-party bank --parties tax,social,utility --batch-size 1024 --json
  veil train --tls-dir platform/ --name default-v2 --label-party bank --parties tax,social --psi-job psi-3f2a9c01d4e5b6a7`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if labelParty == "" || len(parties) == 0 {
				return usagef("give --label-party and --parties")
			}
			spec, err := tf.spec(labelParty, parties)
			if err != nil {
				return err
			}
			spec.AlignJob = alignJob
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			update, done := progressPrinter(cmd.ErrOrStderr(), cf.json)
			m, err := hub.TrainRemote(ctx, conn, spec, update)
			done()
			if err != nil {
				return rpcError("train", err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), m)
			}
			printModelSummary(cmd.OutOrStdout(), m)
			return nil
		},
	}
	cf.register(c)
	if fl := c.Flags().Lookup("timeout"); fl != nil {
		_ = fl.Value.Set("6h")
		fl.DefValue = "6h"
	}
	tf.register(c, "")
	c.Flags().StringVar(&labelParty, "label-party", "", "the party holding the labels")
	c.Flags().StringSliceVar(&parties, "parties", nil, "the feature parties (comma-separated)")
	c.Flags().StringVar(&alignJob, "psi-job", "", "reuse this finished alignment ('veil psi align' of the label party then the feature parties) instead of running PSI again")
	return c
}

func printModelSummary(w io.Writer, m *hub.Model) {
	fmt.Fprintf(w, "model %s version %d registered\n", m.Name, m.Version)
	fmt.Fprintf(w, "  test AUC %.4f  KS %.4f  (%d test rows)\n", m.AUC, m.KS, m.TestRows)
	fmt.Fprintf(w, "  rows aligned %d, trained on %d, %d iterations%s, %.1fs\n", m.RowsAligned, m.TrainRows, m.Iterations,
		map[bool]string{true: " (stopped early)"}[m.StoppedEarly], m.TrainingSeconds)
	fmt.Fprintf(w, "  serves with: %s (+ the platform)\n", strings.Join(m.FeatureParties, ", "))
}

// localTrainResult is the JSON of `veil local train`.
type localTrainResult struct {
	Model            string              `json:"model"`
	Version          int                 `json:"version"`
	Parties          []string            `json:"parties"`
	RowsAligned      int                 `json:"rows_aligned"`
	TrainRows        int                 `json:"train_rows"`
	TestRows         int                 `json:"test_rows"`
	Epochs           int                 `json:"epochs"`
	EpochsRun        int                 `json:"epochs_run"`
	Iterations       int                 `json:"iterations"`
	Seconds          float64             `json:"seconds"`
	AUC              float64             `json:"auc"`
	KS               float64             `json:"ks"`
	PlaintextAUC     float64             `json:"plaintext_auc"`
	PlaintextKS      float64             `json:"plaintext_ks"`
	PlaintextSeconds float64             `json:"plaintext_seconds"`
	AUCGap           float64             `json:"auc_gap"` // |auc - plaintext_auc|
	MaxWeightDiff    float64             `json:"max_weight_diff"`
	Hyperparameters  hub.TrainSpec       `json:"hyperparameters"`
	Features         map[string]int      `json:"features"`
	Warnings         map[string][]string `json:"warnings,omitempty"`
}

func newLocalTrainCmd() *cobra.Command {
	var tf trainFlags
	var parties, drop, categorical []string
	var labelParty, labelColumn, idColumn, idFormat, dir string
	var clip float64
	var missingIndicators, skipBadRows, asJSON bool
	c := &cobra.Command{
		Use:   "train",
		Short: "Train on your files: every party in this process over loopback gRPC with mTLS",
		Long: `Starts a platform and one agent per --party in this process (real gRPC with
mutual TLS on 127.0.0.1, embedded SQLite) and runs exactly the training job of
'veil train': PSI alignment, split, collective key, encrypted training,
evaluation on the test split, registration. Each party's file is preprocessed
by its own agent (text columns one-hot encoded, missing values imputed with the
median, standardisation).

Because this command holds every file anyway, it also trains the same algorithm
with the same split and hyperparameters centrally in plaintext and reports
plaintext_auc and plaintext_ks beside the federated auc and ks.`,
		Example: `  veil local train --party bank=bank.csv --party tax=tax.csv --party social=social.csv \
      --label-party bank --label y --id-column uscc --id-format uscc --clip 0.01 --json
  veil local train --party guest=default_credit_hetero_guest.csv --party host=default_credit_hetero_host.csv \
      --label-party guest --label y --id-column id --epochs 30 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(parties) < 2 {
				return usagef("give at least two --party name=file.csv")
			}
			if labelParty == "" || labelColumn == "" {
				return usagef("give --label-party and --label (the label column)")
			}
			files := map[string]string{}
			var names []string
			for _, p := range parties {
				name, path, ok := strings.Cut(p, "=")
				if !ok || name == "" || path == "" {
					return usagef("--party %q: want name=file.csv", p)
				}
				if err := pki.ValidName(name); err != nil {
					return usageError{err}
				}
				if _, dup := files[name]; dup {
					return usagef("party %q given twice", name)
				}
				files[name] = path
				names = append(names, name)
			}
			if _, ok := files[labelParty]; !ok {
				return usagef("--label-party %q is not one of the --party names", labelParty)
			}
			// Label holder first.
			order := append([]string{labelParty}, slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == labelParty })...)
			spec, err := tf.spec(labelParty, order[1:])
			if err != nil {
				return err
			}
			tables := map[string]*dataset.Table{}
			var specs []local.AgentSpec
			for _, n := range order {
				opt := dataset.Options{IDColumn: idColumn, IDFormat: idFormat, Drop: drop, Categorical: categorical,
					MissingIndicators: missingIndicators, SkipBadRows: skipBadRows, Clip: clip}
				role := pki.RoleProvider
				if n == labelParty {
					opt.LabelColumn, role = labelColumn, pki.RoleBank
				}
				t, err := dataset.LoadCSV(files[n], opt)
				if err != nil {
					return fmt.Errorf("party %s: %w", n, err)
				}
				tables[n] = t
				specs = append(specs, local.AgentSpec{Name: n, Role: role, Table: t})
			}
			if len(tables[labelParty].Columns) == 0 {
				spec.LabelOnly = true
			}
			ctx := cmd.Context()
			dep, stop, err := startLocal(cmd, dir, specs)
			if err != nil {
				return err
			}
			defer stop()
			update, done := progressPrinter(cmd.ErrOrStderr(), asJSON)
			start := time.Now()
			m, err := hub.TrainRemote(ctx, dep.Conn, spec, update)
			done()
			if err != nil {
				return rpcError("train", err)
			}
			seconds := time.Since(start).Seconds()
			res, err := localPlaintext(ctx, dep, tables, order, spec, m)
			if err != nil {
				return err
			}
			res.Seconds = seconds
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			printModelSummary(cmd.OutOrStdout(), m)
			fmt.Fprintf(cmd.OutOrStdout(), "  plaintext (same algorithm, split, hyperparameters): AUC %.4f  KS %.4f  (gap %.4f)\n",
				res.PlaintextAUC, res.PlaintextKS, res.AUCGap)
			return nil
		},
	}
	tf.register(c, "local")
	c.Flags().StringArrayVar(&parties, "party", nil, "name=file.csv (repeat)")
	c.Flags().StringVar(&labelParty, "label-party", "", "the party whose file holds the label")
	c.Flags().StringVar(&labelColumn, "label", "", "the 0/1 label column in the label party's file")
	c.Flags().StringVar(&idColumn, "id-column", "id", "ID column in every file")
	c.Flags().StringVar(&idFormat, "id-format", "", "ID format to enforce: '' (any) or 'uscc'")
	c.Flags().StringSliceVar(&drop, "drop", nil, "columns to ignore (repeatable)")
	c.Flags().StringSliceVar(&categorical, "categorical", nil, "numeric-looking columns to one-hot encode (repeatable)")
	c.Flags().BoolVar(&missingIndicators, "missing-indicators", false, "add a <col>_missing 0/1 column for columns with missing values")
	c.Flags().BoolVar(&skipBadRows, "skip-bad-rows", false, "drop bad rows (counted warnings) instead of failing")
	c.Flags().Float64Var(&clip, "clip", 0, "winsorise numeric columns at this quantile (e.g. 0.01 for heavy-tailed ratios)")
	c.Flags().StringVar(&dir, "dir", "", "work directory (default: a temporary one, removed afterwards)")
	c.Flags().BoolVar(&asJSON, "json", false, "print only the final result as JSON")
	return c
}

// localPlaintext trains the same algorithm centrally on the joined columns
// (only this single-process command holds every party's file) with the
// split the agents used, and fills in the comparison.
func localPlaintext(ctx context.Context, dep *local.Deployment, tables map[string]*dataset.Table, order []string, spec hub.TrainSpec, m *hub.Model) (*localTrainResult, error) {
	ids, err := dep.Agents[order[0]].Alignment(m.AlignJobID)
	if err != nil {
		return nil, err
	}
	trainIdx, testIdx, err := hub.SplitRows(len(ids), spec.TestFraction, spec.Seed)
	if err != nil {
		return nil, err
	}
	res := &localTrainResult{Model: m.Name, Version: m.Version, Parties: order, RowsAligned: m.RowsAligned, TrainRows: m.TrainRows,
		TestRows: m.TestRows, Epochs: spec.Epochs, EpochsRun: len(m.EpochLosses), Iterations: m.Iterations, AUC: m.AUC, KS: m.KS,
		Hyperparameters: spec, Features: map[string]int{}, Warnings: map[string][]string{}}
	var all [][]float64
	var y []float64
	var fed []float64
	var intercept float64
	for _, n := range order {
		sel, err := tables[n].Select(ids)
		if err != nil {
			return nil, err
		}
		if n == order[0] {
			y = sel.Labels
		}
		if len(tables[n].Warnings) > 0 {
			res.Warnings[n] = tables[n].Warnings
		}
		part, err := dep.Agents[n].ModelPart(m.Name, m.Version)
		if err != nil {
			return nil, err
		}
		res.Features[n] = len(part.Features)
		fed = append(fed, part.Weights...)
		intercept += part.Intercept
		if n == order[0] && len(part.Features) == 0 {
			continue // labels only
		}
		all = append(all, sel.Columns...)
	}
	pickRows := func(cols [][]float64, rows []int) [][]float64 {
		out := make([][]float64, len(cols))
		for j, c := range cols {
			out[j] = make([]float64, len(rows))
			for k, i := range rows {
				out[j][k] = c[i]
			}
		}
		return out
	}
	ys := pickRows([][]float64{y}, trainIdx)[0]
	yt := pickRows([][]float64{y}, testIdx)[0]
	start := time.Now()
	plain, err := lr.TrainPlaintext(ctx, pickRows(all, trainIdx), ys, spec.Config())
	if err != nil {
		return nil, fmt.Errorf("plaintext baseline: %w", err)
	}
	res.PlaintextSeconds = time.Since(start).Seconds()
	z := plain.Logits(pickRows(all, testIdx))
	if res.PlaintextAUC, err = metrics.AUC(z, yt); err != nil {
		return nil, fmt.Errorf("plaintext baseline: %w", err)
	}
	if res.PlaintextKS, _, err = metrics.KS(z, yt); err != nil {
		return nil, fmt.Errorf("plaintext baseline: %w", err)
	}
	res.AUCGap = math.Abs(res.AUC - res.PlaintextAUC)
	want := append(append([]float64(nil), plain.Weights...), plain.Intercept)
	got := append(fed, intercept)
	if len(got) == len(want) {
		for i := range got {
			res.MaxWeightDiff = math.Max(res.MaxWeightDiff, math.Abs(got[i]-want[i]))
		}
	}
	return res, nil
}
