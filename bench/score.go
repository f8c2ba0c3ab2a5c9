package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/local"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/score"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

// ScoreOptions configures RunScore.
type ScoreOptions struct {
	N         int    `json:"n"`          // enterprises scored, each with its own fresh grant (default 100000)
	Providers int    `json:"providers"`  // feature providers (default 3)
	Repeat    int    `json:"repeat"`     // single-enterprise requests for the latency figures (default 0)
	TrainRows int    `json:"train_rows"` // labelled rows for the model (default 2000)
	Seed      uint64 `json:"seed"`
	// Exe is the veil binary to run the platform and the agents as separate
	// child processes (`veil platform serve`, `veil agent serve`), so that
	// each party's CPU time can be read from /proc. Empty: every party runs
	// in this process (tests), and CPU is not separated per party.
	Exe string `json:"-"`
	// Chunk is the rows per Score call (0: one ciphertext, 16384) and
	// Concurrency the calls in flight (0: 2) of the N-enterprise batches.
	Chunk       int `json:"chunk,omitempty"`
	Concurrency int `json:"concurrency,omitempty"`
	// SkipBatches skips the two N-enterprise batches (latency or load only).
	SkipBatches bool `json:"skip_batches,omitempty"`
	// Load test: Clients concurrent bank clients, each with its own
	// connection, send requests of LoadRows enterprises for Duration.
	Clients  int           `json:"clients,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	LoadRows int           `json:"load_rows,omitempty"` // default 1
	// Progress, if set, receives one line per step (setup can take a while).
	Progress io.Writer `json:"-"`
}

// PartyCPU is one party's CPU time in a stage.
type PartyCPU struct {
	Party      string  `json:"party"`
	CPUSeconds float64 `json:"cpu_seconds"`
	MicrosPer  float64 `json:"cpu_us_per_enterprise,omitempty"`
}

// BatchFigures are the measurements of one N-enterprise batch.
type BatchFigures struct {
	Seconds        float64            `json:"seconds"`
	PerSecond      float64            `json:"per_second"` // wall throughput, all parties on this machine
	Scored         int                `json:"scored"`
	Refused        int                `json:"refused"`
	CPU            []PartyCPU         `json:"cpu"`                           // per party (one "all parties" row in-process)
	Busiest        string             `json:"busiest_party,omitempty"`       // among platform and providers
	BusiestMicros  float64            `json:"busiest_cpu_us_per_enterprise"` // its CPU per enterprise
	DerivedPerSec  float64            `json:"derived_deployment_per_second,omitempty"`
	StageSeconds   map[string]float64 `json:"stage_seconds"` // summed over calls (calls overlap, so the sum can exceed the wall time)
	TotalCPUMicros float64            `json:"total_cpu_us_per_enterprise"`
}

// LoadFigures are the results of the concurrent-clients load test.
type LoadFigures struct {
	Clients        int            `json:"clients"`
	Seconds        float64        `json:"seconds"`
	RowsPerRequest int            `json:"rows_per_request"`
	Requests       int64          `json:"requests"`
	Errors         int64          `json:"errors"`
	FirstError     string         `json:"first_error,omitempty"`
	RowsScored     int64          `json:"rows_scored"`
	RowsRefused    int64          `json:"rows_refused"`
	RequestsPerSec float64        `json:"requests_per_second"`
	LatencyP50Ms   float64        `json:"latency_p50_ms"`
	LatencyP99Ms   float64        `json:"latency_p99_ms"`
	AuditBefore    uint64         `json:"audit_entries_before"`
	AuditAfter     uint64         `json:"audit_entries_after"`
	AuditExpected  uint64         `json:"audit_entries_expected"` // rows + 1 job entry per request
	AuditLost      int64          `json:"audit_entries_lost"`     // expected - (after - before); must be 0
	UsageExpected  int64          `json:"usage_records_expected_per_provider"`
	UsageRecorded  map[string]int `json:"usage_records_per_provider"`
	OK             bool           `json:"ok"` // no errors and no lost audit or usage entries
	CPU            []PartyCPU     `json:"cpu"`
}

// ScoreResult is what `veil bench score` reports.
type ScoreResult struct {
	N            int     `json:"n"`
	Providers    int     `json:"providers"`
	Cores        int     `json:"cores"`
	Processes    string  `json:"processes"` // "separate" (child processes) or "one"
	SetupSeconds float64 `json:"setup_seconds"`
	// Setup parts: enterprise keys and grants (client side), bulk
	// registration (audit log + directory), agents' directory sync, training.
	SetupStages map[string]float64 `json:"setup_stages"`
	First       *BatchFigures      `json:"first_batch,omitempty"`
	Second      *BatchFigures      `json:"second_batch,omitempty"` // same grants: verification cached
	// CacheSpeedup is the first batch's wall time over the second's.
	CacheSpeedup   float64            `json:"cache_speedup,omitempty"`
	LatencyP50Ms   float64            `json:"latency_p50_ms,omitempty"`
	LatencyP99Ms   float64            `json:"latency_p99_ms,omitempty"`
	LatencyMaxMs   float64            `json:"latency_max_ms,omitempty"`
	LatencyStageMs map[string]float64 `json:"latency_stage_ms,omitempty"` // mean per single-enterprise request
	Load           *LoadFigures       `json:"load,omitempty"`
	LoadAverage    string             `json:"load_average"` // /proc/loadavg at the start (other work on the machine)
	Note           string             `json:"note"`
}

// DeploymentCores is the cores each party is assumed to have for the
// derived deployment throughput.
const DeploymentCores = 2

func (o *ScoreOptions) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// RunScore sets up a deployment (platform, a label-only label holder and
// the providers; gRPC with mutual TLS on 127.0.0.1; SQLite; the audit log),
// trains a small model, registers N enterprises in bulk, each with its own
// key and a fresh grant to the bank, and measures: two batches of all N
// (the second with the same grants), single-enterprise latency (Repeat),
// and a load test of concurrent bank clients (Clients, Duration).
func RunScore(ctx context.Context, opt ScoreOptions) (*ScoreResult, error) {
	if opt.N <= 0 {
		opt.N = 100000
	}
	if opt.Providers <= 0 {
		opt.Providers = 3
	}
	if opt.TrainRows <= 0 {
		opt.TrainRows = 2000
	}
	if opt.Seed == 0 {
		opt.Seed = 1
	}
	if opt.LoadRows <= 0 {
		opt.LoadRows = 1
	}
	start := time.Now()
	res := &ScoreResult{N: opt.N, Providers: opt.Providers, Cores: runtime.GOMAXPROCS(0), SetupStages: map[string]float64{}}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAverage = strings.TrimSpace(string(b))
	}
	dir, err := os.MkdirTemp("", "veil-bench-score-")
	if err != nil {
		return nil, fmt.Errorf("bench score: %w", err)
	}
	defer os.RemoveAll(dir)

	// Synthetic data: every provider holds 3 features of max(N, TrainRows)
	// enterprises; the label holder labels the first TrainRows.
	t0 := time.Now()
	rowsTotal := max(opt.N, opt.TrainRows)
	ids := make([]string, rowsTotal)
	for i := range ids {
		c17 := fmt.Sprintf("91%015d", i)
		cc, err := dataset.USCCCheckChar(c17)
		if err != nil {
			return nil, err
		}
		ids[i] = c17 + string(cc)
	}
	lender, provCSV := syntheticScoreData(ids, opt)
	providers := make([]string, opt.Providers)
	for k := range providers {
		providers[k] = fmt.Sprintf("provider%d", k+1)
	}

	// Enterprise keys and fresh grants (the enterprises' side, on all cores).
	opt.logf("generating %d enterprise keys and grants", opt.N)
	ents := make([]grant.Enterprise, opt.N)
	rows := make([]hub.ScoreRow, opt.N)
	g, gctx := errgroup.WithContext(ctx)
	per := (opt.N + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	expires := time.Now().Add(3 * time.Hour)
	for lo := 0; lo < opt.N; lo += per {
		hi := min(lo+per, opt.N)
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				pub, priv, err := keys.Generate(nil)
				if err != nil {
					return err
				}
				ents[i] = grant.Enterprise{USCC: ids[i], Key: pub}
				tok, err := grant.Issue(ed25519.PrivateKey(priv), grant.Claims{Issuer: ids[i], Audience: "bank-a", Purpose: "bench",
					Scopes: []string{"score:bench-v1"}, ExpiresAt: expires, MaxUses: 1 << 30})
				if err != nil {
					return err
				}
				rows[i] = hub.ScoreRow{Enterprise: ids[i], Grant: tok}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("bench score: grants: %w", err)
	}
	res.SetupStages["keys_and_grants"] = time.Since(t0).Seconds()

	var dep *scoreDeployment
	if opt.Exe != "" {
		res.Processes = "separate"
		dep, err = startChildDeployment(ctx, dir, opt, lender, provCSV, providers, ents, res.SetupStages)
	} else {
		res.Processes = "one"
		dep, err = startInProcessDeployment(ctx, dir, opt, lender, provCSV, providers, ents, res.SetupStages)
	}
	if err != nil {
		return nil, err
	}
	defer dep.stop()

	t0 = time.Now()
	opt.logf("training the model (PSI, collective key, 2 epochs) and setting up its scoring key")
	if _, err := hub.TrainRemote(ctx, dep.op, hub.TrainSpec{Name: "bench-v1", LabelParty: "lender", Parties: providers, LabelOnly: true,
		Epochs: 2, LearningRate: 0.5, TestFraction: 0.3, Seed: 1, PSIProtocol: "kkrt"}, nil); err != nil {
		return nil, fmt.Errorf("bench score: train: %w", err)
	}
	res.SetupStages["train_and_key_setup"] = time.Since(t0).Seconds()
	params, err := he.ByName(score.DefaultParamSet)
	if err != nil {
		return nil, err
	}
	bk, err := score.GenerateBankKey(params)
	if err != nil {
		return nil, err
	}
	if _, err := hub.RegisterBankKey(ctx, dep.bank, bk); err != nil {
		return nil, fmt.Errorf("bench score: bank key: %w", err)
	}
	res.SetupSeconds = time.Since(start).Seconds()

	if !opt.SkipBatches {
		runBatch := func(label string) (*BatchFigures, error) {
			opt.logf("%s batch: %d enterprises", label, opt.N)
			st0, err := dep.stages()
			if err != nil {
				return nil, err
			}
			c0 := dep.cpu()
			t0 := time.Now()
			_, sum, err := hub.ScoreRemote(ctx, dep.bank, bk, rows, hub.ScoreOptions{Model: "bench-v1", Chunk: opt.Chunk, Concurrency: opt.Concurrency})
			if err != nil {
				return nil, fmt.Errorf("bench score: %s batch: %w", label, err)
			}
			wall := time.Since(t0).Seconds()
			c1 := dep.cpu()
			st1, err := dep.stages()
			if err != nil {
				return nil, err
			}
			f := &BatchFigures{Seconds: wall, PerSecond: float64(opt.N) / wall, Scored: sum.Scored, Refused: sum.Refused,
				StageSeconds: diffMap(st1, st0)}
			f.CPU, f.Busiest, f.BusiestMicros, f.TotalCPUMicros = cpuFigures(c0, c1, dep.order, opt.N)
			if f.BusiestMicros > 0 && dep.separate {
				f.DerivedPerSec = DeploymentCores / (f.BusiestMicros / 1e6)
			}
			opt.logf("%s batch: %.2f s, %.0f/s wall", label, wall, f.PerSecond)
			return f, nil
		}
		if res.First, err = runBatch("first"); err != nil {
			return nil, err
		}
		if res.Second, err = runBatch("second"); err != nil {
			return nil, err
		}
		res.CacheSpeedup = res.First.Seconds / res.Second.Seconds
		if res.First.Scored != opt.N || res.Second.Scored != opt.N {
			return nil, fmt.Errorf("bench score: scored %d and %d of %d enterprises (refused %d, %d)", res.First.Scored, res.Second.Scored, opt.N, res.First.Refused, res.Second.Refused)
		}
	}

	if opt.Repeat > 0 {
		opt.logf("latency: %d single-enterprise requests", opt.Repeat)
		st0, err := dep.stages()
		if err != nil {
			return nil, err
		}
		lat := make([]time.Duration, opt.Repeat)
		for i := range lat {
			t0 := time.Now()
			r := rows[i%len(rows) : i%len(rows)+1]
			out, _, err := hub.ScoreRemote(ctx, dep.bank, bk, r, hub.ScoreOptions{Model: "bench-v1"})
			if err != nil {
				return nil, fmt.Errorf("bench score: latency request %d: %w", i, err)
			}
			lat[i] = time.Since(t0)
			if out[0].Score == nil {
				return nil, fmt.Errorf("bench score: latency request %d refused: %s", i, out[0].Refused)
			}
		}
		st1, err := dep.stages()
		if err != nil {
			return nil, err
		}
		p50, p99, pmax := percentiles(lat)
		res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyMaxMs = p50, p99, pmax
		res.LatencyStageMs = map[string]float64{}
		for k, v := range diffMap(st1, st0) {
			res.LatencyStageMs[k] = v * 1000 / float64(opt.Repeat)
		}
	}

	if opt.Clients > 0 && opt.Duration > 0 {
		opt.logf("load: %d clients for %s, %d enterprise(s) per request", opt.Clients, opt.Duration, opt.LoadRows)
		if res.Load, err = runScoreLoad(ctx, dep, bk, rows, opt); err != nil {
			return nil, err
		}
	}
	if dep.separate {
		res.Note = "platform and agents are separate child processes on this machine; CPU per party from /proc/<pid>/stat (utime+stime); 'bank' is this process (request building and decryption); derived deployment throughput = 2 cores / busiest party's CPU per enterprise (platform or a provider)"
	} else {
		res.Note = "all parties in this process: CPU is the whole process (per party not separated)"
	}
	return res, nil
}

func syntheticScoreData(ids []string, opt ScoreOptions) (string, []string) {
	r := rand.New(rand.NewPCG(opt.Seed, 99))
	var lender strings.Builder
	lender.WriteString("id,y\n")
	provCSV := make([]strings.Builder, opt.Providers)
	for k := range provCSV {
		provCSV[k].WriteString("id,f1,f2,f3\n")
	}
	for i, id := range ids {
		z := -1.0
		for k := range provCSV {
			a, b, c := r.NormFloat64(), r.NormFloat64(), r.NormFloat64()
			z += 0.5*a - 0.3*b + 0.2*c
			fmt.Fprintf(&provCSV[k], "%s,%.4f,%.4f,%.4f\n", id, a, b, c)
		}
		if i < opt.TrainRows {
			y := 0
			if r.Float64() < score.Sigmoid(z) {
				y = 1
			}
			fmt.Fprintf(&lender, "%s,%d\n", id, y)
		}
	}
	out := make([]string, len(provCSV))
	for k := range provCSV {
		out[k] = provCSV[k].String()
	}
	return lender.String(), out
}

// scoreDeployment is a running deployment, in this process or as child
// processes, with what the benchmark needs to measure it.
type scoreDeployment struct {
	separate bool
	op, bank *grpc.ClientConn
	dial     func() (*grpc.ClientConn, error) // a new bank connection
	order    []string                         // party names for reports
	pids     map[string]int                   // child processes (separate only)
	usage    map[string]string                // provider -> usage.jsonl
	stages   func() (map[string]float64, error)
	stop     func()
}

// cpu returns each party's CPU seconds so far ("bank" is this process; in
// one process, "all parties").
func (d *scoreDeployment) cpu() map[string]float64 {
	out := map[string]float64{}
	if !d.separate {
		out["all parties"] = selfCPU()
		return out
	}
	for name, pid := range d.pids {
		out[name] = procCPU(pid)
	}
	out["bank"] = selfCPU()
	return out
}

func cpuFigures(c0, c1 map[string]float64, order []string, n int) (rows []PartyCPU, busiest string, busiestUs, totalUs float64) {
	names := order
	if _, ok := c1["all parties"]; ok {
		names = []string{"all parties"}
	}
	for _, name := range names {
		d := c1[name] - c0[name]
		us := d / float64(n) * 1e6
		rows = append(rows, PartyCPU{Party: name, CPUSeconds: d, MicrosPer: us})
		totalUs += us
		if name == "bank" || name == "lender" {
			continue // not a serving party of the deployment's scoring path
		}
		if us > busiestUs {
			busiest, busiestUs = name, us
		}
	}
	return rows, busiest, busiestUs, totalUs
}

func diffMap(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		if d := v - b[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

func percentiles(lat []time.Duration) (p50, p99, pmax float64) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(s[len(s)/2]), ms(s[min(len(s)-1, (len(s)*99+99)/100-1)]), ms(s[len(s)-1])
}

// startInProcessDeployment runs every party in this process (hub/local).
func startInProcessDeployment(ctx context.Context, dir string, opt ScoreOptions, lender string, provCSV, providers []string, ents []grant.Enterprise, setup map[string]float64) (*scoreDeployment, error) {
	read := func(s, label string) (*dataset.Table, error) {
		return dataset.ReadCSV(strings.NewReader(s), dataset.Options{IDColumn: "id", LabelColumn: label})
	}
	lt, err := read(lender, "y")
	if err != nil {
		return nil, err
	}
	specs := []local.AgentSpec{{Name: "lender", Role: pki.RoleBank, Table: lt}}
	for k, name := range providers {
		t, err := read(provCSV[k], "")
		if err != nil {
			return nil, err
		}
		specs = append(specs, local.AgentSpec{Name: name, Role: pki.RoleProvider, Table: t})
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := local.Start(ctx, dir, log, specs...)
	if err != nil {
		return nil, fmt.Errorf("bench score: start deployment: %w", err)
	}
	dep := &scoreDeployment{op: d.Conn, order: []string{"all parties"}, usage: map[string]string{}}
	stopped := false
	dep.stop = func() {
		if !stopped {
			stopped = true
			if dep.bank != nil {
				dep.bank.Close()
			}
			d.Stop()
		}
	}
	t0 := time.Now()
	opt.logf("registering %d enterprises in bulk (audit log, directory, one sync per agent)", len(ents))
	if _, err := d.Platform.ImportEnterprises(ctx, ents); err != nil {
		dep.stop()
		return nil, fmt.Errorf("bench score: register enterprises: %w", err)
	}
	setup["register_enterprises"] = time.Since(t0).Seconds()
	bankID, err := d.Issue("bank-a", pki.RoleBank)
	if err != nil {
		dep.stop()
		return nil, err
	}
	dep.dial = func() (*grpc.ClientConn, error) { return d.Client(bankID) }
	if dep.bank, err = dep.dial(); err != nil {
		dep.stop()
		return nil, err
	}
	for _, p := range providers {
		dep.usage[p] = filepath.Join(dir, p, "state", "usage.jsonl")
	}
	cum := map[string]float64{}
	var mu sync.Mutex
	dep.stages = func() (map[string]float64, error) {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range d.Platform.ScoreStages() {
			cum[k] += v.Seconds()
		}
		out := make(map[string]float64, len(cum))
		for k, v := range cum {
			out[k] = v
		}
		return out, nil
	}
	return dep, nil
}

// childProc is one party running as `veil ... serve`.
type childProc struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  string
}

// freePort asks the kernel for a free loopback port (the child binds it a
// moment later).
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// childEnv is this process's environment without VEIL_* variables, so that
// only the flags the benchmark passes configure the children.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VEIL_") {
			out = append(out, kv)
		}
	}
	return out
}

func startChild(exe, dir, name string, args ...string) (*childProc, error) {
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append(args, "--log-level", "warn")...)
	cmd.Stdout, cmd.Stderr, cmd.Env = lf, lf, childEnv()
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &childProc{name: name, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { c.done <- cmd.Wait(); lf.Close() }()
	return c, nil
}

// stopChild asks the child to stop (SIGTERM: graceful), then kills it if it
// has not exited in time. Only this child's own PID is signalled.
func (c *childProc) stop() {
	if c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *childProc) tail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitServing dials until the child answers a call (or exits).
func waitServing(ctx context.Context, c *childProc, call func(context.Context) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := call(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-c.done:
			c.done <- werr
			return fmt.Errorf("%s exited (%v): %s", c.name, werr, c.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving after 60s: %v: %s", c.name, err, c.tail())
		}
	}
}

// startChildDeployment runs the platform and every agent as separate
// processes of exe on 127.0.0.1, with certificates from a fresh CA in dir.
// The enterprises are registered in bulk into the platform's database
// before it starts (hub.Platform.ImportEnterprises: audit entries first,
// then the directory, in one transaction each); each agent then receives
// the whole directory in one Sync when the operator adds it.
func startChildDeployment(ctx context.Context, dir string, opt ScoreOptions, lender string, provCSV, providers []string, ents []grant.Enterprise, setup map[string]float64) (_ *scoreDeployment, err error) {
	caDir := filepath.Join(dir, "ca")
	if err := pki.InitCA(caDir, 24*time.Hour); err != nil {
		return nil, err
	}
	issue := func(name string, role pki.Role) (string, *pki.Party, error) {
		tls := filepath.Join(dir, name, "tls")
		if err := pki.Issue(caDir, tls, pki.IssueRequest{Name: name, Role: role, Validity: 24 * time.Hour}); err != nil {
			return "", nil, err
		}
		p, err := pki.Load(tls)
		return tls, p, err
	}
	platTLS, operator, err := issue("platform", pki.RolePlatform)
	if err != nil {
		return nil, err
	}
	platData := filepath.Join(dir, "platform", "data")

	t0 := time.Now()
	opt.logf("registering %d enterprises in bulk into the platform database (audit log + directory)", len(ents))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := hub.NewPlatform(ctx, hub.PlatformConfig{Identity: operator, DataDir: platData, Log: quiet})
	if err != nil {
		return nil, fmt.Errorf("bench score: open platform data: %w", err)
	}
	_, ierr := p.ImportEnterprises(ctx, ents)
	if cerr := p.DB().Close(); ierr == nil && cerr != nil {
		ierr = cerr
	}
	if ierr != nil {
		return nil, fmt.Errorf("bench score: register enterprises: %w", ierr)
	}
	setup["register_enterprises"] = time.Since(t0).Seconds()

	dep := &scoreDeployment{separate: true, pids: map[string]int{}, usage: map[string]string{}}
	var children []*childProc
	dep.stop = func() {
		if dep.bank != nil {
			dep.bank.Close()
			dep.bank = nil
		}
		if dep.op != nil {
			dep.op.Close()
			dep.op = nil
		}
		var wg sync.WaitGroup
		for _, c := range children {
			wg.Add(1)
			go func() { defer wg.Done(); c.stop() }()
		}
		wg.Wait()
		children = nil
	}
	defer func() {
		if err != nil {
			dep.stop()
		}
	}()

	platAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	metricsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	pc, err := startChild(opt.Exe, dir, "platform", "platform", "serve", "--listen", platAddr, "--data-dir", platData,
		"--tls-dir", platTLS, "--metrics-listen", metricsAddr)
	if err != nil {
		return nil, err
	}
	children = append(children, pc)
	dep.pids["platform"] = pc.cmd.Process.Pid
	if dep.op, err = hub.Dial(operator, platAddr, &pki.Identity{Role: pki.RolePlatform}); err != nil {
		return nil, err
	}
	reg := veilv1.NewRegistryClient(dep.op)
	if err := waitServing(ctx, pc, func(ctx context.Context) error {
		_, err := reg.ListParties(ctx, &veilv1.ListPartiesRequest{})
		return err
	}); err != nil {
		return nil, err
	}

	type agentDef struct {
		name  string
		role  pki.Role
		csv   string
		label string
	}
	defs := []agentDef{{"lender", pki.RoleBank, lender, "y"}}
	for k, name := range providers {
		defs = append(defs, agentDef{name, pki.RoleProvider, provCSV[k], ""})
	}
	addrs := map[string]string{}
	for _, a := range defs {
		tls, _, err := issue(a.name, a.role)
		if err != nil {
			return nil, err
		}
		data := filepath.Join(dir, a.name, "data.csv")
		if err := os.WriteFile(data, []byte(a.csv), 0o600); err != nil {
			return nil, err
		}
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		state := filepath.Join(dir, a.name, "state")
		args := []string{"agent", "serve", "--listen", addr, "--tls-dir", tls, "--data", data, "--id-column", "id", "--data-dir", state}
		if a.label != "" {
			args = append(args, "--label", a.label)
		}
		c, err := startChild(opt.Exe, dir, a.name, args...)
		if err != nil {
			return nil, err
		}
		children = append(children, c)
		dep.pids[a.name] = c.cmd.Process.Pid
		addrs[a.name] = addr
		if a.role == pki.RoleProvider {
			dep.usage[a.name] = filepath.Join(state, "usage.jsonl")
		}
	}
	t0 = time.Now()
	opt.logf("adding %d agents (each gets the directory in one Sync)", len(defs))
	for i, a := range defs {
		c := children[i+1]
		if err := waitServing(ctx, c, func(ctx context.Context) error {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 120*time.Second)
			defer cancel()
			_, err := reg.AddParty(actx, &veilv1.AddPartyRequest{Name: a.name, Role: string(a.role), Address: addrs[a.name]})
			return err
		}); err != nil {
			return nil, fmt.Errorf("bench score: add %s: %w", a.name, err)
		}
	}
	setup["add_agents_and_sync"] = time.Since(t0).Seconds()
	dep.order = append([]string{"platform"}, providers...)
	dep.order = append(dep.order, "lender", "bank")

	_, bankID, err := issue("bank-a", pki.RoleBank)
	if err != nil {
		return nil, err
	}
	dep.dial = func() (*grpc.ClientConn, error) {
		return hub.Dial(bankID, platAddr, &pki.Identity{Role: pki.RolePlatform})
	}
	if dep.bank, err = dep.dial(); err != nil {
		return nil, err
	}
	metricsURL := "http://" + metricsAddr + "/metrics"
	dep.stages = func() (map[string]float64, error) { return scrapeStages(ctx, metricsURL) }
	return dep, nil
}

// scrapeStages reads the platform's veil_score_stage_seconds_total
// counters from its Prometheus endpoint.
func scrapeStages(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench score: platform metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, hub.ScoreStageMetric+"{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `stage="`)
		stage, rest, ok := strings.Cut(rest, `"`)
		if !ok {
			continue
		}
		_, val, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err == nil {
			out[stage] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench score: platform metrics: %w", err)
	}
	return out, nil
}

// auditSize asks the platform for the number of audit log entries.
func auditSize(ctx context.Context, conn grpc.ClientConnInterface) (uint64, error) {
	r, err := veilv1.NewAuthzClient(conn).AuditCheckpoints(ctx, &veilv1.AuthzAuditCheckpointsRequest{})
	if err != nil {
		return 0, fmt.Errorf("bench score: audit log size: %w", err)
	}
	return r.GetSize(), nil
}

func countUsageLines(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}

// runScoreLoad runs opt.Clients concurrent bank clients, each on its own
// connection, sending requests of opt.LoadRows random enterprises for
// opt.Duration, and checks that every decision reached the audit log (and
// every provider's usage record).
func runScoreLoad(ctx context.Context, dep *scoreDeployment, bk *score.BankKey, rows []hub.ScoreRow, opt ScoreOptions) (*LoadFigures, error) {
	lf := &LoadFigures{Clients: opt.Clients, RowsPerRequest: min(opt.LoadRows, len(rows)), UsageRecorded: map[string]int{}}
	conns := make([]*grpc.ClientConn, opt.Clients)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		var err error
		if conns[i], err = dep.dial(); err != nil {
			return nil, fmt.Errorf("bench score: load client %d: %w", i, err)
		}
	}
	var err error
	if lf.AuditBefore, err = auditSize(ctx, dep.op); err != nil {
		return nil, err
	}
	usage0 := map[string]int{}
	for p, path := range dep.usage {
		if usage0[p], err = countUsageLines(path); err != nil {
			return nil, err
		}
	}
	var (
		requests, errs, scored, refused atomic.Int64
		mu                              sync.Mutex
		lat                             []time.Duration
		firstErr                        string
		wg                              sync.WaitGroup
	)
	c0 := dep.cpu()
	start := time.Now()
	deadline := start.Add(opt.Duration)
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(opt.Seed, uint64(i)+1000))
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				batch := make([]hub.ScoreRow, lf.RowsPerRequest)
				for j := range batch {
					batch[j] = rows[r.IntN(len(rows))]
				}
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, sum, err := hub.ScoreRemote(rctx, conn, bk, batch, hub.ScoreOptions{Model: "bench-v1", Concurrency: 1})
				cancel()
				requests.Add(1)
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
				scored.Add(int64(sum.Scored))
				refused.Add(int64(sum.Refused))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	lf.Seconds = time.Since(start).Seconds()
	c1 := dep.cpu()
	lf.CPU, _, _, _ = cpuFigures(c0, c1, dep.order, max(1, int(scored.Load())))
	lf.Requests, lf.Errors, lf.RowsScored, lf.RowsRefused, lf.FirstError = requests.Load(), errs.Load(), scored.Load(), refused.Load(), firstErr
	lf.RequestsPerSec = float64(lf.Requests) / lf.Seconds
	lf.LatencyP50Ms, lf.LatencyP99Ms, _ = percentiles(lat)
	if lf.AuditAfter, err = auditSize(ctx, dep.op); err != nil {
		return nil, err
	}
	ok := lf.Errors == 0
	// Each request logs one decision per row at the platform plus the
	// request's job entry; at each provider one usage record per row.
	lf.AuditExpected = uint64(lf.Requests) * uint64(lf.RowsPerRequest+1)
	lf.AuditLost = int64(lf.AuditExpected) - int64(lf.AuditAfter-lf.AuditBefore)
	lf.UsageExpected = lf.Requests * int64(lf.RowsPerRequest)
	for p, path := range dep.usage {
		n, err := countUsageLines(path)
		if err != nil {
			return nil, err
		}
		lf.UsageRecorded[p] = n - usage0[p]
		if int64(lf.UsageRecorded[p]) != lf.UsageExpected {
			ok = false
		}
	}
	lf.OK = ok && lf.AuditLost == 0 && lf.Requests > 0
	return lf, nil
}
