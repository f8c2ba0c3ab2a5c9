package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"veil/hub/pki"
	"veil/hub/store"
	veilv1 "veil/proto/veil/v1"
)

// Version is the Veil release, reported by health checks.
const Version = "0.1.0"

// PlatformConfig configures a platform server.
type PlatformConfig struct {
	Identity *pki.Party   // the platform's certificate (role platform)
	DataDir  string       // holds platform.db unless DB is set
	DB       string       // optional: postgres://... or a SQLite path
	Log      *slog.Logger // required

	// Audit checkpoints: signed every CheckpointEvery entries (0: 1000) and
	// every CheckpointInterval when entries were added (0: 10s).
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
}

// Platform is the hub: it keeps the registry, dials the agents and relays
// between them. It never holds a key that decrypts anything on its own.
type Platform struct {
	veilv1.UnimplementedRegistryServer

	cfg      PlatformConfig
	db       *store.DB
	registry store.Registry
	log      *slog.Logger
	Metrics  *Metrics
	guard    *Guard
	grpc     *grpc.Server

	jobs  *store.Jobs
	authz *platformAuthz // grants and the audit log (authz_platform.go)

	models *store.Models // model registry (models.go)
	// OnModelRegistered, when set, is called after a model is registered
	// (scoring sets up its key among the model's feature parties here).
	OnModelRegistered func(ctx context.Context, m *Model) error
	train             trainSettings  // train_platform.go
	score             *platformScore // score_platform.go

	// OnJob, when set, is told when every job starts (before any party
	// receives anything) and when it finishes; the audit log hooks in here.
	// A job whose start cannot be recorded does not run.
	OnJob func(ctx context.Context, kind, jobID string, parties []string, phase string, result any) error

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// platformPolicy says which roles may call which platform methods.
func platformPolicy() Policy {
	op := []pki.Role{pki.RolePlatform}
	return Policy{
		veilv1.Registry_AddParty_FullMethodName:     op,
		veilv1.Registry_ListParties_FullMethodName:  op,
		veilv1.Registry_RemoveParty_FullMethodName:  op,
		veilv1.Registry_PartySummary_FullMethodName: op,
		veilv1.PSI_Align_FullMethodName:             op,
		veilv1.PSI_GetJob_FullMethodName:            {pki.RolePlatform, pki.RoleAuditor},
		veilv1.PSI_CheckList_FullMethodName:         {pki.RoleBank},

		veilv1.Authz_RegisterEnterprise_FullMethodName: op,
		veilv1.Authz_ListEnterprises_FullMethodName:    {pki.RolePlatform, pki.RoleAuditor},
		veilv1.Authz_RevokeGrant_FullMethodName:        {PublicEnterprise},
		veilv1.Authz_AuditMine_FullMethodName:          {PublicEnterprise},
		veilv1.Authz_AuditLogKey_FullMethodName:        {PublicEnterprise},
		veilv1.Authz_CheckGrant_FullMethodName:         {pki.RoleBank},
		veilv1.Authz_AuditCheckpoints_FullMethodName:   {pki.RolePlatform, pki.RoleAuditor},
		veilv1.Authz_AuditEntries_FullMethodName:       {pki.RolePlatform, pki.RoleAuditor},
		veilv1.Authz_AuditQuery_FullMethodName:         {pki.RolePlatform, pki.RoleAuditor, pki.RoleProvider},
		veilv1.Authz_SignCheckpoint_FullMethodName:     {pki.RolePlatform, pki.RoleAuditor},

		veilv1.Training_Train_FullMethodName:      op,
		veilv1.Training_ListModels_FullMethodName: {pki.RolePlatform, pki.RoleAuditor, pki.RoleBank},
		veilv1.Training_GetModel_FullMethodName:   {pki.RolePlatform, pki.RoleAuditor, pki.RoleBank},

		veilv1.Scoring_RegisterBankKey_FullMethodName: {pki.RoleBank},
		veilv1.Scoring_Score_FullMethodName:           {pki.RoleBank},
		veilv1.Scoring_Verify_FullMethodName:          {pki.RoleBank},
		veilv1.Scoring_Query_FullMethodName:           {pki.RoleBank},
		veilv1.Scoring_ProviderKey_FullMethodName:     {pki.RoleBank, pki.RoleAuditor, pki.RolePlatform},
		veilv1.Scoring_SetupKey_FullMethodName:        op,
	}
}

// NewPlatform opens the platform's database (running migrations) and builds
// its gRPC server.
func NewPlatform(ctx context.Context, cfg PlatformConfig) (*Platform, error) {
	if cfg.Identity == nil {
		return nil, errors.New("platform: no identity (use --tls-dir with a platform certificate)")
	}
	if cfg.Identity.Identity.Role != pki.RolePlatform {
		return nil, fmt.Errorf("platform: certificate of %q has role %q, need role platform", cfg.Identity.Identity.Name, cfg.Identity.Identity.Role)
	}
	dsn := cfg.DB
	if dsn == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("platform: set --data-dir (embedded SQLite) or --db")
		}
		dsn = filepath.Join(cfg.DataDir, "platform.db")
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	reg, err := store.NewRegistry(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("platform: %w", err)
	}
	jobs, err := store.NewJobs(ctx, db)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("platform: %w", err)
	}
	p := &Platform{
		cfg: cfg, db: db, registry: reg, jobs: jobs, log: cfg.Log,
		Metrics: NewMetrics("platform", cfg.Identity.Identity.Name),
		conns:   map[string]*grpc.ClientConn{},
	}
	p.guard = NewGuard(cfg.Identity.CAPool, platformPolicy(), cfg.Log, p.Metrics)
	p.grpc = NewGRPCServer(cfg.Identity, p.guard)
	veilv1.RegisterRegistryServer(p.grpc, p)
	veilv1.RegisterPSIServer(p.grpc, &platformPSI{p: p})
	if p.authz, err = newPlatformAuthz(ctx, p); err != nil {
		db.Close()
		return nil, err
	}
	veilv1.RegisterAuthzServer(p.grpc, p.authz)
	p.OnJob = p.authz.onJob
	p.score = newPlatformScore(p)
	veilv1.RegisterScoringServer(p.grpc, p.score)
	p.OnModelRegistered = p.score.onModelRegistered
	if err := p.initTraining(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("platform: %w", err)
	}
	return p, nil
}

// DB is the platform database, for the components that keep state in it.
func (p *Platform) DB() *store.DB { return p.db }

// Serve serves on lis until ctx ends, then shuts down gracefully and closes
// the database.
func (p *Platform) Serve(ctx context.Context, lis net.Listener) error {
	p.log.Info("platform serving", "address", lis.Addr().String(), "db", p.db.Dialect.String())
	stopCheckpoints := p.authz.start(ctx)
	err := Serve(ctx, p.grpc, lis, 10*time.Second, p.log)
	stopCheckpoints()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = map[string]*grpc.ClientConn{}
	p.mu.Unlock()
	if cerr := p.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close database: %w", cerr)
	}
	return err
}

// AgentConn returns a connection to the registered agent name, pinned to
// the name and role recorded in the registry.
func (p *Platform) AgentConn(ctx context.Context, name string) (*grpc.ClientConn, store.Party, error) {
	party, err := p.registry.GetParty(ctx, name)
	if err != nil {
		return nil, store.Party{}, status.Errorf(codes.NotFound, "party %q is not registered (add it with `veil party add`)", name)
	}
	if party.Address == "" {
		return nil, party, status.Errorf(codes.FailedPrecondition, "party %q has no agent address", name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[name]; ok && c.Target() == party.Address {
		return c, party, nil
	}
	c, err := Dial(p.cfg.Identity, party.Address, &pki.Identity{Name: party.Name, Role: pki.Role(party.Role)})
	if err != nil {
		return nil, party, status.Errorf(codes.Unavailable, "party %q: %v", name, err)
	}
	if old, ok := p.conns[name]; ok {
		old.Close()
	}
	p.conns[name] = c
	return c, party, nil
}

// dropAgentConn closes the cached connection to an agent so the next call
// dials it afresh (its old connection may sit in a long reconnect backoff).
func (p *Platform) dropAgentConn(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[name]; ok {
		c.Close()
		delete(p.conns, name)
	}
}

// AddParty registers a party. When an address is given the platform dials
// the agent, checks that its certificate carries the claimed name and role,
// and records the certificate's fingerprint.
func (p *Platform) AddParty(ctx context.Context, req *veilv1.AddPartyRequest) (*veilv1.AddPartyResponse, error) {
	if err := pki.ValidName(req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	role, err := pki.ParseRole(req.GetRole())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	party := store.Party{Name: req.GetName(), Role: string(role), Address: req.GetAddress(), AddedAt: time.Now().UTC()}
	var health *veilv1.HealthResponse
	if req.GetAddress() != "" {
		if _, _, err := net.SplitHostPort(req.GetAddress()); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "address %q: want host:port: %v", req.GetAddress(), err)
		}
		conn, err := Dial(p.cfg.Identity, req.GetAddress(), &pki.Identity{Name: party.Name, Role: role})
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "%v", err)
		}
		defer conn.Close()
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var pr peer.Peer
		health, err = veilv1.NewAgentClient(conn).Health(hctx, &veilv1.HealthRequest{}, grpc.Peer(&pr))
		if err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "platform could not verify agent %q at %s: %v", party.Name, req.GetAddress(), status.Convert(err).Message())
		}
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			party.CertSHA = pki.Fingerprint(ti.State.PeerCertificates[0])
		}
	}
	if err := p.registry.PutParty(ctx, party); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	caller, _ := CallerFrom(ctx)
	p.log.Info("party registered", "party", party.Name, "role", party.Role, "address", party.Address, "by", caller.Name)
	p.dropAgentConn(party.Name)
	_ = p.authz.syncAgent(ctx, party) // logged; the agent refuses grants until synced
	return &veilv1.AddPartyResponse{Party: partyProto(party), Health: health}, nil
}

// ListParties lists the registry.
func (p *Platform) ListParties(ctx context.Context, _ *veilv1.ListPartiesRequest) (*veilv1.ListPartiesResponse, error) {
	ps, err := p.registry.ListParties(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	out := &veilv1.ListPartiesResponse{}
	for _, party := range ps {
		out.Parties = append(out.Parties, partyProto(party))
	}
	return out, nil
}

// RemoveParty deletes a party from the registry.
func (p *Platform) RemoveParty(ctx context.Context, req *veilv1.RemovePartyRequest) (*veilv1.RemovePartyResponse, error) {
	if err := p.registry.DeleteParty(ctx, req.GetName()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "party %q is not registered", req.GetName())
		}
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	p.dropAgentConn(req.GetName())
	return &veilv1.RemovePartyResponse{}, nil
}

// PartySummary relays an agent's dataset summary.
func (p *Platform) PartySummary(ctx context.Context, req *veilv1.PartySummaryRequest) (*veilv1.DatasetSummary, error) {
	conn, _, err := p.AgentConn(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	s, err := veilv1.NewAgentClient(conn).Summary(ctx, &veilv1.SummaryRequest{})
	if err != nil {
		return nil, status.Errorf(status.Code(err), "agent %q: %s", req.GetName(), status.Convert(err).Message())
	}
	return s, nil
}

func partyProto(p store.Party) *veilv1.Party {
	return &veilv1.Party{Name: p.Name, Role: p.Role, Address: p.Address, CertSha256: p.CertSHA, AddedUnix: p.AddedAt.Unix()}
}

// Job phases reported to OnJob.
const (
	JobStarted  = "started"
	JobFinished = "finished"
)

// jobEvent reports a job's phase to OnJob. A start that cannot be recorded
// is an error: the job must not run unaudited.
func (p *Platform) jobEvent(ctx context.Context, kind, jobID string, parties []string, phase string, result any) error {
	if p.OnJob == nil {
		return nil
	}
	if err := p.OnJob(ctx, kind, jobID, parties, phase, result); err != nil {
		return status.Errorf(codes.Unavailable, "%s %s: audit log: %v", kind, phase, err)
	}
	return nil
}
