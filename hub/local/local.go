package local

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

	"veil/hub"
	"veil/hub/pki"
	"veil/modeling/dataset"
	veilv1 "veil/proto/veil/v1"
)

// AgentSpec describes one agent to start.
type AgentSpec struct {
	Name  string
	Role  pki.Role // provider or bank
	Table *dataset.Table
	// Configure, when set, is called on the agent before it serves (to add
	// named lists, say).
	Configure func(*hub.Agent) error
}

// Deployment is a running platform with its agents.
type Deployment struct {
	Dir          string
	CADir        string
	Platform     *hub.Platform
	PlatformAddr string
	Operator     *pki.Party       // the platform identity, used by the operator's client
	Conn         *grpc.ClientConn // operator -> platform
	Agents       map[string]*hub.Agent
	AgentAddrs   map[string]string
	Log          *slog.Logger

	cancel context.CancelFunc
	sctx   context.Context
	agents map[string]*agentProc // for StopAgent / StartAgent
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

// Start creates a CA in dir, starts a platform and the agents, and registers
// every agent with the platform. Call Stop to shut everything down.
func Start(ctx context.Context, dir string, log *slog.Logger, agents ...AgentSpec) (_ *Deployment, err error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &Deployment{Dir: dir, Agents: map[string]*hub.Agent{}, AgentAddrs: map[string]string{}, Log: log, cancel: cancel,
		sctx: sctx, agents: map[string]*agentProc{}}
	defer func() {
		if err != nil {
			d.Stop()
		}
	}()
	d.CADir = filepath.Join(dir, "ca")
	if err := pki.InitCA(d.CADir, 24*time.Hour); err != nil {
		return nil, err
	}
	if d.Operator, err = d.Issue("platform", pki.RolePlatform); err != nil {
		return nil, err
	}
	p, err := hub.NewPlatform(sctx, hub.PlatformConfig{Identity: d.Operator, DataDir: filepath.Join(dir, "platform-data"), Log: log.With("party", "platform")})
	if err != nil {
		return nil, err
	}
	d.Platform = p
	if d.PlatformAddr, _, err = d.serve(sctx, "platform", "127.0.0.1:0", p.Serve); err != nil {
		p.DB().Close()
		return nil, err
	}
	if d.Conn, err = hub.Dial(d.Operator, d.PlatformAddr, &pki.Identity{Role: pki.RolePlatform}); err != nil {
		return nil, err
	}
	reg := veilv1.NewRegistryClient(d.Conn)
	for _, spec := range agents {
		id, err := d.Issue(spec.Name, spec.Role)
		if err != nil {
			return nil, err
		}
		if err := d.startAgent(spec, id, "127.0.0.1:0"); err != nil {
			return nil, err
		}
		if _, err := reg.AddParty(ctx, &veilv1.AddPartyRequest{Name: spec.Name, Role: string(spec.Role), Address: d.AgentAddrs[spec.Name]}); err != nil {
			return nil, fmt.Errorf("register %s: %w", spec.Name, err)
		}
	}
	return d, nil
}

// Issue issues a certificate from the deployment's CA and loads it.
func (d *Deployment) Issue(name string, role pki.Role) (*pki.Party, error) {
	dir := d.TLSDir(name)
	if err := pki.Issue(d.CADir, dir, pki.IssueRequest{Name: name, Role: role, Validity: 24 * time.Hour}); err != nil {
		return nil, err
	}
	return pki.Load(dir)
}

// TLSDir is where Issue put the named party's certificate.
func (d *Deployment) TLSDir(name string) string { return filepath.Join(d.Dir, name, "tls") }

// serve listens on addr and serves there until ctx ends, recording a
// failure for Stop. It returns the bound address and a channel closed
// when serve has returned.
func (d *Deployment) serve(ctx context.Context, name, addr string, serve func(context.Context, net.Listener) error) (string, <-chan struct{}, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("%s: listen: %w", name, err)
	}
	done := make(chan struct{})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(done)
		if err := serve(ctx, lis); err != nil {
			d.mu.Lock()
			d.errs = append(d.errs, fmt.Errorf("%s: %w", name, err))
			d.mu.Unlock()
		}
	}()
	return lis.Addr().String(), done, nil
}

// Client dials the platform as the given identity.
func (d *Deployment) Client(id *pki.Party) (*grpc.ClientConn, error) {
	return hub.Dial(id, d.PlatformAddr, &pki.Identity{Role: pki.RolePlatform})
}

// Stop shuts the deployment down, waits for every server and reports any
// server that failed.
func (d *Deployment) Stop() error {
	if d.Conn != nil {
		d.Conn.Close()
		d.Conn = nil
	}
	d.cancel()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	return errors.Join(d.errs...)
}

// agentProc is one running agent "process" of the deployment.
type agentProc struct {
	spec   AgentSpec
	id     *pki.Party
	cancel context.CancelFunc
	done   <-chan struct{}
}

// startAgent builds an agent for spec and serves it on addr.
func (d *Deployment) startAgent(spec AgentSpec, id *pki.Party, addr string) error {
	a, err := hub.NewAgent(hub.AgentConfig{Identity: id, Table: spec.Table, DataDir: filepath.Join(d.Dir, spec.Name, "state"), Log: d.Log.With("party", spec.Name)})
	if err != nil {
		return err
	}
	if spec.Configure != nil {
		if err := spec.Configure(a); err != nil {
			return fmt.Errorf("configure %s: %w", spec.Name, err)
		}
	}
	ctx, cancel := context.WithCancel(d.sctx)
	bound, done, err := d.serve(ctx, spec.Name, addr, a.Serve)
	if err != nil {
		cancel()
		return err
	}
	d.mu.Lock()
	d.Agents[spec.Name] = a
	d.AgentAddrs[spec.Name] = bound
	d.agents[spec.Name] = &agentProc{spec: spec, id: id, cancel: cancel, done: done}
	d.mu.Unlock()
	return nil
}

// StopAgent stops one agent's server, as if its process had died, and
// waits until it no longer serves. Its data directory is kept.
func (d *Deployment) StopAgent(name string) error {
	d.mu.Lock()
	proc, ok := d.agents[name]
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("no agent %q", name)
	}
	proc.cancel()
	<-proc.done
	return nil
}

// StartAgent starts a new agent for a stopped one: the same identity,
// table and data directory, on the same address (as a restarted process).
func (d *Deployment) StartAgent(name string) error {
	d.mu.Lock()
	proc, ok := d.agents[name]
	addr := d.AgentAddrs[name]
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("no agent %q", name)
	}
	select {
	case <-proc.done:
	default:
		return fmt.Errorf("agent %q is still running", name)
	}
	return d.startAgent(proc.spec, proc.id, addr)
}
