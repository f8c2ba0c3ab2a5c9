package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"veil/hub"
	"veil/modeling/report"
	veilv1 "veil/proto/veil/v1"
)

func newModelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "model",
		Short: "List, show and report registered models (never their weights)",
		Long: `The platform's model registry: each model's parties and feature names,
hyperparameters, test-split AUC, KS and ROC points, training time and version.
The weights are not in the registry: each party keeps its own part in its
agent's data directory.`,
	}
	c.AddCommand(newModelListCmd(), newModelShowCmd(), newModelReportCmd(), newModelSetupKeyCmd())
	return c
}

func fetchModel(cmd *cobra.Command, cf *clientFlags, name string, version int) (*hub.Model, error) {
	conn, ctx, done, err := cf.connect(cmd)
	if err != nil {
		return nil, err
	}
	defer done()
	rec, err := veilv1.NewTrainingClient(conn).GetModel(ctx, &veilv1.GetModelRequest{Name: name, Version: int64(version)})
	if err != nil {
		return nil, rpcError("model "+name, err)
	}
	return hub.ModelFromRecord(rec)
}

func newModelListCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:     "list",
		Short:   "List the latest version of every model",
		Example: `  veil model list --tls-dir platform/`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, ctx, done, err := cf.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := veilv1.NewTrainingClient(conn).ListModels(ctx, &veilv1.ListModelsRequest{})
			if err != nil {
				return rpcError("model list", err)
			}
			var ms []*hub.Model
			for _, r := range resp.GetModels() {
				m, err := hub.ModelFromRecord(r)
				if err != nil {
					return err
				}
				ms = append(ms, m)
			}
			if cf.json {
				if ms == nil {
					ms = []*hub.Model{}
				}
				return printJSON(cmd.OutOrStdout(), ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no models yet (train one with 'veil train')")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tAUC\tKS\tROWS\tPARTIES\tCREATED")
			for _, m := range ms {
				var names []string
				for _, p := range m.Parties {
					names = append(names, p.Name)
				}
				fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%d\t%s\t%s\n", m.Name, m.Version, m.AUC, m.KS, m.RowsAligned,
					strings.Join(names, ","), m.CreatedAt.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cf.register(c)
	return c
}

func newModelShowCmd() *cobra.Command {
	var cf clientFlags
	var version int
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a model: parties, feature names, hyperparameters, AUC, KS, ROC, time, version",
		Example: `  veil model show default-v1 --tls-dir platform/
  veil model show default-v1 --version 1 --tls-dir platform/ --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := fetchModel(cmd, &cf, args[0], version)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), m)
			}
			printModel(cmd.OutOrStdout(), m)
			return nil
		},
	}
	cf.register(c)
	c.Flags().IntVar(&version, "version", 0, "version to show (default: the latest)")
	return c
}

func printModel(w io.Writer, m *hub.Model) {
	fmt.Fprintf(w, "model %s version %d (created %s, job %s)\n", m.Name, m.Version, m.CreatedAt.Format("2006-01-02 15:04:05 MST"), m.JobID)
	fmt.Fprintf(w, "test AUC %.4f  KS %.4f (threshold %.4f) on %d test rows (%d bad)\n", m.AUC, m.KS, m.Evaluation.KSThreshold, m.TestRows, m.Evaluation.Bads)
	fmt.Fprintf(w, "rows aligned %d, trained on %d; %d iterations%s; %.1f s", m.RowsAligned, m.TrainRows, m.Iterations,
		map[bool]string{true: " (stopped early)"}[m.StoppedEarly], m.TrainingSeconds)
	if m.Resumes > 0 {
		fmt.Fprintf(w, "; resumed %d time(s) after a party restarted", m.Resumes)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "\nparties:")
	for _, p := range m.Parties {
		fmt.Fprintf(w, "  %s (%s): %d feature(s)\n", p.Name, p.Role, len(p.Features))
		if len(p.Features) > 0 {
			fmt.Fprintf(w, "    %s\n", strings.Join(p.Features, ", "))
		}
		if p.Preprocessing != "" {
			fmt.Fprintf(w, "    preprocessing: %s\n", p.Preprocessing)
		}
	}
	if m.LabelIsFeatureParty {
		fmt.Fprintf(w, "\nnote: the label holder %s contributed features, so it is a feature party of this model and must be online whenever the model scores.\n", m.LabelParty)
	} else {
		fmt.Fprintf(w, "\nnote: the label holder %s contributed labels only; it is not needed to score with this model.\n", m.LabelParty)
	}
	fmt.Fprintf(w, "scoring needs: %s (+ the platform)\n", strings.Join(m.FeatureParties, ", "))
	h := m.Hyperparameters
	fmt.Fprintln(w, "\nhyperparameters:")
	fmt.Fprintf(w, "  epochs %d, batch size %d, learning rate %g, decay %g, L2 %g, tol %g, patience %d\n", h.Epochs, h.BatchSize, h.LearningRate, h.Decay, h.L2, h.Tol, h.Patience)
	fmt.Fprintf(w, "  test fraction %g, seed %d, PSI %s, CKKS parameters %s\n", h.TestFraction, h.Seed, h.PSIProtocol, m.ParamSet)
	fmt.Fprintln(w, "\nROC (false positive rate -> true positive rate):")
	roc := m.Evaluation.ROC
	step := max(1, len(roc)/10)
	for i := 0; i < len(roc); i += step {
		fmt.Fprintf(w, "  %.3f -> %.3f\n", roc[i].FPR, roc[i].TPR)
	}
	if n := len(roc); n > 0 && (n-1)%step != 0 {
		fmt.Fprintf(w, "  %.3f -> %.3f\n", roc[n-1].FPR, roc[n-1].TPR)
	}
}

// modelReport builds the HTML report's input from a registry record.
func modelReport(m *hub.Model) report.Report {
	r := report.Report{Model: m.Name, Version: strconv.Itoa(m.Version), CreatedAt: m.CreatedAt, TrainingSeconds: m.TrainingSeconds,
		Evaluation: m.Evaluation, Hyperparameters: map[string]string{}, Metadata: map[string]string{}}
	for _, p := range m.Parties {
		r.Parties = append(r.Parties, report.Party{Name: p.Name, Role: p.Role, Features: p.Features})
	}
	h := m.Hyperparameters
	for k, v := range map[string]string{
		"epochs": strconv.Itoa(h.Epochs), "batch_size": strconv.Itoa(h.BatchSize), "learning_rate": fmt.Sprint(h.LearningRate),
		"decay": fmt.Sprint(h.Decay), "l2": fmt.Sprint(h.L2), "tol": fmt.Sprint(h.Tol), "patience": strconv.Itoa(h.Patience),
		"test_fraction": fmt.Sprint(h.TestFraction), "seed": fmt.Sprint(h.Seed),
	} {
		r.Hyperparameters[k] = v
	}
	for k, v := range map[string]string{
		"rows_aligned": strconv.Itoa(m.RowsAligned), "train_rows": strconv.Itoa(m.TrainRows), "test_rows": strconv.Itoa(m.TestRows),
		"iterations": strconv.Itoa(m.Iterations), "job_id": m.JobID, "psi_job_id": m.AlignJobID, "label_party": m.LabelParty,
		"scoring_parties": strings.Join(m.FeatureParties, ", "), "ckks_parameters": m.ParamSet,
	} {
		r.Metadata[k] = v
	}
	return r
}

func newModelReportCmd() *cobra.Command {
	var cf clientFlags
	var version int
	var out string
	c := &cobra.Command{
		Use:     "report NAME",
		Short:   "Write a self-contained HTML report: ROC curve, KS chart, score distribution",
		Example: `  veil model report default-v1 --tls-dir platform/ --out report.html`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("give --out report.html")
			}
			m, err := fetchModel(cmd, &cf, args[0], version)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := report.WriteHTML(&buf, modelReport(m)); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"model": m.Name, "version": m.Version, "out": out, "bytes": buf.Len()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes)\n", out, buf.Len())
			return nil
		},
	}
	cf.register(c)
	c.Flags().IntVar(&version, "version", 0, "version to report (default: the latest)")
	c.Flags().StringVar(&out, "out", "", "output HTML file")
	return c
}
