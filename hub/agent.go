package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"

	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/mpc/psi"
	veilv1 "veil/proto/veil/v1"
)

// AgentConfig configures an agent: the process a data provider (or a bank
// contributing labels) runs beside its own database.
type AgentConfig struct {
	Identity *pki.Party     // the agent's certificate (role provider or bank)
	Table    *dataset.Table // the agent's preprocessed table; it never leaves this process
	DataDir  string         // local state: model parts, checkpoints, usage records
	Log      *slog.Logger
}

// Agent serves the platform's calls. Only the platform may call it; it
// answers with summaries, blinded PSI messages and ciphertexts, never with a
// raw value.
type Agent struct {
	veilv1.UnimplementedAgentServer

	cfg     AgentConfig
	log     *slog.Logger
	Metrics *Metrics
	grpc    *grpc.Server
	psi     *agentPSI
	authz   *agentAuthz // authz_agent.go
	train   *agentTrain // train_agent.go
	score   *agentScore // score_agent.go
	usageMu sync.Mutex
}

func agentPolicy() Policy {
	platform := []pki.Role{pki.RolePlatform}
	return Policy{
		veilv1.Agent_Health_FullMethodName:       platform,
		veilv1.Agent_Summary_FullMethodName:      platform,
		veilv1.AgentPSI_Align_FullMethodName:     platform,
		veilv1.AgentPSI_ListCheck_FullMethodName: platform,
		veilv1.AgentPSI_Lists_FullMethodName:     platform,

		veilv1.AgentAuthz_PutEnterprise_FullMethodName: platform,
		veilv1.AgentAuthz_Revoke_FullMethodName:        platform,
		veilv1.AgentAuthz_Sync_FullMethodName:          platform,

		veilv1.AgentTrain_Prepare_FullMethodName: platform,
		veilv1.AgentTrain_Step_FullMethodName:    platform,
		veilv1.AgentTrain_Finish_FullMethodName:  platform,

		veilv1.AgentScoring_KeySetup_FullMethodName:   platform,
		veilv1.AgentScoring_ModelBias_FullMethodName:  platform,
		veilv1.AgentScoring_Prepare_FullMethodName:    platform,
		veilv1.AgentScoring_Encrypt_FullMethodName:    platform,
		veilv1.AgentScoring_Switch_FullMethodName:     platform,
		veilv1.AgentScoring_Verify_FullMethodName:     platform,
		veilv1.AgentScoring_Query_FullMethodName:      platform,
		veilv1.AgentScoring_SigningKey_FullMethodName: platform,
	}
}

// NewAgent builds an agent server.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.Identity == nil {
		return nil, errors.New("agent: no identity (use --tls-dir with a provider or bank certificate)")
	}
	switch cfg.Identity.Identity.Role {
	case pki.RoleProvider, pki.RoleBank:
	default:
		return nil, fmt.Errorf("agent: certificate of %q has role %q; an agent needs role provider or bank", cfg.Identity.Identity.Name, cfg.Identity.Identity.Role)
	}
	if cfg.Table == nil {
		return nil, errors.New("agent: no dataset loaded")
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("agent: data dir: %w", err)
		}
	}
	a := &Agent{cfg: cfg, log: cfg.Log, Metrics: NewMetrics("agent", cfg.Identity.Identity.Name)}
	listKey, err := psi.GenerateListKey()
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	lists, err := psi.NewListServer(listKey, 0)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.psi = &agentPSI{a: a, alignments: map[string]*psi.Alignment{}, lists: lists, listSrc: map[string]ListSource{}}
	g := NewGuard(cfg.Identity.CAPool, agentPolicy(), cfg.Log, a.Metrics)
	a.grpc = NewGRPCServer(cfg.Identity, g)
	veilv1.RegisterAgentServer(a.grpc, a)
	veilv1.RegisterAgentPSIServer(a.grpc, a.psi)
	if a.authz, err = newAgentAuthz(context.Background(), a); err != nil {
		return nil, err
	}
	veilv1.RegisterAgentAuthzServer(a.grpc, a.authz)
	a.train = &agentTrain{a: a, jobs: map[string]*trainJob{}}
	veilv1.RegisterAgentTrainServer(a.grpc, a.train)
	a.score = newAgentScore(a)
	veilv1.RegisterAgentScoringServer(a.grpc, a.score)
	return a, nil
}

// Name is the agent's party name.
func (a *Agent) Name() string { return a.cfg.Identity.Identity.Name }

// Serve serves on lis until ctx ends, then shuts down gracefully.
func (a *Agent) Serve(ctx context.Context, lis net.Listener) error {
	a.log.Info("agent serving", "party", a.Name(), "address", lis.Addr().String(), "rows", a.cfg.Table.Rows())
	defer a.authz.close()
	return Serve(ctx, a.grpc, lis, 10*time.Second, a.log)
}

// Health reports who the agent is.
func (a *Agent) Health(ctx context.Context, _ *veilv1.HealthRequest) (*veilv1.HealthResponse, error) {
	return &veilv1.HealthResponse{
		Name: a.Name(), Role: string(a.cfg.Identity.Identity.Role), Version: Version, Rows: int64(a.cfg.Table.Rows()),
	}, nil
}

// Summary describes the agent's table: row count and feature names only.
func (a *Agent) Summary(ctx context.Context, _ *veilv1.SummaryRequest) (*veilv1.DatasetSummary, error) {
	t := a.cfg.Table
	return &veilv1.DatasetSummary{
		Party: a.Name(), Rows: int64(t.Rows()), IdColumn: t.IDColumn,
		Features: append([]string(nil), t.FeatureNames...), HasLabel: t.Labels != nil, LabelName: t.LabelName,
		WarningCount: int64(len(t.Warnings)),
	}, nil
}
