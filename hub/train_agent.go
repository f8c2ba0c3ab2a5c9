package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/internal/fileutil"
	"veil/modeling/dataset"
	"veil/modeling/lr"
	"veil/modeling/metrics"
	veilv1 "veil/proto/veil/v1"
)

// agentTrain serves an agent's side of training: it holds its party's
// modeling/lr state machine for each job, feeds it the platform's
// messages, checkpoints it after every completed iteration and, at the
// end, saves the party's model part in its data directory.
type agentTrain struct {
	veilv1.UnimplementedAgentTrainServer
	a *Agent

	mu   sync.Mutex
	jobs map[string]*trainJob
}

// trainParty is what LabelParty and FeatureParty have in common.
type trainParty interface {
	Name() string
	Init([]byte) ([]byte, error)
	SetPublicKey([]byte) error
	ShareResidual(context.Context, []byte) ([]byte, error)
	Gradient(context.Context, []byte) ([]byte, error)
	DecryptShares(context.Context, []byte) ([]byte, error)
	Update([]byte) error
	Snapshot() ([]byte, error)
	Restore([]byte) error
	Iteration() int
	Weights() []float64
	Intercept() float64
	EvalShare(context.Context, []byte, [][]float64) ([]byte, error)
	EvalSwitchShares(context.Context, []byte) ([]byte, error)
}

type trainJob struct {
	mu        sync.Mutex
	req       *veilv1.TrainPrepareRequest
	party     trainParty
	label     *lr.LabelParty // set for the label holder
	testX     [][]float64
	testY     []float64
	features  []string
	trainRows int
	testRows  int
	transform *dataset.Transform
}

// SplitRows splits n aligned rows (in the order of the sorted common IDs)
// into sorted train and test row indices. The split is a function of n,
// testFraction and seed only, so every party of a job derives the same one.
func SplitRows(n int, testFraction float64, seed uint64) (train, test []int, err error) {
	if !(testFraction > 0 && testFraction < 1) {
		return nil, nil, fmt.Errorf("test fraction %g outside (0, 1)", testFraction)
	}
	nTest := int(math.Round(float64(n) * testFraction))
	if nTest < 1 || n-nTest < 2 {
		return nil, nil, fmt.Errorf("%d aligned rows are too few for a %.2f test split", n, testFraction)
	}
	perm := rand.New(rand.NewPCG(seed, 0x73706c6974)).Perm(n)
	test = append([]int(nil), perm[:nTest]...)
	train = append([]int(nil), perm[nTest:]...)
	slices.Sort(test)
	slices.Sort(train)
	return train, test, nil
}

// pick returns the columns restricted to rows.
func pick(cols [][]float64, rows []int) [][]float64 {
	out := make([][]float64, len(cols))
	for j, c := range cols {
		v := make([]float64, len(rows))
		for k, i := range rows {
			v[k] = c[i]
		}
		out[j] = v
	}
	return out
}

func (s *agentTrain) jobDir(jobID string) string {
	return filepath.Join(s.a.cfg.DataDir, "train", jobID)
}

// Prepare (re)builds the party for a job from the agent's table, the
// alignment and the split, and lists the checkpoints it can resume from.
func (s *agentTrain) Prepare(ctx context.Context, req *veilv1.TrainPrepareRequest) (*veilv1.TrainPrepareResponse, error) {
	if err := validJobID(req.GetJobId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := ValidModelName(req.GetModel()); err != nil || req.GetVersion() < 1 {
		return nil, status.Errorf(codes.InvalidArgument, "train: bad model name or version %q v%d", req.GetModel(), req.GetVersion())
	}
	ids, err := s.a.Alignment(req.GetAlignJobId())
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "train: %v", err)
	}
	t, err := s.a.cfg.Table.Select(ids)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "train: %v", err)
	}
	trainIdx, testIdx, err := SplitRows(len(ids), req.GetTestFraction(), req.GetSeed())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "train: %v", err)
	}
	job := &trainJob{req: req, trainRows: len(trainIdx), testRows: len(testIdx), transform: t.Transform}
	name := s.a.Name()
	if req.GetLabel() {
		if t.Labels == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "train: %s has no label column (start its agent with --label)", name)
		}
		var X [][]float64
		if !req.GetLabelOnly() {
			X, job.features = t.Columns, t.FeatureNames
		}
		y := pick([][]float64{t.Labels}, trainIdx)[0]
		lp, err := lr.NewLabelParty(&lr.LabelData{Name: name, Y: y, X: pick(X, trainIdx)})
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "train: %v", err)
		}
		job.party, job.label = lp, lp
		job.testX, job.testY = pick(X, testIdx), pick([][]float64{t.Labels}, testIdx)[0]
	} else {
		if len(t.Columns) == 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "train: %s has no feature columns", name)
		}
		fp, err := lr.NewFeatureParty(&lr.FeatureData{Name: name, X: pick(t.Columns, trainIdx)})
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "train: %v", err)
		}
		job.party, job.features, job.testX = fp, t.FeatureNames, pick(t.Columns, testIdx)
	}
	ckpts, err := s.checkpoints(req.GetJobId())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "train: %v", err)
	}
	s.mu.Lock()
	s.jobs[req.GetJobId()] = job
	s.mu.Unlock()
	return &veilv1.TrainPrepareResponse{
		TrainRows: int64(job.trainRows), TestRows: int64(job.testRows), Features: job.features,
		Checkpoints: ckpts, LabelName: t.LabelName, Preprocessing: preprocessingSummary(t.Transform, len(job.features)),
	}, nil
}

// preprocessingSummary describes the local preprocessing in words (no
// medians, means or categories: those are the party's own statistics).
func preprocessingSummary(tr *dataset.Transform, used int) string {
	if tr == nil {
		return ""
	}
	if used == 0 {
		return "labels only"
	}
	var num, cat, oneHot, ind, clipped int
	for _, c := range tr.Columns {
		switch c.Kind {
		case dataset.KindCategorical:
			cat++
			oneHot += len(c.Categories)
		default:
			num++
		}
		if c.MissingIndicator {
			ind++
		}
		if c.Clipped {
			clipped++
		}
	}
	parts := []string{fmt.Sprintf("%d numeric column(s) (median imputation", num)}
	if clipped > 0 {
		parts[0] += fmt.Sprintf(", %d clipped", clipped)
	}
	parts[0] += ")"
	if cat > 0 {
		parts = append(parts, fmt.Sprintf("%d categorical column(s) one-hot encoded into %d feature(s)", cat, oneHot))
	}
	if ind > 0 {
		parts = append(parts, fmt.Sprintf("%d missing-value indicator(s)", ind))
	}
	parts = append(parts, fmt.Sprintf("%d feature(s) standardised", used))
	return strings.Join(parts, "; ")
}

var ckptRE = regexp.MustCompile(`^ckpt-([0-9]{1,9})\.snap$`)

// checkpoints lists the iterations this agent can resume the job from
// (0, a fresh start, always).
func (s *agentTrain) checkpoints(jobID string) ([]int64, error) {
	out := []int64{0}
	if s.a.cfg.DataDir == "" {
		return out, nil
	}
	ents, err := os.ReadDir(s.jobDir(jobID))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	for _, e := range ents {
		if m := ckptRE.FindStringSubmatch(e.Name()); m != nil {
			n, _ := strconv.Atoi(m[1])
			if n > 0 {
				out = append(out, int64(n))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// saveFile writes data to path atomically with mode 0600 (a crash leaves
// the old file or the new one, never a torn one), creating the directory
// (mode 0700). Agents and the platform keep their state files with it.
func saveFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return fileutil.WriteAtomic(path, data, 0o600)
}

// checkpoint saves the party's snapshot after iteration it and removes all
// but the two latest: after a failure during an update some parties may be
// one iteration ahead, and the job resumes from the last iteration every
// party completed.
func (s *agentTrain) checkpoint(jobID string, job *trainJob) error {
	if s.a.cfg.DataDir == "" {
		return nil
	}
	snap, err := job.party.Snapshot()
	if err != nil {
		return err
	}
	it := job.party.Iteration()
	dir := s.jobDir(jobID)
	if err := saveFile(filepath.Join(dir, fmt.Sprintf("ckpt-%d.snap", it)), snap); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	ckpts, err := s.checkpoints(jobID)
	if err != nil {
		return err
	}
	for _, c := range ckpts {
		if c > 0 && c < int64(it)-1 {
			os.Remove(filepath.Join(dir, fmt.Sprintf("ckpt-%d.snap", c)))
		}
	}
	return nil
}

func (s *agentTrain) job(jobID string) (*trainJob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	job, ok := s.jobs[jobID]
	if !ok {
		// NotFound tells the platform to prepare the job again (this agent
		// restarted, or never saw it).
		return nil, status.Errorf(codes.NotFound, "train: no job %q at %s (restarted? prepare it again)", jobID, s.a.Name())
	}
	return job, nil
}

// Step feeds one protocol message to the party.
func (s *agentTrain) Step(ctx context.Context, req *veilv1.TrainStepRequest) (*veilv1.TrainStepResponse, error) {
	job, err := s.job(req.GetJobId())
	if err != nil {
		return nil, err
	}
	job.mu.Lock()
	defer job.mu.Unlock()
	out, evalJSON, err := s.step(ctx, req, job)
	if err != nil {
		if status.Code(err) != codes.Unknown {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, status.Errorf(codes.Canceled, "train: %s: %v", req.GetStep(), err)
		}
		// A message the state machine refuses (malformed, wrong parameters,
		// out of order) is the caller's error.
		return nil, status.Errorf(codes.InvalidArgument, "train: %s at %s: %v", req.GetStep(), s.a.Name(), err)
	}
	return &veilv1.TrainStepResponse{Payload: out, EvaluationJson: evalJSON}, nil
}

func (s *agentTrain) step(ctx context.Context, req *veilv1.TrainStepRequest, job *trainJob) ([]byte, string, error) {
	p, in := job.party, req.GetPayload()
	switch req.GetStep() {
	case "restore":
		it := req.GetIteration()
		if it == 0 {
			return nil, "", nil
		}
		if it < 0 || s.a.cfg.DataDir == "" {
			return nil, "", status.Errorf(codes.InvalidArgument, "train: no checkpoint for iteration %d", it)
		}
		snap, err := os.ReadFile(filepath.Join(s.jobDir(req.GetJobId()), fmt.Sprintf("ckpt-%d.snap", it)))
		if err != nil {
			return nil, "", status.Errorf(codes.FailedPrecondition, "train: checkpoint %d: %v", it, err)
		}
		return nil, "", p.Restore(snap)
	case "init":
		out, err := p.Init(in)
		return out, "", err
	case "public_key":
		return nil, "", p.SetPublicKey(in)
	case "share_residual":
		out, err := p.ShareResidual(ctx, in)
		return out, "", err
	case "gradient":
		out, err := p.Gradient(ctx, in)
		return out, "", err
	case "decrypt_shares":
		out, err := p.DecryptShares(ctx, in)
		return out, "", err
	case "update":
		if err := p.Update(in); err != nil {
			return nil, "", err
		}
		if err := s.checkpoint(req.GetJobId(), job); err != nil {
			return nil, "", status.Errorf(codes.Internal, "train: %v", err)
		}
		return nil, "", nil
	case "eval_share":
		out, err := p.EvalShare(ctx, in, job.testX)
		return out, "", err
	case "eval_switch":
		out, err := p.EvalSwitchShares(ctx, in)
		return out, "", err
	case "eval_result":
		if job.label == nil {
			return nil, "", status.Error(codes.FailedPrecondition, "train: only the label holder opens the evaluation")
		}
		z, err := job.label.TestLogits(in)
		if err != nil {
			return nil, "", err
		}
		prob := make([]float64, len(z))
		for i, v := range z {
			prob[i] = 1 / (1 + math.Exp(-v))
		}
		ev, err := metrics.Evaluate(prob, job.testY, 101, 20)
		if err != nil {
			return nil, "", status.Errorf(codes.FailedPrecondition, "train: evaluate on the test split: %v", err)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, "", err
		}
		return nil, string(b), nil
	default:
		return nil, "", status.Errorf(codes.InvalidArgument, "train: unknown step %q", req.GetStep())
	}
}

// ModelPart is one party's part of a model, kept in its agent's data
// directory: its weights (and the intercept, for the label holder) and the
// preprocessing that turns a raw row into the model's features.
type ModelPart struct {
	Model     string             `json:"model"`
	Version   int                `json:"version"`
	Party     string             `json:"party"`
	Label     bool               `json:"label"` // the label holder
	Features  []string           `json:"features"`
	Weights   []float64          `json:"weights"`
	Intercept float64            `json:"intercept"`
	Transform *dataset.Transform `json:"transform"`
	JobID     string             `json:"job_id"`
	CreatedAt time.Time          `json:"created_at"`
}

var modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidModelName checks a model name (it names directories at the agents).
func ValidModelName(name string) error {
	if !modelNameRE.MatchString(name) {
		return fmt.Errorf("model name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func (a *Agent) modelDir(name string, version int) string {
	return filepath.Join(a.cfg.DataDir, "models", name, "v"+strconv.Itoa(version))
}

// ModelPart returns this party's part of a model version (0: the latest
// this agent holds).
func (a *Agent) ModelPart(name string, version int) (*ModelPart, error) {
	if err := ValidModelName(name); err != nil {
		return nil, err
	}
	if a.cfg.DataDir == "" {
		return nil, fmt.Errorf("model %s: agent has no data directory", name)
	}
	if version <= 0 {
		ents, err := os.ReadDir(filepath.Join(a.cfg.DataDir, "models", name))
		if err != nil {
			return nil, fmt.Errorf("model %s: no part at %s: %w", name, a.Name(), err)
		}
		for _, e := range ents {
			if v, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "v")); err == nil && strings.HasPrefix(e.Name(), "v") && v > version {
				version = v
			}
		}
		if version <= 0 {
			return nil, fmt.Errorf("model %s: no part at %s", name, a.Name())
		}
	}
	b, err := os.ReadFile(filepath.Join(a.modelDir(name, version), "part.json"))
	if err != nil {
		return nil, fmt.Errorf("model %s v%d: no part at %s: %w", name, version, a.Name(), err)
	}
	mp := &ModelPart{}
	if err := json.Unmarshal(b, mp); err != nil {
		return nil, fmt.Errorf("model %s v%d: corrupt part at %s: %w", name, version, a.Name(), err)
	}
	if len(mp.Weights) != len(mp.Features) {
		return nil, fmt.Errorf("model %s v%d: part at %s has %d weights for %d features", name, version, a.Name(), len(mp.Weights), len(mp.Features))
	}
	return mp, nil
}

// Finish saves the party's model part (or discards a failed job) and
// removes the job's checkpoints.
func (s *agentTrain) Finish(ctx context.Context, req *veilv1.TrainFinishRequest) (*veilv1.TrainFinishResponse, error) {
	if err := validJobID(req.GetJobId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	out := &veilv1.TrainFinishResponse{}
	if req.GetSave() {
		job, err := s.job(req.GetJobId())
		if err != nil {
			return nil, err
		}
		job.mu.Lock()
		mp := &ModelPart{
			Model: job.req.GetModel(), Version: int(job.req.GetVersion()), Party: s.a.Name(), Label: job.label != nil,
			Features: job.features, Weights: job.party.Weights(), Intercept: job.party.Intercept(),
			Transform: job.transform, JobID: req.GetJobId(), CreatedAt: time.Now().UTC(),
		}
		job.mu.Unlock()
		if s.a.cfg.DataDir == "" {
			return nil, status.Error(codes.FailedPrecondition, "train: agent has no data directory to keep its model part")
		}
		b, err := json.MarshalIndent(mp, "", "  ")
		if err != nil {
			return nil, status.Errorf(codes.Internal, "train: %v", err)
		}
		out.Path = filepath.Join(s.a.modelDir(mp.Model, mp.Version), "part.json")
		if err := saveFile(out.Path, b); err != nil {
			return nil, status.Errorf(codes.Internal, "train: save model part: %v", err)
		}
		s.a.recordUse(usageRecord{Kind: "train", Job: req.GetJobId(),
			Detail: fmt.Sprintf("model %s v%d: %d training and %d test rows, %d features", mp.Model, mp.Version, job.trainRows, job.testRows, len(mp.Features))})
		s.a.log.Info("model part saved", "model", mp.Model, "version", mp.Version, "path", out.Path)
	}
	s.mu.Lock()
	delete(s.jobs, req.GetJobId())
	s.mu.Unlock()
	if s.a.cfg.DataDir != "" {
		os.RemoveAll(s.jobDir(req.GetJobId()))
	}
	return out, nil
}
