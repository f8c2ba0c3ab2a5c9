package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	exampledata "veil/examples/data"
	"veil/hub"
	"veil/hub/local"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/score"
	veilv1 "veil/proto/veil/v1"
)

// demoStep is one step of the demo, as printed with --json.
type demoStep struct {
	Step    string  `json:"step"`
	Detail  string  `json:"detail"`
	Seconds float64 `json:"seconds"`
	Data    any     `json:"data,omitempty"`
}

type demoSummary struct {
	WorkDir string     `json:"work_dir"`
	OK      bool       `json:"ok"`
	Error   string     `json:"error,omitempty"`
	Steps   []demoStep `json:"steps"`
}

// demoParty is one agent of the demo.
type demoParty struct {
	name  string
	role  pki.Role
	file  string // in the embedded Polish data
	label string
}

var demoParties = []demoParty{
	{name: "bank", role: pki.RoleBank, file: "polish/bank.csv", label: "y"},
	{name: "tax", role: pki.RoleProvider, file: "polish/tax.csv"},
	{name: "social", role: pki.RoleProvider, file: "polish/social.csv"},
	{name: "utility", role: pki.RoleProvider, file: "polish/utility.csv"},
}

func newDemoCmd() *cobra.Command {
	var asJSON, keep, verbose bool
	var dir string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole story on bundled real data, every party on loopback",
		Long: `Starts a platform and four agents in this process, each a real gRPC server
with mutual TLS on 127.0.0.1: a bank that holds the labels and three data
providers (tax, social insurance, utilities) holding the Polish bankruptcy
data split by columns, with USCC enterprise IDs. The platform keeps its state
in an embedded SQLite file. The demo creates the CA and the certificates,
registers the parties and shows what each agent publishes about its data
(row count and feature names, never values), then shuts everything down.`,
		Example: `  veil demo
  veil demo --json
  veil demo --dir /tmp/veil-demo --keep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if asJSON {
				out = io.Discard
			}
			work := dir
			if work == "" {
				d, err := os.MkdirTemp("", "veil-demo-")
				if err != nil {
					return err
				}
				work = d
				if !keep {
					defer os.RemoveAll(d)
				}
			}
			logw := io.Discard
			if verbose {
				logw = cmd.ErrOrStderr()
			}
			log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
			sum := demoSummary{WorkDir: work}
			err := runDemo(cmd.Context(), work, log, out, &sum)
			sum.OK = err == nil
			if err != nil {
				sum.Error = err.Error()
			}
			if asJSON {
				if jerr := printJSON(cmd.OutOrStdout(), sum); jerr != nil {
					return jerr
				}
			}
			return err
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print a machine-readable summary of every step")
	c.Flags().StringVar(&dir, "dir", "", "work directory for certificates, data and databases (default: a temporary one)")
	c.Flags().BoolVar(&keep, "keep", false, "keep the temporary work directory")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "show the servers' logs on stderr")
	return c
}

// demoRun holds the running demo deployment.
type demoRun struct {
	work string
	log  *slog.Logger
	out  io.Writer
	sum  *demoSummary
	dep  *local.Deployment

	alignJob string
	bank     *grpc.ClientConn // the bank's own connection to the platform
	bankKey  *score.BankKey
	ent      *demoEnterprise
}

func (d *demoRun) step(name string, start time.Time, data any, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	d.sum.Steps = append(d.sum.Steps, demoStep{Step: name, Detail: detail, Seconds: time.Since(start).Seconds(), Data: data})
	fmt.Fprintf(d.out, "==> %s\n    %s\n", name, detail)
}

func runDemo(ctx context.Context, work string, log *slog.Logger, out io.Writer, sum *demoSummary) (err error) {
	d := &demoRun{work: work, log: log, out: out, sum: sum}
	fmt.Fprintf(out, "Veil demo: platform + %d agents on loopback, work directory %s\n\n", len(demoParties), work)
	if err := d.start(ctx); err != nil {
		return err
	}
	defer func() {
		// Shut every server down and wait for them, whatever happened.
		start := time.Now()
		if d.bank != nil {
			d.bank.Close()
		}
		serr := d.dep.Stop()
		if err == nil && serr != nil {
			err = fmt.Errorf("shutdown: %w", serr)
		}
		if err == nil {
			d.step("shutdown", start, nil, "platform and %d agents stopped cleanly", len(demoParties))
		}
	}()
	if err := d.register(ctx); err != nil {
		return err
	}
	if err := d.summaries(ctx); err != nil {
		return err
	}
	if err := d.align(ctx); err != nil {
		return err
	}
	if err := d.listCheck(ctx); err != nil {
		return err
	}
	if err := d.trainStep(ctx); err != nil {
		return err
	}
	if err := d.bankKeyStep(ctx); err != nil {
		return err
	}
	if err := d.grantStep(ctx, []string{"score:" + demoModel, "verify:tax.Attr1"}); err != nil {
		return err
	}
	if err := d.scoreStep(ctx, true); err != nil {
		return err
	}
	if err := d.verifyStep(ctx); err != nil {
		return err
	}
	if err := d.revokeStep(ctx); err != nil {
		return err
	}
	if err := d.scoreStep(ctx, false); err != nil {
		return err
	}
	return d.auditSteps(ctx)
}

// align runs PSI between the bank (label holder) and the three providers.
func (d *demoRun) align(ctx context.Context) error {
	start := time.Now()
	names := make([]string, len(demoParties))
	for i, p := range demoParties {
		names[i] = p.name
	}
	resp, err := veilv1.NewPSIClient(d.dep.Conn).Align(ctx, &veilv1.AlignRequest{Parties: names, Protocol: "ecdh"})
	if err != nil {
		return rpcError("psi align", err)
	}
	d.alignJob = resp.GetJobId()
	res := alignJSON{JobID: resp.GetJobId(), Protocol: resp.GetProtocol(), Parties: names, Sizes: resp.GetSizes(), Intersection: resp.GetIntersection(), Seconds: resp.GetSeconds()}
	d.step("psi-align", start, res, "ECDH-PSI through the platform: %d enterprises common to all four parties (bank %d, tax %d, social %d, utility %d); the platform saw only set sizes",
		res.Intersection, res.Sizes["bank"], res.Sizes["tax"], res.Sizes["social"], res.Sizes["utility"])
	return nil
}

// listCheck: the tax bureau offers a list (here: enterprises whose net
// profit was negative, derived from its own rows) and the bank checks 200
// applicants against it with unbalanced PSI.
func (d *demoRun) listCheck(ctx context.Context) error {
	start := time.Now()
	raw, err := readCSVColumns(filepath.Join(d.work, "tax", "data.csv"), "uscc", "Attr1")
	if err != nil {
		return err
	}
	var lossMakers []string
	for i, id := range raw[0] {
		if v, err := strconv.ParseFloat(raw[1][i], 64); err == nil && v < 0 {
			lossMakers = append(lossMakers, id)
		}
	}
	if err := d.dep.Agents["tax"].AddList(ctx, hub.ListSource{Name: "loss-makers", Load: func(context.Context) ([]string, error) { return lossMakers, nil }}); err != nil {
		return err
	}
	applicants := d.dep.Agents["bank"].IDs()
	if len(applicants) > 200 {
		applicants = applicants[:200]
	}
	conn, err := d.bankConn()
	if err != nil {
		return err
	}
	res, err := hub.CheckList(ctx, conn, "tax", "loss-makers", applicants)
	if err != nil {
		return err
	}
	d.step("psi-list-check", start, res, "the bank checked %d applicants against tax's list %q (%d entries): %d are on it; tax learned only the counts",
		res.Input.Unique, res.List, res.ListSize, res.MatchCount)
	return nil
}

// readCSVColumns reads the named columns of a CSV file.
func readCSVColumns(path string, cols ...string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty", path)
	}
	out := make([][]string, len(cols))
	for j, c := range cols {
		k := slices.Index(recs[0], c)
		if k < 0 {
			return nil, fmt.Errorf("%s: no column %q", path, c)
		}
		for _, r := range recs[1:] {
			out[j] = append(out[j], r[k])
		}
	}
	return out, nil
}

// start loads each party's bundled CSV and starts the deployment.
func (d *demoRun) start(ctx context.Context) error {
	start := time.Now()
	var specs []local.AgentSpec
	type agentInfo struct {
		Name string `json:"name"`
		Role string `json:"role"`
		Data string `json:"data"`
		Rows int    `json:"rows"`
	}
	var infos []agentInfo
	for _, p := range demoParties {
		path, err := extractExample(exampledata.Polish, p.file, filepath.Join(d.work, p.name, "data.csv"))
		if err != nil {
			return err
		}
		table, err := dataset.LoadCSV(path, dataset.Options{IDColumn: "uscc", IDFormat: "uscc", LabelColumn: p.label, MissingIndicators: true, Clip: 0.01})
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		specs = append(specs, local.AgentSpec{Name: p.name, Role: p.role, Table: table})
		infos = append(infos, agentInfo{p.name, string(p.role), path, table.Rows()})
	}
	dep, err := local.Start(ctx, d.work, d.log, specs...)
	if err != nil {
		return err
	}
	d.dep = dep
	names := []string{"platform (platform)"}
	for _, p := range demoParties {
		names = append(names, fmt.Sprintf("%s (%s)", p.name, p.role))
	}
	d.step("pki", start, map[string]any{"ca": dep.CADir, "parties": names}, "created a CA and issued Ed25519 certificates carrying name and role to %s", strings.Join(names, ", "))
	d.step("platform", start, map[string]string{"address": dep.PlatformAddr, "db": filepath.Join(d.work, "platform-data", "platform.db")},
		"platform serving gRPC+mTLS on %s, state in embedded SQLite", dep.PlatformAddr)
	d.step("agents", start, infos, "started %d agents (bank with labels; tax, social, utility as providers), each loading and preprocessing its own CSV locally", len(infos))
	return nil
}

func (d *demoRun) register(ctx context.Context) error {
	start := time.Now()
	// local.Start registered the agents the way an operator does
	// (veil party add); list what the platform recorded.
	list, err := veilv1.NewRegistryClient(d.dep.Conn).ListParties(ctx, &veilv1.ListPartiesRequest{})
	if err != nil {
		return rpcError("list parties", err)
	}
	type row struct {
		Name       string `json:"name"`
		Role       string `json:"role"`
		Address    string `json:"address"`
		CertSHA256 string `json:"cert_sha256"`
	}
	var rows []row
	for _, p := range list.GetParties() {
		rows = append(rows, row{p.GetName(), p.GetRole(), p.GetAddress(), p.GetCertSha256()})
	}
	d.step("register", start, rows, "operator registered %d parties; the platform dialled each agent and checked the name and role in its certificate", len(rows))
	return nil
}

func (d *demoRun) summaries(ctx context.Context) error {
	start := time.Now()
	reg := veilv1.NewRegistryClient(d.dep.Conn)
	var all []datasetSummary
	var lines []string
	for _, p := range demoParties {
		s, err := reg.PartySummary(ctx, &veilv1.PartySummaryRequest{Name: p.name})
		if err != nil {
			return rpcError("summary of "+p.name, err)
		}
		all = append(all, summaryJSON(s))
		label := ""
		if s.GetHasLabel() {
			label = fmt.Sprintf(", label %q", s.GetLabelName())
		}
		lines = append(lines, fmt.Sprintf("    %-8s %5d rows, %2d features%s", s.GetParty(), s.GetRows(), len(s.GetFeatures()), label))
	}
	d.step("datasets", start, all, "each agent published its row count and feature names (never a value):")
	for _, l := range lines {
		fmt.Fprintln(d.out, l)
	}
	return nil
}

// extractExample copies an embedded example file to path.
func extractExample(fsys fs.FS, name, path string) (string, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return "", fmt.Errorf("bundled data %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", err
	}
	return path, nil
}
