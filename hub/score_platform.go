package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/authz/audit"
	"veil/authz/grant"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/score"
	"veil/modeling/scorecard"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

// MaxScoreItems bounds the rows of one Score call (clients send larger
// batches as several calls).
const MaxScoreItems = 65536

// platformScore is the platform's side of scoring: it keeps each model's
// evaluation key and its own key share, checks every row's grant, relays
// between the bank and the feature parties and adds the encrypted partial
// logits. It never sees a score or a partial logit.
type platformScore struct {
	veilv1.UnimplementedScoringServer
	p *Platform

	mu       sync.Mutex
	models   map[string]*modelScoring // by "name/version"
	bankKeys map[string]*bankKey      // by bank name
	setupMu  sync.Mutex               // one key setup at a time

	// Stage timings (nanoseconds, summed over requests) for benchmarks.
	Stages StageTimes
}

// StageTimes sums the wall time spent in each stage of Score calls. The
// sums are also exported as the Prometheus counter
// veil_score_stage_seconds_total{stage=...} (never reset), which is how a
// benchmark reads them from a platform in another process.
type StageTimes struct {
	mu      sync.Mutex
	d       map[string]time.Duration
	counter *prometheus.CounterVec
}

// ScoreStageMetric is the name of the stage-time counter.
const ScoreStageMetric = "veil_score_stage_seconds_total"

func (s *StageTimes) add(stage string, d time.Duration) {
	if s.counter != nil {
		s.counter.WithLabelValues(stage).Add(d.Seconds())
	}
	s.mu.Lock()
	if s.d == nil {
		s.d = map[string]time.Duration{}
	}
	s.d[stage] += d
	s.mu.Unlock()
}

// Snapshot returns the summed stage times and resets them.
func (s *StageTimes) Snapshot() map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.d
	s.d = nil
	return out
}

// bankKey is a bank's registered scoring public key.
type bankKey struct {
	raw    []byte                   // as registered (MarshalPublic)
	id     string                   // hex SHA-256 of raw: how agents name the key
	parsed map[string]*he.PublicKey // by parameter set, parsed once (under platformScore.mu)
}

func newBankKey(raw []byte) *bankKey {
	sum := sha256.Sum256(raw)
	return &bankKey{raw: raw, id: hex.EncodeToString(sum[:]), parsed: map[string]*he.PublicKey{}}
}

// modelScoring is one model version's scoring state at the platform.
type modelScoring struct {
	model    *Model
	holders  []string // feature parties (the platform is the last key holder)
	bias     float64
	holder   *score.KeyHolder
	agg      *score.Aggregator
	params   *he.Params
	platform *score.Provider
}

func newPlatformScore(p *Platform) *platformScore {
	s := &platformScore{p: p, models: map[string]*modelScoring{}, bankKeys: map[string]*bankKey{}}
	if p.Metrics != nil {
		s.Stages.counter = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ScoreStageMetric,
			Help:        "Wall time spent in each stage of Score calls, summed over calls.",
			ConstLabels: prometheus.Labels{"component": "platform", "party": p.cfg.Identity.Identity.Name}}, []string{"stage"})
		p.Metrics.Registry.MustRegister(s.Stages.counter)
	}
	return s
}

func (s *platformScore) dir(parts ...string) string {
	if s.p.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(append([]string{s.p.cfg.DataDir, "scoring"}, parts...)...)
}

type platformKeyFile struct {
	Holders []string `json:"holders"`
	Bias    float64  `json:"bias"`
	Share   []byte   `json:"share"`    // score.KeyHolder (platform's own share)
	EvalKey []byte   `json:"eval_key"` // score.EvalKey
}

// onModelRegistered sets up the scoring key of a newly registered model.
func (s *platformScore) onModelRegistered(ctx context.Context, m *Model) error {
	_, err := s.setup(ctx, m)
	return err
}

// SetupScoringKey (re)creates the scoring key of a model version: a
// collective CKKS key (CKG + RKG) among the model's feature parties and the
// platform; the label holder only hands over the intercept.
func (p *Platform) SetupScoringKey(ctx context.Context, name string, version int) (*veilv1.ScoringKeyResponse, error) {
	m, err := p.ModelVersion(ctx, name, version)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "model %s: %v", name, err)
	}
	start := time.Now()
	ms, err := p.score.setup(ctx, m)
	if err != nil {
		return nil, err
	}
	return &veilv1.ScoringKeyResponse{Model: m.Name, Version: int64(m.Version), ParamSet: ms.params.Name(),
		KeyHolders: append(append([]string(nil), ms.holders...), "platform"), Seconds: time.Since(start).Seconds()}, nil
}

func (s *platformScore) setup(ctx context.Context, m *Model) (*modelScoring, error) {
	s.setupMu.Lock()
	defer s.setupMu.Unlock()
	if len(m.FeatureParties) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d has no feature parties", m.Name, m.Version)
	}
	params, err := he.ByName(score.DefaultParamSet)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	// The intercept, from the label holder (online right after training).
	conn, _, err := s.p.AgentConn(ctx, m.LabelParty)
	if err != nil {
		return nil, err
	}
	bresp, err := veilv1.NewAgentScoringClient(conn).ModelBias(ctx, &veilv1.ScoringKeyRequest{Model: m.Name, Version: int64(m.Version)})
	if err != nil {
		return nil, fmt.Errorf("model %s v%d: intercept from %s: %w", m.Name, m.Version, m.LabelParty, err)
	}
	seed, err := he.NewCRSSeed()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	setupID := newRequestID()
	holders := append([]string(nil), m.FeatureParties...)
	coord, err := score.NewKeyCoordinator(params, seed, len(holders)+1)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	clients, err := s.clients(ctx, holders)
	if err != nil {
		return nil, err
	}
	r1 := make([]*veilv1.AgentKeySetupResponse, len(holders))
	g, gctx := errgroup.WithContext(ctx)
	for i := range holders {
		g.Go(func() error {
			var err error
			r1[i], err = clients[i].KeySetup(gctx, &veilv1.AgentKeySetupRequest{Model: m.Name, Version: int64(m.Version), ParamSet: params.Name(), CrsSeed: seed, SetupId: setupID})
			if err != nil {
				return fmt.Errorf("scoring key round 1 at %s: %w", holders[i], err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	own, ownR1, err := score.NewKeyHolder(params, seed)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	for i, r := range r1 {
		if err := coord.AddRound1(&score.KeyRound1{CKG: r.GetCkgShare(), RKG1: r.GetRkgRound1()}); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "scoring key: share of %s: %v", holders[i], err)
		}
	}
	if err := coord.AddRound1(ownR1); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	pk, sum1, err := coord.Round1Result()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	r2 := make([][]byte, len(holders))
	g, gctx = errgroup.WithContext(ctx)
	for i := range holders {
		g.Go(func() error {
			resp, err := clients[i].KeySetup(gctx, &veilv1.AgentKeySetupRequest{Model: m.Name, Version: int64(m.Version), SetupId: setupID, PublicKey: pk, RkgRound1Sum: sum1})
			if err != nil {
				return fmt.Errorf("scoring key round 2 at %s: %w", holders[i], err)
			}
			r2[i] = resp.GetRkgRound2()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	ownR2, err := own.Round2(sum1)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	for i, r := range append(r2, ownR2) {
		if err := coord.AddRound2(r); err != nil {
			name := "platform"
			if i < len(holders) {
				name = holders[i]
			}
			return nil, status.Errorf(codes.InvalidArgument, "scoring key: round-2 share of %s: %v", name, err)
		}
	}
	if err := own.Finish(pk); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	ek, err := coord.Finish()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	ms, err := newModelScoring(m, holders, bresp.GetIntercept(), own, ek)
	if err != nil {
		return nil, err
	}
	if d := s.dir(m.Name, "v"+strconv.Itoa(m.Version)); d != "" {
		shareB, err := own.MarshalBinary()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		ekB, err := ek.MarshalBinary()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		b, _ := json.Marshal(platformKeyFile{Holders: holders, Bias: bresp.GetIntercept(), Share: shareB, EvalKey: ekB})
		if err := saveFile(filepath.Join(d, "key.json"), b); err != nil {
			return nil, status.Errorf(codes.Internal, "scoring key: %v", err)
		}
	}
	s.mu.Lock()
	s.models[fmt.Sprintf("%s/%d", m.Name, m.Version)] = ms
	s.mu.Unlock()
	s.p.log.Info("scoring key set up", "model", m.Name, "version", m.Version, "key_holders", append(holders, "platform"), "param_set", params.Name())
	if _, err := s.p.AuditAppend(ctx, audit.Entry{Kind: audit.KindScoreJob, JobID: setupID, Providers: holders,
		Details: map[string]string{"step": "scoring_key_setup", "model": m.Name, "version": strconv.Itoa(m.Version), "param_set": params.Name()}}); err != nil {
		return nil, err
	}
	return ms, nil
}

// clients returns a scoring client for each of the named agents.
func (s *platformScore) clients(ctx context.Context, names []string) ([]veilv1.AgentScoringClient, error) {
	out := make([]veilv1.AgentScoringClient, len(names))
	for i, n := range names {
		c, _, err := s.p.AgentConn(ctx, n)
		if err != nil {
			return nil, err
		}
		out[i] = veilv1.NewAgentScoringClient(c)
	}
	return out, nil
}

func newModelScoring(m *Model, holders []string, bias float64, own *score.KeyHolder, ek *score.EvalKey) (*modelScoring, error) {
	agg, err := score.NewAggregator(ek)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	prov, err := score.NewProvider(own)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return &modelScoring{model: m, holders: holders, bias: bias, holder: own, agg: agg, params: ek.Params, platform: prov}, nil
}

// modelFor returns the scoring state of a model version, loading it from
// the data directory after a restart.
func (s *platformScore) modelFor(ctx context.Context, name string, version int) (*modelScoring, error) {
	if name == "" {
		return nil, status.Error(codes.InvalidArgument, "no model named (use --model)")
	}
	m, err := s.p.ModelVersion(ctx, name, version)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "model %q (version %d) is not registered: %v", name, version, err)
	}
	key := fmt.Sprintf("%s/%d", m.Name, m.Version)
	s.mu.Lock()
	ms := s.models[key]
	s.mu.Unlock()
	if ms != nil {
		return ms, nil
	}
	d := s.dir(m.Name, "v"+strconv.Itoa(m.Version))
	if d == "" {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d has no scoring key (run `veil model setup-key %s`)", m.Name, m.Version, m.Name)
	}
	b, err := os.ReadFile(filepath.Join(d, "key.json"))
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d has no scoring key (run `veil model setup-key %s`)", m.Name, m.Version, m.Name)
	}
	var f platformKeyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, status.Errorf(codes.Internal, "model %s v%d: scoring key file: %v", m.Name, m.Version, err)
	}
	own, err := score.UnmarshalKeyHolder(f.Share)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	ek, err := score.UnmarshalEvalKey(f.EvalKey)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if ms, err = newModelScoring(m, f.Holders, f.Bias, own, ek); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.models[key] = ms
	s.mu.Unlock()
	return ms, nil
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func callerBank(ctx context.Context) (string, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Name == "" {
		return "", status.Error(codes.Unauthenticated, "no authenticated caller")
	}
	if c.Role != pki.RoleBank {
		return "", status.Errorf(codes.PermissionDenied, "%s has role %s; only banks may do this", c.Name, c.Role)
	}
	return c.Name, nil
}

// RegisterBankKey stores the calling bank's scoring public key.
func (s *platformScore) RegisterBankKey(ctx context.Context, req *veilv1.RegisterBankKeyRequest) (*veilv1.RegisterBankKeyResponse, error) {
	bank, err := callerBank(ctx)
	if err != nil {
		return nil, err
	}
	set, err := score.BankPublicKeyParamSet(req.GetPublicKey())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	params, err := he.ByName(set)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "bank key: %v", err)
	}
	pk, err := score.ParseBankPublicKey(params, req.GetPublicKey())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if d := s.dir("banks"); d != "" {
		if err := saveFile(filepath.Join(d, bank+".json"), req.GetPublicKey()); err != nil {
			return nil, status.Errorf(codes.Internal, "bank key: %v", err)
		}
	}
	bk := newBankKey(append([]byte(nil), req.GetPublicKey()...))
	bk.parsed[set] = pk
	s.mu.Lock()
	s.bankKeys[bank] = bk
	s.mu.Unlock()
	pkb, _ := pk.MarshalBinary()
	if _, err := s.p.AuditAppend(ctx, audit.Entry{Kind: audit.KindScoreJob, Actor: bank, Details: map[string]string{"step": "bank_key_registered", "param_set": set}}); err != nil {
		return nil, err
	}
	return &veilv1.RegisterBankKeyResponse{Bank: bank, ParamSet: set, KeyId: score.KeyID(ed25519.PublicKey(pkb))}, nil
}

func (s *platformScore) bankKey(bank string) (*bankKey, error) {
	s.mu.Lock()
	k := s.bankKeys[bank]
	s.mu.Unlock()
	if k != nil {
		return k, nil
	}
	if d := s.dir("banks"); d != "" {
		if b, err := os.ReadFile(filepath.Join(d, bank+".json")); err == nil {
			k = newBankKey(b)
			s.mu.Lock()
			s.bankKeys[bank] = k
			s.mu.Unlock()
			return k, nil
		}
	}
	return nil, status.Errorf(codes.FailedPrecondition, "bank %s has no registered scoring key (run `veil bank keys gen` and `veil bank keys register`)", bank)
}

// parsedBankKey parses (once) a bank's key for the model's parameter set.
func (s *platformScore) parsedBankKey(bk *bankKey, params *he.Params) (*he.PublicKey, error) {
	s.mu.Lock()
	pk := bk.parsed[params.Name()]
	s.mu.Unlock()
	if pk != nil {
		return pk, nil
	}
	pk, err := score.ParseBankPublicKey(params, bk.raw)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.mu.Lock()
	bk.parsed[params.Name()] = pk
	s.mu.Unlock()
	return pk, nil
}

// Score scores a batch for the calling bank. Each row's grant is checked
// here and at every feature party (each decision is logged before anything
// is released); rows refused anywhere are reported with the reason and the
// others are scored together, many per ciphertext.
func (s *platformScore) Score(ctx context.Context, req *veilv1.ScoreRequest) (*veilv1.ScoreResponse, error) {
	bank, err := callerBank(ctx)
	if err != nil {
		return nil, err
	}
	items := req.GetItems()
	if len(items) == 0 {
		return nil, status.Error(codes.InvalidArgument, "score: no enterprises in the request")
	}
	if len(items) > MaxScoreItems {
		return nil, status.Errorf(codes.InvalidArgument, "score: %d rows in one call, at most %d (split the batch)", len(items), MaxScoreItems)
	}
	comb := score.Combine{Mode: score.ModeScore, Domain: req.GetDomain()}
	if req.GetPrescreen() {
		c := req.GetCutoff()
		if !(c > 0 && c < 1) {
			return nil, status.Errorf(codes.InvalidArgument, "prescreen: cutoff %v must be a probability of default strictly between 0 and 1", c)
		}
		if d := req.GetDomain(); d < 0 || math.IsNaN(d) || d > 256 {
			return nil, status.Errorf(codes.InvalidArgument, "prescreen: domain %v must be in (0, 256]", d)
		}
		comb.Mode, comb.CutoffLogit = score.ModePrescreen, score.Logit(c)
	}
	ms, err := s.modelFor(ctx, req.GetModel(), int(req.GetVersion()))
	if err != nil {
		return nil, err
	}
	comb.Bias = ms.bias
	bk, err := s.bankKey(bank)
	if err != nil {
		return nil, err
	}
	bankPK, err := s.parsedBankKey(bk, ms.params)
	if err != nil {
		return nil, err
	}
	reqID := newRequestID()
	m := ms.model
	scope := "score:" + m.Name
	t0 := time.Now()

	// 1. The platform's own grant check of every well-formed row, as one
	// batch: all decisions are committed to the audit log (with the use
	// counts, in one transaction) before anything is forwarded.
	refused := make([]string, len(items))
	refusedBy := make([]string, len(items))
	var checks []AuthorizeItem
	var checkIdx []int
	for i, it := range items {
		if strings.TrimSpace(it.GetEnterprise()) == "" || it.GetGrant() == "" {
			refused[i], refusedBy[i] = "malformed row: enterprise and grant are both required", "platform"
			continue
		}
		checks = append(checks, AuthorizeItem{Token: it.GetGrant(), Request: grant.Request{Audience: bank, Subject: it.GetEnterprise(), Scopes: []string{scope}, JobID: reqID}})
		checkIdx = append(checkIdx, i)
	}
	if len(checks) > 0 {
		_, refs, err := s.p.AuthorizeBatch(ctx, checks)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "score: grant check: %v", status.Convert(err).Message())
		}
		for k, r := range refs {
			if r != nil {
				refused[checkIdx[k]], refusedBy[checkIdx[k]] = refusalReason(r), "platform"
			}
		}
	}
	var fwd []*veilv1.ScoreItem
	var fwdIdx []int
	for i, it := range items {
		if refused[i] == "" {
			fwd = append(fwd, it)
			fwdIdx = append(fwdIdx, i)
		}
	}
	s.Stages.add("platform_grants", time.Since(t0))
	resp := &veilv1.ScoreResponse{Model: m.Name, Version: int64(m.Version), ParamSet: ms.params.Name(), RequestId: reqID}
	card := scorecard.Default()
	resp.BasePoints, resp.BaseOdds, resp.Pdo = card.BasePoints, card.BaseOdds, card.PDO

	// 2. Each feature party checks the grants itself and computes its
	// partial logits for the rows it accepts.
	clients, err := s.clients(ctx, ms.holders)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	if len(fwd) > 0 {
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		for k := range clients {
			g.Go(func() error {
				r, err := clients[k].Prepare(gctx, &veilv1.AgentScorePrepareRequest{RequestId: reqID, Model: m.Name, Version: int64(m.Version), Bank: bank, Items: fwd})
				if err != nil {
					return fmt.Errorf("score: %s: %w", ms.holders[k], err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, rf := range r.GetRefusals() {
					j := rf.GetIndex()
					if j < 0 || j >= int64(len(fwdIdx)) {
						return status.Errorf(codes.Internal, "score: %s refused row %d of %d", ms.holders[k], j, len(fwdIdx))
					}
					if i := fwdIdx[j]; refused[i] == "" {
						refused[i], refusedBy[i] = rf.GetReason(), ms.holders[k]
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	s.Stages.add("provider_prepare", time.Since(t1))
	var rows []int64 // rows of fwd to score
	for j, i := range fwdIdx {
		if refused[i] == "" {
			rows = append(rows, int64(j))
			resp.Scored = append(resp.Scored, int64(i))
		}
	}
	for i, r := range refused {
		if r != "" {
			resp.Refusals = append(resp.Refusals, &veilv1.ScoreRefusal{Index: int64(i), Enterprise: items[i].GetEnterprise(), Party: refusedBy[i], Reason: r})
		}
	}
	if len(rows) > 0 {
		if resp.Results, err = s.compute(ctx, ms, clients, reqID, rows, comb, bk, bankPK); err != nil {
			return nil, err
		}
	}
	// 3. The job entry is committed before the result is released.
	t4 := time.Now()
	if _, err := s.p.AuditAppend(ctx, audit.Entry{Kind: audit.KindScoreJob, Actor: bank, JobID: reqID, Providers: ms.holders, Scopes: []string{scope},
		Details: map[string]string{"model": m.Name, "version": strconv.Itoa(m.Version), "mode": comb.Mode.String(),
			"rows": strconv.Itoa(len(items)), "scored": strconv.Itoa(len(rows)), "refused": strconv.Itoa(len(resp.Refusals))}}); err != nil {
		return nil, err
	}
	s.Stages.add("audit", time.Since(t4))
	return resp, nil
}

// compute runs encryption at the parties, the homomorphic sum (and step)
// here, and the key switch to the bank.
func (s *platformScore) compute(ctx context.Context, ms *modelScoring, clients []veilv1.AgentScoringClient, reqID string, rows []int64, comb score.Combine, bk *bankKey, bankPK *he.PublicKey) ([][]byte, error) {
	t := time.Now()
	parts := make([][][]byte, len(clients))
	g, gctx := errgroup.WithContext(ctx)
	for k := range clients {
		g.Go(func() error {
			r, err := clients[k].Encrypt(gctx, &veilv1.AgentScoreEncryptRequest{RequestId: reqID, Rows: rows, Prescreen: comb.Mode == score.ModePrescreen, Scale: comb.Scale()})
			if err != nil {
				return fmt.Errorf("score: %s: %w", ms.holders[k], err)
			}
			parts[k] = r.GetCiphertexts()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	s.Stages.add("provider_encrypt", time.Since(t))
	t = time.Now()
	results, err := ms.agg.Combine(ctx, parts, len(rows), comb)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "score: %v", err)
	}
	s.Stages.add("platform_combine", time.Since(t))
	t = time.Now()
	sw, err := score.NewSwitch(ms.params, results, len(clients)+1)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "score: %v", err)
	}
	shares := make([][][]byte, len(clients))
	g, gctx = errgroup.WithContext(ctx)
	for k := range clients {
		g.Go(func() error {
			// Name the bank key by its hash; send the key itself only to an
			// agent that has not seen it yet.
			req := &veilv1.AgentScoreSwitchRequest{RequestId: reqID, Results: results, BankKeyId: bk.id}
			r, err := clients[k].Switch(gctx, req)
			if status.Code(err) == codes.NotFound && strings.Contains(err.Error(), errUnknownBankKey) {
				req.BankKey = bk.raw
				r, err = clients[k].Switch(gctx, req)
			}
			if err != nil {
				return fmt.Errorf("score: key switch at %s: %w", ms.holders[k], err)
			}
			shares[k] = r.GetShares()
			return nil
		})
	}
	own, err := ms.platform.PCKSShares(ctx, results, bankPK)
	if err != nil {
		_ = g.Wait()
		return nil, status.Errorf(codes.Internal, "score: %v", err)
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for k, sh := range append(shares, own) {
		if err := sw.Add(sh); err != nil {
			return nil, status.Errorf(codes.Internal, "score: key switch share %d: %v", k, err)
		}
	}
	out, err := sw.Result()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "score: %v", err)
	}
	s.Stages.add("key_switch", time.Since(t))
	return out, nil
}

// fieldRequest forwards a verify or query request to its provider after the
// platform's own grant check, and logs the outcome before returning.
func (s *platformScore) fieldCheck(ctx context.Context, kind, provider, field, enterprise, token string) (bank, reqID string, conn veilv1.AgentScoringClient, err error) {
	if bank, err = callerBank(ctx); err != nil {
		return "", "", nil, err
	}
	if provider == "" || field == "" || strings.TrimSpace(enterprise) == "" {
		return "", "", nil, status.Errorf(codes.InvalidArgument, "%s: provider, field and enterprise are required", kind)
	}
	if token == "" {
		return "", "", nil, status.Errorf(codes.InvalidArgument, "%s: no grant (pass --grant)", kind)
	}
	reqID = newRequestID()
	if _, err := s.p.Authorize(ctx, token, grant.Request{Audience: bank, Subject: enterprise, Scopes: []string{kind + ":" + provider + "." + field}, JobID: reqID}); err != nil {
		return "", "", nil, err
	}
	c, _, err := s.p.AgentConn(ctx, provider)
	if err != nil {
		return "", "", nil, err
	}
	return bank, reqID, veilv1.NewAgentScoringClient(c), nil
}

func (s *platformScore) logField(ctx context.Context, kind, bank, reqID, provider, field, enterprise string, details map[string]string) error {
	if details == nil {
		details = map[string]string{}
	}
	details["step"], details["field"] = kind, field
	_, err := s.p.AuditAppend(ctx, audit.Entry{Kind: audit.KindScoreJob, Actor: bank, JobID: reqID, Subject: dataset.NormalizeID(enterprise),
		Providers: []string{provider}, Scopes: []string{kind + ":" + provider + "." + field}, Details: details})
	return err
}

// Verify answers a yes/no question about a field, signed by its provider.
func (s *platformScore) Verify(ctx context.Context, req *veilv1.VerifyRequest) (*veilv1.VerifyResponse, error) {
	if _, err := score.ParseOp(req.GetOp()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if math.IsNaN(req.GetValue()) || math.IsInf(req.GetValue(), 0) {
		return nil, status.Error(codes.InvalidArgument, "verify: value must be a finite number")
	}
	bank, reqID, c, err := s.fieldCheck(ctx, "verify", req.GetProvider(), req.GetField(), req.GetEnterprise(), req.GetGrant())
	if err != nil {
		return nil, err
	}
	resp, err := c.Verify(ctx, &veilv1.AgentVerifyRequest{Bank: bank, Request: req, RequestId: reqID})
	if err != nil {
		return nil, err
	}
	var res score.VerifyResult
	if err := json.Unmarshal(resp.GetResultJson(), &res); err != nil {
		return nil, status.Errorf(codes.Internal, "verify: %s sent a malformed result: %v", req.GetProvider(), err)
	}
	if err := s.logField(ctx, "verify", bank, reqID, req.GetProvider(), req.GetField(), req.GetEnterprise(), map[string]string{"op": req.GetOp()}); err != nil {
		return nil, err
	}
	return resp, nil
}

// Query returns a raw field value (query: scope only).
func (s *platformScore) Query(ctx context.Context, req *veilv1.QueryRequest) (*veilv1.QueryResponse, error) {
	bank, reqID, c, err := s.fieldCheck(ctx, "query", req.GetProvider(), req.GetField(), req.GetEnterprise(), req.GetGrant())
	if err != nil {
		return nil, err
	}
	resp, err := c.Query(ctx, &veilv1.AgentQueryRequest{Bank: bank, Request: req, RequestId: reqID})
	if err != nil {
		return nil, err
	}
	if err := s.logField(ctx, "query", bank, reqID, req.GetProvider(), req.GetField(), req.GetEnterprise(), nil); err != nil {
		return nil, err
	}
	return resp, nil
}

// ProviderKey returns a provider's verification public key.
func (s *platformScore) ProviderKey(ctx context.Context, req *veilv1.ProviderKeyRequest) (*veilv1.ProviderKeyResponse, error) {
	if req.GetProvider() == "" {
		return nil, status.Error(codes.InvalidArgument, "provider key: no provider named")
	}
	c, _, err := s.p.AgentConn(ctx, req.GetProvider())
	if err != nil {
		return nil, err
	}
	return veilv1.NewAgentScoringClient(c).SigningKey(ctx, req)
}

// SetupKey is the operator's (re)run of a model's scoring-key setup.
func (s *platformScore) SetupKey(ctx context.Context, req *veilv1.ScoringKeyRequest) (*veilv1.ScoringKeyResponse, error) {
	return s.p.SetupScoringKey(ctx, req.GetModel(), int(req.GetVersion()))
}

// ScoreStages returns and resets the platform's summed Score stage times.
func (p *Platform) ScoreStages() map[string]time.Duration { return p.score.Stages.Snapshot() }
