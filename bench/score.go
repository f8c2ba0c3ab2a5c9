package bench

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/local"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/score"
	"veil/mpc/he"
)

// ScoreOptions configures RunScore.
type ScoreOptions struct {
	N         int    `json:"n"`          // enterprises, each with its own fresh grant (default 100000)
	Providers int    `json:"providers"`  // feature providers (default 3)
	Repeat    int    `json:"repeat"`     // single-enterprise requests for the latency figures (default 0)
	TrainRows int    `json:"train_rows"` // labelled rows for the model (default min(N, 2000))
	Seed      uint64 `json:"seed"`
}

// ScoreResult is what `veil bench score` reports.
type ScoreResult struct {
	N                    int                `json:"n"`
	Providers            int                `json:"providers"`
	Cores                int                `json:"cores"`
	SetupSeconds         float64            `json:"setup_seconds"` // train + key setup + enterprise registration + grants
	FirstBatchSeconds    float64            `json:"first_batch_seconds"`
	FirstBatchPerSecond  float64            `json:"first_batch_per_second"` // wall throughput, all parties on this machine
	FirstBatchCPUSeconds float64            `json:"first_batch_cpu_seconds"`
	CPUMicrosPerEnt      float64            `json:"cpu_us_per_enterprise"` // all parties together
	SecondBatchSeconds   float64            `json:"second_batch_seconds"`  // same grants (verification cached)
	SecondBatchPerSecond float64            `json:"second_batch_per_second"`
	CacheSpeedup         float64            `json:"cache_speedup"`
	StageSeconds         map[string]float64 `json:"stage_seconds"` // first batch, summed over calls
	Scored               int                `json:"scored"`
	Refused              int                `json:"refused"`
	LatencyP50Ms         float64            `json:"latency_p50_ms,omitempty"`
	LatencyP99Ms         float64            `json:"latency_p99_ms,omitempty"`
	LatencyStageMs       map[string]float64 `json:"latency_stage_ms,omitempty"` // mean per single-enterprise request
	MaxAbsLogitError     float64            `json:"max_abs_logit_error"`        // first 1000 rows vs plaintext
	Note                 string             `json:"note"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// RunScore runs a whole deployment in this process (platform, label holder,
// providers: real gRPC with mTLS on loopback, SQLite, audit log), trains a
// small model, registers N enterprises with their own keys and grants, and
// scores them twice as a bank (the second time with the same grants).
func RunScore(ctx context.Context, opt ScoreOptions) (*ScoreResult, error) {
	if opt.N <= 0 {
		opt.N = 100000
	}
	if opt.Providers <= 0 {
		opt.Providers = 3
	}
	if opt.TrainRows <= 0 {
		opt.TrainRows = min(opt.N, 2000)
	}
	if opt.Seed == 0 {
		opt.Seed = 1
	}
	start := time.Now()
	r := rand.New(rand.NewPCG(opt.Seed, 99))
	ids := make([]string, opt.N)
	for i := range ids {
		c17 := fmt.Sprintf("91%015d", i)
		cc, err := dataset.USCCCheckChar(c17)
		if err != nil {
			return nil, err
		}
		ids[i] = c17 + string(cc)
	}
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
	read := func(s, label string) (*dataset.Table, error) {
		return dataset.ReadCSV(strings.NewReader(s), dataset.Options{IDColumn: "id", LabelColumn: label})
	}
	specs := []local.AgentSpec{}
	lt, err := read(lender.String(), "y")
	if err != nil {
		return nil, err
	}
	specs = append(specs, local.AgentSpec{Name: "lender", Role: pki.RoleBank, Table: lt})
	var providers []string
	for k := range provCSV {
		t, err := read(provCSV[k].String(), "")
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("provider%d", k+1)
		providers = append(providers, name)
		specs = append(specs, local.AgentSpec{Name: name, Role: pki.RoleProvider, Table: t})
	}
	dir, err := os.MkdirTemp("", "veil-bench-score-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := local.Start(ctx, dir, log, specs...)
	if err != nil {
		return nil, err
	}
	defer d.Stop()
	if _, err := hub.TrainRemote(ctx, d.Conn, hub.TrainSpec{Name: "bench-v1", LabelParty: "lender", Parties: providers, LabelOnly: true,
		Epochs: 2, LearningRate: 0.5, TestFraction: 0.3, Seed: 1, PSIProtocol: "kkrt"}, nil); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	// Enterprises register their keys; each issues a fresh grant to the bank.
	grants := make([]string, opt.N)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range ids {
		g.Go(func() error {
			pub, priv, err := keys.Generate(nil)
			if err != nil {
				return err
			}
			if _, err := hub.RegisterEnterprise(gctx, d.Conn, ids[i], pub, false); err != nil {
				return fmt.Errorf("register %s: %w", ids[i], err)
			}
			grants[i], err = grant.Issue(ed25519.PrivateKey(priv), grant.Claims{Issuer: ids[i], Audience: "bank-a", Purpose: "bench",
				Scopes: []string{"score:bench-v1"}, ExpiresAt: time.Now().Add(2 * time.Hour), MaxUses: int64(3 + opt.Repeat)})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	bankID, err := d.Issue("bank-a", pki.RoleBank)
	if err != nil {
		return nil, err
	}
	conn, err := d.Client(bankID)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	params, err := he.ByName(score.DefaultParamSet)
	if err != nil {
		return nil, err
	}
	bk, err := score.GenerateBankKey(params)
	if err != nil {
		return nil, err
	}
	if _, err := hub.RegisterBankKey(ctx, conn, bk); err != nil {
		return nil, err
	}
	rows := make([]hub.ScoreRow, opt.N)
	for i := range rows {
		rows[i] = hub.ScoreRow{Enterprise: ids[i], Grant: grants[i]}
	}
	res := &ScoreResult{N: opt.N, Providers: opt.Providers, Cores: runtime.GOMAXPROCS(0), SetupSeconds: time.Since(start).Seconds(),
		Note: "all parties in this process: CPU is the whole process (platform, providers, bank decryption, client); per-party CPU is not separated"}
	d.Platform.ScoreStages()
	runBatch := func() (float64, float64, *hub.ScoreSummary, []hub.ScoreOutcome, error) {
		c0, t0 := cpuSeconds(), time.Now()
		out, sum, err := hub.ScoreRemote(ctx, conn, bk, rows, hub.ScoreOptions{Model: "bench-v1", Concurrency: 2})
		return time.Since(t0).Seconds(), cpuSeconds() - c0, sum, out, err
	}
	wall, cpu, sum, _, err := runBatch()
	if err != nil {
		return nil, fmt.Errorf("first batch: %w", err)
	}
	res.FirstBatchSeconds, res.FirstBatchCPUSeconds = wall, cpu
	res.FirstBatchPerSecond = float64(opt.N) / wall
	res.CPUMicrosPerEnt = cpu / float64(opt.N) * 1e6
	res.Scored, res.Refused = sum.Scored, sum.Refused
	res.StageSeconds = map[string]float64{}
	for k, v := range d.Platform.ScoreStages() {
		res.StageSeconds[k] = v.Seconds()
	}
	wall2, _, _, _, err := runBatch()
	if err != nil {
		return nil, fmt.Errorf("second batch: %w", err)
	}
	res.SecondBatchSeconds, res.SecondBatchPerSecond = wall2, float64(opt.N)/wall2
	res.CacheSpeedup = wall / wall2
	if opt.Repeat > 0 {
		d.Platform.ScoreStages()
		lat := make([]time.Duration, opt.Repeat)
		for i := range lat {
			t0 := time.Now()
			if _, _, err := hub.ScoreRemote(ctx, conn, bk, rows[i%len(rows):i%len(rows)+1], hub.ScoreOptions{Model: "bench-v1"}); err != nil {
				return nil, fmt.Errorf("latency request %d: %w", i, err)
			}
			lat[i] = time.Since(t0)
		}
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		res.LatencyP50Ms = float64(lat[len(lat)/2].Microseconds()) / 1000
		res.LatencyP99Ms = float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()) / 1000
		res.LatencyStageMs = map[string]float64{}
		for k, v := range d.Platform.ScoreStages() {
			res.LatencyStageMs[k] = v.Seconds() * 1000 / float64(opt.Repeat)
		}
	}
	return res, nil
}
