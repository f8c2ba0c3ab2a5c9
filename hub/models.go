package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub/store"
	"veil/modeling/metrics"
	veilv1 "veil/proto/veil/v1"
)

// Model is a registered model: everything the platform knows about it. The
// weights are not here: each party keeps its own part (Agent.ModelPart).
type Model struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`

	LabelParty string `json:"label_party"`
	LabelName  string `json:"label_name"`
	// LabelIsFeatureParty is true when the label holder contributed
	// features: it is then a feature party of the model and must be online
	// whenever the model serves.
	LabelIsFeatureParty bool         `json:"label_is_feature_party"`
	Parties             []ModelParty `json:"parties"` // label holder first
	// FeatureParties hold the model's features: exactly the parties needed
	// (with the platform) to score with it.
	FeatureParties []string `json:"feature_parties"`

	Hyperparameters TrainHyperparameters `json:"hyperparameters"`
	ParamSet        string               `json:"param_set"`

	RowsAligned     int       `json:"rows_aligned"`
	TrainRows       int       `json:"train_rows"`
	TestRows        int       `json:"test_rows"`
	Iterations      int       `json:"iterations"`
	StoppedEarly    bool      `json:"stopped_early"`
	EpochLosses     []float64 `json:"epoch_losses"`
	TrainingSeconds float64   `json:"training_seconds"` // the whole job: alignment to registration
	Resumes         int       `json:"resumes"`          // times the job resumed from checkpoints

	AUC        float64            `json:"auc"` // on the test split
	KS         float64            `json:"ks"`
	Evaluation metrics.Evaluation `json:"evaluation"` // ROC points and score histogram (good vs bad)

	JobID      string `json:"job_id"`
	AlignJobID string `json:"align_job_id"`
}

// ModelParty is one party of a model: its feature names (never values) and
// a summary of its local preprocessing.
type ModelParty struct {
	Name          string   `json:"name"`
	Role          string   `json:"role"` // "label holder", "label holder and features", "provider"
	Features      []string `json:"features"`
	Preprocessing string   `json:"preprocessing,omitempty"`
}

// TrainHyperparameters are the job's settings, recorded with the model.
type TrainHyperparameters struct {
	Epochs       int     `json:"epochs"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	L2           float64 `json:"l2"`
	Decay        float64 `json:"decay"`
	Tol          float64 `json:"tol"`
	Patience     int     `json:"patience"`
	TestFraction float64 `json:"test_fraction"`
	Seed         uint64  `json:"seed"`
	PSIProtocol  string  `json:"psi_protocol"`
}

// Model returns the latest version of the named model.
func (p *Platform) Model(ctx context.Context, name string) (*Model, error) {
	return p.ModelVersion(ctx, name, 0)
}

// ModelVersion returns a version of the named model (0: the latest).
func (p *Platform) ModelVersion(ctx context.Context, name string, version int) (*Model, error) {
	row, err := p.models.Get(ctx, name, version)
	if err != nil {
		return nil, err
	}
	return decodeModel(row)
}

// Models returns the latest version of every model.
func (p *Platform) Models(ctx context.Context) ([]*Model, error) {
	rows, err := p.models.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Model, 0, len(rows))
	for _, r := range rows {
		m, err := decodeModel(r)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func decodeModel(r store.ModelRow) (*Model, error) {
	m := &Model{}
	if err := json.Unmarshal(r.Record, m); err != nil {
		return nil, fmt.Errorf("model %s v%d: corrupt record: %w", r.Name, r.Version, err)
	}
	return m, nil
}

func (p *Platform) registerModel(ctx context.Context, m *Model) error {
	rec, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("register model: %w", err)
	}
	return p.models.Register(ctx, store.ModelRow{Name: m.Name, Version: m.Version, JobID: m.JobID, AUC: m.AUC, KS: m.KS, Record: rec, CreatedAt: m.CreatedAt})
}

// ModelRecord converts a model to its wire form.
func ModelRecord(m *Model) (*veilv1.ModelRecord, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &veilv1.ModelRecord{Name: m.Name, Version: int64(m.Version), ModelJson: string(b)}, nil
}

// ModelFromRecord parses a ModelRecord (client side).
func ModelFromRecord(r *veilv1.ModelRecord) (*Model, error) {
	m := &Model{}
	if err := json.Unmarshal([]byte(r.GetModelJson()), m); err != nil {
		return nil, fmt.Errorf("model %s v%d: bad record: %w", r.GetName(), r.GetVersion(), err)
	}
	return m, nil
}

func (s *platformTraining) ListModels(ctx context.Context, _ *veilv1.ListModelsRequest) (*veilv1.ListModelsResponse, error) {
	ms, err := s.p.Models(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	out := &veilv1.ListModelsResponse{}
	for _, m := range ms {
		r, err := ModelRecord(m)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		out.Models = append(out.Models, r)
	}
	return out, nil
}

func (s *platformTraining) GetModel(ctx context.Context, req *veilv1.GetModelRequest) (*veilv1.ModelRecord, error) {
	if req.GetName() == "" || req.GetVersion() < 0 {
		return nil, status.Error(codes.InvalidArgument, "get model: give a name (and a version ≥ 1, or 0 for the latest)")
	}
	m, err := s.p.ModelVersion(ctx, req.GetName(), int(req.GetVersion()))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "%v", err)
		}
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	r, err := ModelRecord(m)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return r, nil
}
