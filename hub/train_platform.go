package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub/pki"
	"veil/hub/store"
	"veil/modeling/lr"
	"veil/modeling/metrics"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

// TrainSpec describes a training job. Zero Epochs, LearningRate,
// TestFraction and Patience take the DefaultTrainSpec values; L2, Decay and
// Tol are used as given (0 disables them).
type TrainSpec struct {
	Name         string   `json:"name"`
	LabelParty   string   `json:"label_party"`
	Parties      []string `json:"parties"`    // feature providers
	LabelOnly    bool     `json:"label_only"` // the label party contributes labels only
	Epochs       int      `json:"epochs"`
	BatchSize    int      `json:"batch_size"` // 0 = full batch
	LearningRate float64  `json:"learning_rate"`
	L2           float64  `json:"l2"`
	Decay        float64  `json:"decay"`
	Tol          float64  `json:"tol"`
	Patience     int      `json:"patience"`
	TestFraction float64  `json:"test_fraction"`
	Seed         uint64   `json:"seed"` // split and mini-batch schedule
	PSIProtocol  string   `json:"psi_protocol"`
	// AlignJob reuses a finished alignment of exactly these parties (label
	// party first) instead of running a new one.
	AlignJob string `json:"align_job,omitempty"`
}

// DefaultTrainSpec returns the default hyperparameters (lr.DefaultConfig,
// a 70/30 split, seed 7).
func DefaultTrainSpec() TrainSpec {
	c := lr.DefaultConfig()
	return TrainSpec{Epochs: c.Epochs, BatchSize: c.BatchSize, LearningRate: c.LearningRate, L2: c.L2, Decay: c.Decay,
		Tol: c.Tol, Patience: c.Patience, TestFraction: 0.3, Seed: c.Seed, PSIProtocol: "ecdh"}
}

func (s TrainSpec) withDefaults() TrainSpec {
	d := DefaultTrainSpec()
	if s.Epochs == 0 {
		s.Epochs = d.Epochs
	}
	if s.LearningRate == 0 {
		s.LearningRate = d.LearningRate
	}
	if s.TestFraction == 0 {
		s.TestFraction = d.TestFraction
	}
	if s.Patience == 0 {
		s.Patience = d.Patience
	}
	if s.PSIProtocol == "" {
		s.PSIProtocol = d.PSIProtocol
	}
	return s
}

// Config is the lr configuration of the spec.
func (s TrainSpec) Config() lr.Config {
	s = s.withDefaults()
	return lr.Config{Epochs: s.Epochs, BatchSize: s.BatchSize, LearningRate: s.LearningRate, Decay: s.Decay, L2: s.L2,
		Tol: s.Tol, Patience: s.Patience, Seed: s.Seed, FeaturesPerCiphertext: 2, ParamSet: he.TrainingSetName}
}

func (s TrainSpec) validate() error {
	if err := ValidModelName(s.Name); err != nil {
		return err
	}
	if s.LabelParty == "" || len(s.Parties) == 0 {
		return errors.New("give the label party and at least one feature party")
	}
	seen := map[string]bool{}
	for _, n := range append([]string{s.LabelParty}, s.Parties...) {
		if err := pki.ValidName(n); err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("party %q listed twice", n)
		}
		seen[n] = true
	}
	if !(s.TestFraction > 0 && s.TestFraction < 1) {
		return fmt.Errorf("test fraction %g outside (0, 1)", s.TestFraction)
	}
	// The lr package checks the rest of the hyperparameters.
	c := s.Config()
	if _, err := lr.NewCoordinator(c, []string{"a", "b"}, 1000); err != nil {
		return err
	}
	return nil
}

// Progress is one progress event of a training job.
type Progress struct {
	Phase      string        `json:"phase"` // align, keys, train, resume, evaluate, register
	Iteration  int           `json:"iteration"`
	Iterations int           `json:"iterations"`
	Loss       float64       `json:"loss"`
	Elapsed    time.Duration `json:"elapsed"`
	Message    string        `json:"message,omitempty"`
}

// trainSettings tune the platform's training driver.
type trainSettings struct {
	retryWindow time.Duration // how long to wait for unavailable agents
	callTimeout time.Duration // bound on one agent call
}

// SetTrainRetryWindow sets how long a training job waits for an agent that
// became unavailable before it fails (default 2 minutes).
func (p *Platform) SetTrainRetryWindow(d time.Duration) { p.train.retryWindow = d }

type platformTraining struct {
	veilv1.UnimplementedTrainingServer
	p *Platform
}

func (p *Platform) initTraining(ctx context.Context) error {
	models, err := store.NewModels(ctx, p.db)
	if err != nil {
		return err
	}
	p.models = models
	p.train = trainSettings{retryWindow: 2 * time.Minute, callTimeout: 10 * time.Minute}
	veilv1.RegisterTrainingServer(p.grpc, &platformTraining{p: p})
	return nil
}

// Train runs a whole training job: PSI alignment, train/test split, the
// collective key, training, evaluation on the test split, and registration.
// progress (optional) is called from the calling goroutine. If an agent
// becomes unavailable the job waits for it (up to the retry window), then
// resumes from the last iteration every party completed, with a fresh key.
func (p *Platform) Train(ctx context.Context, spec TrainSpec, progress func(Progress)) (*Model, error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "train: %v", err)
	}
	parties := append([]string{spec.LabelParty}, spec.Parties...)
	for _, n := range parties {
		if _, err := p.registry.GetParty(ctx, n); err != nil {
			return nil, status.Errorf(codes.NotFound, "train: party %q is not registered", n)
		}
	}
	if progress == nil {
		progress = func(Progress) {}
	}
	start := time.Now()
	jobID := NewJobID("train")
	if err := p.jobs.Create(ctx, store.Job{ID: jobID, Kind: "train", Parties: parties}); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if err := p.jobEvent(ctx, "train_job", jobID, parties, JobStarted, map[string]any{"model": spec.Name}); err != nil {
		p.jobs.Finish(context.WithoutCancel(ctx), jobID, nil, err)
		return nil, err
	}
	r := &trainRun{p: p, spec: spec, jobID: jobID, parties: parties, start: start, progress: progress,
		coordSnaps: map[int][]byte{}}
	m, err := r.run(ctx)
	bg := context.WithoutCancel(ctx)
	if err != nil {
		if r.version > 0 {
			if rerr := p.models.Release(bg, spec.Name, r.version); rerr != nil {
				p.log.Error("release model version", "error", rerr)
			}
		}
		if r.prepared {
			r.finishAll(bg, false)
		}
		if ferr := p.jobs.Finish(bg, jobID, nil, err); ferr != nil {
			p.log.Error("finish job", "job", jobID, "error", ferr)
		}
		p.log.Warn("training failed", "job", jobID, "model", spec.Name, "error", err)
		if _, ok := status.FromError(err); !ok {
			err = status.Errorf(codes.Aborted, "train: %v", err)
		}
		return nil, err
	}
	summary := map[string]any{"model": m.Name, "version": m.Version, "rows_aligned": m.RowsAligned, "auc": m.AUC, "ks": m.KS,
		"iterations": m.Iterations, "seconds": m.TrainingSeconds, "resumes": m.Resumes}
	if ferr := p.jobs.Finish(bg, jobID, summary, nil); ferr != nil {
		p.log.Error("finish job", "job", jobID, "error", ferr)
	}
	p.log.Info("model registered", "model", m.Name, "version", m.Version, "auc", m.AUC, "ks", m.KS, "job", jobID)
	if err := p.jobEvent(ctx, "train_job", jobID, parties, JobFinished, summary); err != nil {
		return nil, err
	}
	if p.OnModelRegistered != nil {
		if err := p.OnModelRegistered(ctx, m); err != nil {
			return m, status.Errorf(codes.Internal, "model %s v%d registered, but its post-registration setup failed: %v", m.Name, m.Version, err)
		}
	}
	return m, nil
}

// trainRun is one training job at the platform.
type trainRun struct {
	p        *Platform
	spec     TrainSpec
	jobID    string
	parties  []string // label holder first
	start    time.Time
	progress func(Progress)

	align    *AlignResult
	version  int
	prepared bool
	prep     map[string]*veilv1.TrainPrepareResponse
	iters    int // planned iterations

	coordSnaps map[int][]byte // coordinator snapshots after completed iterations
	done       int            // iterations completed (for the retry window)
	resumes    int
	coord      *lr.Coordinator
	eval       *metrics.Evaluation
}

func (r *trainRun) emit(ev Progress) {
	ev.Elapsed = time.Since(r.start)
	if ev.Iterations == 0 {
		ev.Iterations = r.iters
	}
	r.progress(ev)
}

func (r *trainRun) run(ctx context.Context) (*Model, error) {
	p := r.p
	var al *AlignResult
	var err error
	if r.spec.AlignJob != "" {
		r.emit(Progress{Phase: "align", Message: fmt.Sprintf("reusing alignment %s", r.spec.AlignJob)})
		al, err = p.alignmentOf(ctx, r.spec.AlignJob, r.parties)
	} else {
		r.emit(Progress{Phase: "align", Message: fmt.Sprintf("aligning %v with PSI", r.parties)})
		al, err = p.RunAlignment(ctx, r.parties, r.spec.PSIProtocol)
	}
	if err != nil {
		return nil, err
	}
	r.align = al
	if al.Intersection < 3 {
		return nil, status.Errorf(codes.FailedPrecondition, "train: only %d enterprises are common to all parties", al.Intersection)
	}
	if r.version, err = p.models.Reserve(ctx, r.spec.Name, r.jobID); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	failStart, failDone := time.Time{}, 0
	backoff := 250 * time.Millisecond
	for {
		err := r.round(ctx)
		if err == nil {
			break
		}
		if !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		if failStart.IsZero() || r.done > failDone {
			failStart, failDone = time.Now(), r.done
		}
		if time.Since(failStart) > p.train.retryWindow {
			return nil, status.Errorf(codes.Unavailable, "train: gave up after waiting %s for the parties: %v", p.train.retryWindow, status.Convert(err).Message())
		}
		r.emit(Progress{Phase: "resume", Iteration: r.done, Message: status.Convert(err).Message()})
		p.log.Warn("training interrupted; will resume", "job", r.jobID, "iteration", r.done, "error", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		for _, n := range r.parties {
			p.dropAgentConn(n)
		}
		r.resumes++
	}
	if err := r.finishWithRetry(ctx); err != nil {
		return nil, err
	}
	return r.register(ctx)
}

// retryable reports whether a failed round may succeed if repeated: an
// agent was unreachable or lost its job state (restarted).
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.NotFound, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return true
	}
	return false
}

func (r *trainRun) client(ctx context.Context, name string) (veilv1.AgentTrainClient, error) {
	conn, _, err := r.p.AgentConn(ctx, name)
	if err != nil {
		return nil, err
	}
	return veilv1.NewAgentTrainClient(conn), nil
}

func agentErr(name, what string, err error) error {
	st := status.Convert(err)
	return status.Errorf(st.Code(), "%s: %s: %s", name, what, st.Message())
}

// step sends one message to one party.
func (r *trainRun) step(ctx context.Context, name, step string, payload []byte, iteration int) (*veilv1.TrainStepResponse, error) {
	c, err := r.client(ctx, name)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, r.p.train.callTimeout)
	defer cancel()
	resp, err := c.Step(cctx, &veilv1.TrainStepRequest{JobId: r.jobID, Step: step, Payload: payload, Iteration: int64(iteration)})
	if err != nil {
		return nil, agentErr(name, step, err)
	}
	return resp, nil
}

// each sends a message to every party at once (payloads[i] to parties[i],
// or payload to all) and returns their replies in party order. The first
// failure cancels the other calls.
func (r *trainRun) each(ctx context.Context, step string, payload []byte, payloads map[string][]byte) ([][]byte, error) {
	out := make([][]byte, len(r.parties))
	g, gctx := errgroup.WithContext(ctx)
	for i, n := range r.parties {
		in := payload
		if payloads != nil {
			in = payloads[n]
		}
		g.Go(func() error {
			resp, err := r.step(gctx, n, step, in, 0)
			if err != nil {
				return err
			}
			out[i] = resp.GetPayload()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// prepareAll (re)builds every party's state and returns the iteration the
// job resumes from: the latest one every party and the coordinator have a
// checkpoint of.
func (r *trainRun) prepareAll(ctx context.Context) (int, error) {
	resps := make([]*veilv1.TrainPrepareResponse, len(r.parties))
	g, gctx := errgroup.WithContext(ctx)
	for i, n := range r.parties {
		g.Go(func() error {
			c, err := r.client(gctx, n)
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(gctx, r.p.train.callTimeout)
			defer cancel()
			resp, err := c.Prepare(cctx, &veilv1.TrainPrepareRequest{
				JobId: r.jobID, AlignJobId: r.align.JobID, Label: i == 0, LabelOnly: i == 0 && r.spec.LabelOnly,
				TestFraction: r.spec.TestFraction, Seed: r.spec.Seed, Model: r.spec.Name, Version: int64(r.version),
			})
			if err != nil {
				return agentErr(n, "prepare", err)
			}
			resps[i] = resp
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	r.prepared = true
	r.prep = map[string]*veilv1.TrainPrepareResponse{}
	for i, n := range r.parties {
		if resps[i].GetTrainRows() != resps[0].GetTrainRows() || resps[i].GetTestRows() != resps[0].GetTestRows() {
			return 0, status.Errorf(codes.FailedPrecondition, "train: parties disagree on the split (%s: %d/%d rows, %s: %d/%d)",
				r.parties[0], resps[0].GetTrainRows(), resps[0].GetTestRows(), n, resps[i].GetTrainRows(), resps[i].GetTestRows())
		}
		r.prep[n] = resps[i]
	}
	if r.iters == 0 {
		rows := int(resps[0].GetTrainRows())
		batches := 1
		if b := r.spec.BatchSize; b > 0 && b < rows {
			batches = (rows + b - 1) / b
		}
		r.iters = r.spec.Epochs * batches
	}
	resume := 0
	for it := range r.coordSnaps {
		if it <= resume {
			continue
		}
		ok := true
		for _, resp := range resps {
			ok = ok && slices.Contains(resp.GetCheckpoints(), int64(it))
		}
		if ok {
			resume = it
		}
	}
	return resume, nil
}

// round runs the job from the last common checkpoint to the evaluation.
// It drives the parties through exactly the calls of lr.TrainInProcessWith.
func (r *trainRun) round(ctx context.Context) error {
	resume, err := r.prepareAll(ctx)
	if err != nil {
		return err
	}
	cfg := r.spec.Config()
	coord, err := lr.NewCoordinator(cfg, r.parties, int(r.prep[r.parties[0]].GetTrainRows()))
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "train: %v", err)
	}
	if resume > 0 {
		if err := coord.Restore(r.coordSnaps[resume]); err != nil {
			return status.Errorf(codes.Internal, "train: %v", err)
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, n := range r.parties {
			g.Go(func() error {
				_, err := r.step(gctx, n, "restore", nil, resume)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		r.emit(Progress{Phase: "resume", Iteration: resume, Message: fmt.Sprintf("resuming from iteration %d with a fresh key", resume)})
	}
	r.coord = coord
	fail := func(err error) error { return status.Errorf(codes.Internal, "train: coordinator: %v", err) }

	r.emit(Progress{Phase: "keys", Iteration: resume, Message: "collective key generation"})
	setup, err := coord.Setup()
	if err != nil {
		return fail(err)
	}
	shares, err := r.each(ctx, "init", setup, nil)
	if err != nil {
		return err
	}
	for _, sh := range shares {
		if err := coord.AddKeyShare(sh); err != nil {
			return status.Errorf(codes.InvalidArgument, "train: %v", err)
		}
	}
	pk, err := coord.PublicKey()
	if err != nil {
		return fail(err)
	}
	if _, err := r.each(ctx, "public_key", pk, nil); err != nil {
		return err
	}
	bad := func(err error) error { return status.Errorf(codes.InvalidArgument, "train: %v", err) }
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, done, err := coord.NextIteration()
		if err != nil {
			return fail(err)
		}
		if done {
			break
		}
		out, err := r.each(ctx, "share_residual", it, nil)
		if err != nil {
			return err
		}
		for _, m := range out {
			if err := coord.AddResidualShare(m); err != nil {
				return bad(err)
			}
		}
		resid, err := coord.Residual()
		if err != nil {
			return fail(err)
		}
		if out, err = r.each(ctx, "gradient", resid, nil); err != nil {
			return err
		}
		for _, m := range out {
			if err := coord.AddGradient(m); err != nil {
				return bad(err)
			}
		}
		req, err := coord.DecryptRequest(ctx)
		if err != nil {
			return fail(err)
		}
		if out, err = r.each(ctx, "decrypt_shares", req, nil); err != nil {
			return err
		}
		for _, m := range out {
			if err := coord.AddDecryptShares(m); err != nil {
				return bad(err)
			}
		}
		results, err := coord.Results()
		if err != nil {
			return fail(err)
		}
		if _, err := r.each(ctx, "update", nil, results); err != nil {
			return err
		}
		snap, err := coord.Snapshot()
		if err != nil {
			return fail(err)
		}
		n := coord.Iteration()
		r.coordSnaps[n] = snap
		delete(r.coordSnaps, n-3)
		r.done++
		losses := coord.IterationLosses()
		r.emit(Progress{Phase: "train", Iteration: n, Loss: losses[len(losses)-1]})
	}

	// Evaluation on the test split (modeling/lr eval.go).
	r.emit(Progress{Phase: "evaluate", Iteration: coord.Iteration(), Message: "scoring the test split under encryption"})
	testRows := int(r.prep[r.parties[0]].GetTestRows())
	start, err := coord.EvalStart(testRows)
	if err != nil {
		return fail(err)
	}
	out, err := r.each(ctx, "eval_share", start, nil)
	if err != nil {
		return err
	}
	for _, m := range out {
		if err := coord.AddEvalShare(m); err != nil {
			return bad(err)
		}
	}
	sw, err := coord.EvalSwitch(ctx)
	if err != nil {
		return fail(err)
	}
	if out, err = r.each(ctx, "eval_switch", sw, nil); err != nil {
		return err
	}
	for _, m := range out {
		if err := coord.AddEvalSwitchShares(m); err != nil {
			return bad(err)
		}
	}
	res, err := coord.EvalResult()
	if err != nil {
		return fail(err)
	}
	resp, err := r.step(ctx, r.parties[0], "eval_result", res, 0)
	if err != nil {
		return err
	}
	ev := &metrics.Evaluation{}
	if err := json.Unmarshal([]byte(resp.GetEvaluationJson()), ev); err != nil {
		return status.Errorf(codes.Internal, "train: %s sent an unreadable evaluation: %v", r.parties[0], err)
	}
	r.eval = ev
	return nil
}

// finishAll tells every party to save its model part (save) or to discard
// the job; it returns the first error.
func (r *trainRun) finishAll(ctx context.Context, save bool) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range r.parties {
		g.Go(func() error {
			c, err := r.client(gctx, n)
			if err != nil {
				return err
			}
			cctx, cancel := context.WithTimeout(gctx, time.Minute)
			defer cancel()
			if _, err := c.Finish(cctx, &veilv1.TrainFinishRequest{JobId: r.jobID, Save: save}); err != nil {
				return agentErr(n, "finish", err)
			}
			return nil
		})
	}
	return g.Wait()
}

// finishWithRetry saves every party's part. An agent that restarted after
// the evaluation lost its in-memory job: then the whole round is repeated
// from its final checkpoint (training is over, so only the key setup and
// the evaluation run again).
func (r *trainRun) finishWithRetry(ctx context.Context) error {
	failStart := time.Now()
	for {
		err := r.finishAll(ctx, true)
		if err == nil {
			return nil
		}
		if !retryable(err) || time.Since(failStart) > r.p.train.retryWindow {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		for _, n := range r.parties {
			r.p.dropAgentConn(n)
		}
		if status.Code(err) == codes.NotFound {
			if err := r.round(ctx); err != nil && !retryable(err) {
				return err
			}
		}
	}
}

func (r *trainRun) register(ctx context.Context) (*Model, error) {
	r.emit(Progress{Phase: "register", Iteration: r.coord.Iteration()})
	label := r.prep[r.parties[0]]
	m := &Model{
		Name: r.spec.Name, Version: r.version, CreatedAt: time.Now().UTC(),
		LabelParty: r.parties[0], LabelName: label.GetLabelName(),
		LabelIsFeatureParty: len(label.GetFeatures()) > 0,
		Hyperparameters: TrainHyperparameters{Epochs: r.spec.Epochs, BatchSize: r.spec.BatchSize, LearningRate: r.spec.LearningRate,
			L2: r.spec.L2, Decay: r.spec.Decay, Tol: r.spec.Tol, Patience: r.spec.Patience, TestFraction: r.spec.TestFraction,
			Seed: r.spec.Seed, PSIProtocol: r.spec.PSIProtocol},
		ParamSet:    he.TrainingSetName,
		RowsAligned: int(r.align.Intersection), TrainRows: int(label.GetTrainRows()), TestRows: int(label.GetTestRows()),
		Iterations: r.coord.Iteration(), StoppedEarly: r.coord.StoppedEarly(), EpochLosses: r.coord.EpochLosses(),
		TrainingSeconds: time.Since(r.start).Seconds(), Resumes: r.resumes,
		AUC: r.eval.AUC, KS: r.eval.KS, Evaluation: *r.eval,
		JobID: r.jobID, AlignJobID: r.align.JobID,
	}
	for i, n := range r.parties {
		resp := r.prep[n]
		role := "provider"
		if i == 0 {
			role = "label holder"
			if m.LabelIsFeatureParty {
				role = "label holder and features"
			}
		}
		m.Parties = append(m.Parties, ModelParty{Name: n, Role: role, Features: resp.GetFeatures(), Preprocessing: resp.GetPreprocessing()})
		if len(resp.GetFeatures()) > 0 {
			m.FeatureParties = append(m.FeatureParties, n)
		}
	}
	if err := r.p.registerModel(ctx, m); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return m, nil
}

// Train is the operator's RPC: it streams progress, then the model.
func (s *platformTraining) Train(req *veilv1.TrainRequest, stream veilv1.Training_TrainServer) error {
	spec := TrainSpec{
		Name: req.GetName(), LabelParty: req.GetLabelParty(), Parties: req.GetParties(), LabelOnly: req.GetLabelOnly(),
		Epochs: int(req.GetEpochs()), BatchSize: int(req.GetBatchSize()), LearningRate: req.GetLearningRate(), L2: req.GetL2(),
		Decay: req.GetDecay(), Tol: req.GetTol(), Patience: int(req.GetPatience()), TestFraction: req.GetTestFraction(),
		Seed: req.GetSeed(), PSIProtocol: req.GetPsiProtocol(), AlignJob: req.GetAlignJobId(),
	}
	var sendErr error
	m, err := s.p.Train(stream.Context(), spec, func(pr Progress) {
		if sendErr != nil {
			return
		}
		sendErr = stream.Send(&veilv1.TrainEvent{Body: &veilv1.TrainEvent_Progress{Progress: &veilv1.TrainProgress{
			Phase: pr.Phase, Iteration: int64(pr.Iteration), Iterations: int64(pr.Iterations), Loss: pr.Loss,
			ElapsedSeconds: pr.Elapsed.Seconds(), Message: pr.Message,
		}}})
	})
	if m == nil {
		return err
	}
	rec, rerr := ModelRecord(m)
	if rerr != nil {
		return status.Errorf(codes.Internal, "%v", rerr)
	}
	if serr := stream.Send(&veilv1.TrainEvent{Body: &veilv1.TrainEvent_Model{Model: rec}}); serr != nil {
		return serr
	}
	return err
}
