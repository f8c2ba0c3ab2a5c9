package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/authz/grant"
	"veil/internal/fileutil"
	"veil/modeling/dataset"
	"veil/modeling/score"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

// ScoreKeyFile is a feature party's share of a model's scoring key, in the
// model version's directory of the agent's data dir (never sent anywhere).
const ScoreKeyFile = "score-key.json"

// scoreSessionTTL bounds how long a prepared scoring request waits for its
// Encrypt and Switch calls.
const scoreSessionTTL = 5 * time.Minute

// errUnknownBankKey starts the NotFound message of a Switch call that named
// a bank key the agent has not seen (the platform then sends the key).
const errUnknownBankKey = "unknown bank key"

// agentScore is a feature party's side of scoring, verification and query.
type agentScore struct {
	veilv1.UnimplementedAgentScoringServer
	a *Agent

	mu       sync.Mutex
	setups   map[string]*score.KeyHolder // key setups between rounds, by setup ID
	models   map[string]*scoringPart     // loaded parts, by "name/version"
	sessions map[string]*scoreSession    // prepared requests, by request ID
	bankKeys map[[32]byte]*he.PublicKey  // parsed bank keys, by SHA-256 of their bytes

	rowsOnce sync.Once
	rows     map[string]int // enterprise ID -> table row

	signOnce sync.Once
	signKey  ed25519.PrivateKey
	signErr  error
}

// scoringPart is a model part ready to score: the weights in table-column
// order and the party's scoring key.
type scoringPart struct {
	model    string
	version  int
	cols     []int // table column of each weight
	weights  []float64
	provider *score.Provider
	holder   *score.KeyHolder
}

// scoreSession holds the partial logits of one prepared request until they
// are encrypted, and then remembers that one key switch is owed for it.
type scoreSession struct {
	part     *scoringPart
	u        []float64 // per request row; NaN: refused here
	created  time.Time
	enc      bool // Encrypt done
	switched bool // Switch done
}

func newAgentScore(a *Agent) *agentScore {
	return &agentScore{a: a, setups: map[string]*score.KeyHolder{}, models: map[string]*scoringPart{},
		sessions: map[string]*scoreSession{}, bankKeys: map[[32]byte]*he.PublicKey{}}
}

func (s *agentScore) rowIndex() map[string]int {
	s.rowsOnce.Do(func() {
		t := s.a.cfg.Table
		s.rows = make(map[string]int, t.Rows())
		for i, id := range t.IDs {
			s.rows[id] = i
		}
	})
	return s.rows
}

// KeySetup runs this party's two rounds of a model's scoring-key setup.
func (s *agentScore) KeySetup(ctx context.Context, req *veilv1.AgentKeySetupRequest) (*veilv1.AgentKeySetupResponse, error) {
	if err := ValidModelName(req.GetModel()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	version := int(req.GetVersion())
	mp, err := s.a.ModelPart(req.GetModel(), version)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "scoring key: %v", err)
	}
	if len(mp.Weights) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "scoring key: %s holds no features of model %s v%d, so it is not a key holder", s.a.Name(), mp.Model, mp.Version)
	}
	if req.GetSetupId() == "" {
		return nil, status.Error(codes.InvalidArgument, "scoring key: no setup ID")
	}
	if len(req.GetCrsSeed()) > 0 { // round 1
		params, err := he.ByName(req.GetParamSet())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "scoring key: %v", err)
		}
		h, r1, err := score.NewKeyHolder(params, req.GetCrsSeed())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "scoring key: %v", err)
		}
		s.mu.Lock()
		s.setups[req.GetSetupId()] = h
		s.mu.Unlock()
		return &veilv1.AgentKeySetupResponse{CkgShare: r1.CKG, RkgRound1: r1.RKG1}, nil
	}
	s.mu.Lock()
	h := s.setups[req.GetSetupId()]
	delete(s.setups, req.GetSetupId())
	s.mu.Unlock()
	if h == nil {
		return nil, status.Errorf(codes.FailedPrecondition, "scoring key: setup %s has no round 1 here", req.GetSetupId())
	}
	r2, err := h.Round2(req.GetRkgRound1Sum())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "scoring key: %v", err)
	}
	if err := h.Finish(req.GetPublicKey()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "scoring key: %v", err)
	}
	b, err := h.MarshalBinary()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "scoring key: %v", err)
	}
	if s.a.cfg.DataDir == "" {
		return nil, status.Error(codes.FailedPrecondition, "scoring key: agent has no data directory to keep its key share in")
	}
	if err := fileutil.WriteAtomic(filepath.Join(s.a.modelDir(mp.Model, mp.Version), ScoreKeyFile), b, 0o600); err != nil {
		return nil, status.Errorf(codes.Internal, "scoring key: save share: %v", err)
	}
	s.mu.Lock()
	delete(s.models, fmt.Sprintf("%s/%d", mp.Model, mp.Version))
	s.mu.Unlock()
	s.a.log.Info("scoring key share stored", "model", mp.Model, "version", mp.Version, "param_set", h.Params().Name())
	return &veilv1.AgentKeySetupResponse{RkgRound2: r2}, nil
}

// part loads (and caches) a model part with its scoring key.
func (s *agentScore) part(model string, version int) (*scoringPart, error) {
	key := fmt.Sprintf("%s/%d", model, version)
	s.mu.Lock()
	sp := s.models[key]
	s.mu.Unlock()
	if sp != nil {
		return sp, nil
	}
	mp, err := s.a.ModelPart(model, version)
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "%v", err)
	}
	b, err := os.ReadFile(filepath.Join(s.a.modelDir(mp.Model, mp.Version), ScoreKeyFile))
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d has no scoring key at %s (run `veil model setup-key`): %v", mp.Model, mp.Version, s.a.Name(), err)
	}
	h, err := score.UnmarshalKeyHolder(b)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "model %s v%d: %v", mp.Model, mp.Version, err)
	}
	prov, err := score.NewProvider(h)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "model %s v%d: %v", mp.Model, mp.Version, err)
	}
	t := s.a.cfg.Table
	// The table was preprocessed with the transform fitted at load time; the
	// part's features are exactly those rows only if the part was trained
	// with the same transform (the agent must be restarted on the same data).
	if err := sameTransform(t.Transform, mp.Transform); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d at %s: %v", mp.Model, mp.Version, s.a.Name(), err)
	}
	col := make(map[string]int, len(t.FeatureNames))
	for j, n := range t.FeatureNames {
		col[n] = j
	}
	sp = &scoringPart{model: mp.Model, version: mp.Version, weights: mp.Weights, provider: prov, holder: h}
	for _, f := range mp.Features {
		j, ok := col[f]
		if !ok {
			return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d: feature %s is not in %s's table", mp.Model, mp.Version, f, s.a.Name())
		}
		sp.cols = append(sp.cols, j)
	}
	s.mu.Lock()
	s.models[key] = sp
	if version == 0 {
		s.models[fmt.Sprintf("%s/%d", mp.Model, mp.Version)] = sp
	}
	s.mu.Unlock()
	return sp, nil
}

func sameTransform(a, b *dataset.Transform) error {
	if b == nil {
		return errors.New("the model part has no preprocessing transform")
	}
	if a == nil {
		return errors.New("the loaded table has no preprocessing transform")
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		return errors.New("the agent's data was loaded with other preprocessing than the model was trained with (restart the agent on the training data)")
	}
	return nil
}

func (s *agentScore) expire(now time.Time) {
	for id, ss := range s.sessions {
		if now.Sub(ss.created) > scoreSessionTTL {
			delete(s.sessions, id)
		}
	}
}

// refusalReason turns an Authorize error into a one-line reason.
func refusalReason(err error) string {
	if r, d, ok := GrantRefusal(err); ok {
		if d != "" {
			return string(r) + ": " + d
		}
		return string(r)
	}
	return "internal error: " + status.Convert(err).Message()
}

// Prepare checks each row's grant (this party's own check, logged in its
// usage record) and computes the partial logits of the rows it accepts.
func (s *agentScore) Prepare(ctx context.Context, req *veilv1.AgentScorePrepareRequest) (*veilv1.AgentScorePrepareResponse, error) {
	if req.GetRequestId() == "" || req.GetBank() == "" {
		return nil, status.Error(codes.InvalidArgument, "score prepare: request ID and bank are required")
	}
	sp, err := s.part(req.GetModel(), int(req.GetVersion()))
	if err != nil {
		return nil, err
	}
	items := req.GetItems()
	u := make([]float64, len(items))
	reasons := make([]string, len(items))
	rows := s.rowIndex()
	table := s.a.cfg.Table
	scope := "score:" + sp.model
	// This party's own check of every row's grant, as one batch (one local
	// transaction, one usage-record write) before any partial logit exists.
	checks := make([]AuthorizeItem, len(items))
	for i, it := range items {
		checks[i] = AuthorizeItem{Token: it.GetGrant(), Request: grant.Request{Audience: req.GetBank(), Subject: it.GetEnterprise(), Scopes: []string{scope}, JobID: req.GetRequestId()}}
	}
	_, refs, err := s.a.AuthorizeBatch(ctx, checks)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "score prepare: grant check: %v", status.Convert(err).Message())
	}
	for i, it := range items {
		u[i] = math.NaN()
		if refs[i] != nil {
			reasons[i] = refusalReason(refs[i])
			continue
		}
		r, ok := rows[dataset.NormalizeID(it.GetEnterprise())]
		if !ok {
			reasons[i] = "unknown enterprise at " + s.a.Name()
			continue
		}
		var v float64
		for k, c := range sp.cols {
			v += table.Columns[c][r] * sp.weights[k]
		}
		u[i] = v
	}
	resp := &veilv1.AgentScorePrepareResponse{}
	for i, r := range reasons {
		if r != "" {
			resp.Refusals = append(resp.Refusals, &veilv1.ScoreRefusal{Index: int64(i), Enterprise: items[i].GetEnterprise(), Party: s.a.Name(), Reason: r})
		}
	}
	now := time.Now()
	s.mu.Lock()
	s.expire(now)
	if _, dup := s.sessions[req.GetRequestId()]; dup {
		s.mu.Unlock()
		return nil, status.Errorf(codes.AlreadyExists, "score prepare: request %s already prepared", req.GetRequestId())
	}
	s.sessions[req.GetRequestId()] = &scoreSession{part: sp, u: u, created: now}
	s.mu.Unlock()
	return resp, nil
}

// Encrypt encrypts the partial logits of the rows every party accepted.
func (s *agentScore) Encrypt(ctx context.Context, req *veilv1.AgentScoreEncryptRequest) (*veilv1.AgentScoreEncryptResponse, error) {
	s.mu.Lock()
	ss := s.sessions[req.GetRequestId()]
	ok := ss != nil && !ss.enc
	if ok {
		ss.enc = true
	}
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "score encrypt: request %s is not prepared here (or already encrypted)", req.GetRequestId())
	}
	vals := make([]float64, len(req.GetRows()))
	for i, r := range req.GetRows() {
		if r < 0 || r >= int64(len(ss.u)) || math.IsNaN(ss.u[r]) {
			return nil, status.Errorf(codes.InvalidArgument, "score encrypt: row %d was not accepted here", r)
		}
		vals[i] = ss.u[r]
	}
	mode := score.ModeScore
	if req.GetPrescreen() {
		mode = score.ModePrescreen
	}
	cts, err := ss.part.provider.EncryptPartials(ctx, vals, mode, req.GetScale())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "score encrypt: %v", err)
	}
	s.mu.Lock()
	ss.u = nil // nothing more to do with the values
	s.mu.Unlock()
	return &veilv1.AgentScoreEncryptResponse{Ciphertexts: cts}, nil
}

// Switch contributes this party's PCKS shares to move a request's result to
// the bank's key: once per encrypted request, so the platform cannot have
// arbitrary ciphertexts switched.
func (s *agentScore) Switch(ctx context.Context, req *veilv1.AgentScoreSwitchRequest) (*veilv1.AgentScoreSwitchResponse, error) {
	s.mu.Lock()
	ss := s.sessions[req.GetRequestId()]
	ok := ss != nil && ss.enc && !ss.switched
	if ok {
		ss.switched = true
		delete(s.sessions, req.GetRequestId())
	}
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "score switch: request %s has no encrypted partials here (or was already switched)", req.GetRequestId())
	}
	params := ss.part.holder.Params()
	var sum [32]byte
	if len(req.GetBankKey()) > 0 {
		sum = sha256.Sum256(req.GetBankKey())
		if id := req.GetBankKeyId(); id != "" && id != hex.EncodeToString(sum[:]) {
			return nil, status.Error(codes.InvalidArgument, "score switch: bank key does not match its ID")
		}
	} else if b, err := hex.DecodeString(req.GetBankKeyId()); err != nil || len(b) != 32 {
		return nil, status.Error(codes.InvalidArgument, "score switch: no bank key and no valid bank key ID")
	} else {
		copy(sum[:], b)
	}
	s.mu.Lock()
	pk := s.bankKeys[sum]
	s.mu.Unlock()
	if pk == nil {
		if len(req.GetBankKey()) == 0 {
			// The request stays switchable: the platform retries with the key.
			s.mu.Lock()
			ss.switched = false
			s.sessions[req.GetRequestId()] = ss
			s.mu.Unlock()
			return nil, status.Errorf(codes.NotFound, "%s: unknown bank key %s", errUnknownBankKey, req.GetBankKeyId())
		}
		var err error
		if pk, err = score.ParseBankPublicKey(params, req.GetBankKey()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "score switch: %v", err)
		}
		s.mu.Lock()
		if len(s.bankKeys) > 1024 {
			s.bankKeys = map[[32]byte]*he.PublicKey{}
		}
		s.bankKeys[sum] = pk
		s.mu.Unlock()
	}
	shares, err := ss.part.provider.PCKSShares(ctx, req.GetResults(), pk)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "score switch: %v", err)
	}
	return &veilv1.AgentScoreSwitchResponse{Shares: shares}, nil
}

func (s *agentScore) signingKey() (ed25519.PrivateKey, error) {
	s.signOnce.Do(func() {
		if s.a.cfg.DataDir == "" {
			s.signErr = errors.New("agent has no data directory for its verification signing key")
			return
		}
		s.signKey, s.signErr = score.LoadOrCreateSigningKey(s.a.cfg.DataDir)
	})
	return s.signKey, s.signErr
}

// SigningKey publishes the public half of the verification signing key.
func (s *agentScore) SigningKey(ctx context.Context, _ *veilv1.ProviderKeyRequest) (*veilv1.ProviderKeyResponse, error) {
	k, err := s.signingKey()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "signing key: %v", err)
	}
	pub := k.Public().(ed25519.PublicKey)
	return &veilv1.ProviderKeyResponse{Provider: s.a.Name(), PublicKey: pub, KeyId: score.KeyID(pub)}, nil
}

// rawValue returns enterprise's raw value of a numeric field: the table
// holds standardised values, so it undoes the standardisation. A value that
// was missing (imputed) is reported as missing when the column has a
// missing indicator.
func (s *agentScore) rawValue(enterprise, field string) (v float64, missing bool, err error) {
	t := s.a.cfg.Table
	r, ok := s.rowIndex()[dataset.NormalizeID(enterprise)]
	if !ok {
		return 0, false, status.Errorf(codes.NotFound, "unknown enterprise at %s", s.a.Name())
	}
	if t.Transform == nil {
		return 0, false, status.Errorf(codes.FailedPrecondition, "%s: table has no transform", s.a.Name())
	}
	col := make(map[string]int, len(t.FeatureNames))
	for j, n := range t.FeatureNames {
		col[n] = j
	}
	for _, c := range t.Transform.Columns {
		if c.Name != field {
			continue
		}
		if c.Kind != dataset.KindNumeric || len(c.Features) == 0 {
			return 0, false, status.Errorf(codes.InvalidArgument, "field %s at %s is not numeric", field, s.a.Name())
		}
		if c.MissingIndicator && len(c.Features) == 2 {
			mi, ok := col[c.Features[1].Name]
			if ok {
				f := c.Features[1]
				if x := t.Columns[mi][r]*f.SD + f.Mean; f.SD > 0 && x > 0.5 || f.SD == 0 && f.Mean > 0.5 {
					return 0, true, nil
				}
			}
		}
		j, ok := col[c.Features[0].Name]
		if !ok {
			return 0, false, status.Errorf(codes.Internal, "field %s: feature column missing", field)
		}
		f := c.Features[0]
		if f.SD == 0 {
			return f.Mean, false, nil
		}
		return t.Columns[j][r]*f.SD + f.Mean, false, nil
	}
	return 0, false, status.Errorf(codes.NotFound, "field %q is not in %s's data", field, s.a.Name())
}

func (s *agentScore) authorizeField(ctx context.Context, kind, bank, requestID, enterprise, field, grantToken string) (*grant.Grant, error) {
	if bank == "" || enterprise == "" || field == "" {
		return nil, status.Errorf(codes.InvalidArgument, "%s: bank, enterprise and field are required", kind)
	}
	return s.a.Authorize(ctx, grantToken, grant.Request{Audience: bank, Subject: enterprise,
		Scopes: []string{kind + ":" + s.a.Name() + "." + field}, JobID: requestID})
}

// Verify answers "enterprise's field op value" with a signed yes/no.
func (s *agentScore) Verify(ctx context.Context, req *veilv1.AgentVerifyRequest) (*veilv1.VerifyResponse, error) {
	r := req.GetRequest()
	if r == nil {
		return nil, status.Error(codes.InvalidArgument, "verify: empty request")
	}
	op, err := score.ParseOp(r.GetOp())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	g, err := s.authorizeField(ctx, "verify", req.GetBank(), req.GetRequestId(), r.GetEnterprise(), r.GetField(), r.GetGrant())
	if err != nil {
		return nil, err
	}
	v, missing, err := s.rawValue(r.GetEnterprise(), r.GetField())
	if err != nil {
		return nil, err
	}
	if missing {
		return nil, status.Errorf(codes.NotFound, "%s has no value of %s for this enterprise", s.a.Name(), r.GetField())
	}
	ans, err := op.Compare(v, r.GetValue())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	key, err := s.signingKey()
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "verify: %v", err)
	}
	gid := g.ID
	res, err := score.SignVerify(key, score.VerifyStatement{Provider: s.a.Name(), Enterprise: dataset.NormalizeID(r.GetEnterprise()), Field: r.GetField(),
		Op: op, Value: r.GetValue(), Answer: ans, Bank: req.GetBank(), GrantID: gid, Time: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "verify: %v", err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "verify: %v", err)
	}
	return &veilv1.VerifyResponse{ResultJson: b}, nil
}

// Query returns the raw value of a field, only under a query: scope.
func (s *agentScore) Query(ctx context.Context, req *veilv1.AgentQueryRequest) (*veilv1.QueryResponse, error) {
	r := req.GetRequest()
	if r == nil {
		return nil, status.Error(codes.InvalidArgument, "query: empty request")
	}
	if _, err := s.authorizeField(ctx, "query", req.GetBank(), req.GetRequestId(), r.GetEnterprise(), r.GetField(), r.GetGrant()); err != nil {
		return nil, err
	}
	v, missing, err := s.rawValue(r.GetEnterprise(), r.GetField())
	if err != nil {
		return nil, err
	}
	return &veilv1.QueryResponse{Provider: s.a.Name(), Field: r.GetField(), Enterprise: dataset.NormalizeID(r.GetEnterprise()), Value: v, Missing: missing}, nil
}

// ModelBias gives the platform the model's intercept (label holder only).
// The intercept is a model parameter, not data: the platform adds it in
// plaintext to every encrypted sum, so the label holder need not be online
// to serve the model.
func (s *agentScore) ModelBias(ctx context.Context, req *veilv1.ScoringKeyRequest) (*veilv1.AgentModelBiasResponse, error) {
	mp, err := s.a.ModelPart(req.GetModel(), int(req.GetVersion()))
	if err != nil {
		return nil, status.Errorf(codes.NotFound, "%v", err)
	}
	if !mp.Label {
		return nil, status.Errorf(codes.FailedPrecondition, "model %s v%d: %s is not its label holder", mp.Model, mp.Version, s.a.Name())
	}
	return &veilv1.AgentModelBiasResponse{Intercept: mp.Intercept}, nil
}
