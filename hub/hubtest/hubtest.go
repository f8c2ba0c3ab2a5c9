// Package hubtest starts real Veil deployments inside tests: a CA, a
// platform and agents, each a gRPC server with mutual TLS on 127.0.0.1,
// with the platform's state in a SQLite file in the test's temporary
// directory. Nothing is mocked.
package hubtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
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
}

// Deployment is a running platform with its agents.
type Deployment struct {
	Dir          string
	CADir        string
	Platform     *hub.Platform
	PlatformAddr string
	Operator     *pki.Party       // the platform identity, used as the operator's client identity
	Conn         *grpc.ClientConn // operator -> platform
	Agents       map[string]*hub.Agent
	AgentAddrs   map[string]string
	Log          *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Logger returns a logger that writes to the test log when -v is given.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Issue issues a certificate from the deployment's CA and loads it.
func (d *Deployment) Issue(t testing.TB, name string, role pki.Role) *pki.Party {
	t.Helper()
	dir := filepath.Join(d.Dir, "ids", name)
	if err := pki.Issue(d.CADir, dir, pki.IssueRequest{Name: name, Role: role, Validity: time.Hour}); err != nil {
		t.Fatal(err)
	}
	p, err := pki.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Start creates a CA, starts a platform and the agents, and registers every
// agent with the platform. Everything stops when the test ends.
func Start(t testing.TB, agents ...AgentSpec) *Deployment {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Deployment{
		Dir: t.TempDir(), Agents: map[string]*hub.Agent{}, AgentAddrs: map[string]string{},
		Log: Logger(t), cancel: cancel,
	}
	t.Cleanup(d.Stop)
	d.CADir = filepath.Join(d.Dir, "ca")
	if err := pki.InitCA(d.CADir, time.Hour); err != nil {
		t.Fatal(err)
	}
	d.Operator = d.Issue(t, "platform", pki.RolePlatform)
	p, err := hub.NewPlatform(ctx, hub.PlatformConfig{Identity: d.Operator, DataDir: filepath.Join(d.Dir, "platform-data"), Log: d.Log.With("party", "platform")})
	if err != nil {
		t.Fatal(err)
	}
	d.Platform = p
	d.PlatformAddr = d.serve(t, ctx, p.Serve)
	d.Conn, err = hub.Dial(d.Operator, d.PlatformAddr, &pki.Identity{Role: pki.RolePlatform})
	if err != nil {
		t.Fatal(err)
	}
	reg := veilv1.NewRegistryClient(d.Conn)
	for _, spec := range agents {
		id := d.Issue(t, spec.Name, spec.Role)
		a, err := hub.NewAgent(hub.AgentConfig{Identity: id, Table: spec.Table, DataDir: filepath.Join(d.Dir, spec.Name+"-state"), Log: d.Log.With("party", spec.Name)})
		if err != nil {
			t.Fatal(err)
		}
		d.Agents[spec.Name] = a
		d.AgentAddrs[spec.Name] = d.serve(t, ctx, a.Serve)
		if _, err := reg.AddParty(ctx, &veilv1.AddPartyRequest{Name: spec.Name, Role: string(spec.Role), Address: d.AgentAddrs[spec.Name]}); err != nil {
			t.Fatalf("register %s: %v", spec.Name, err)
		}
	}
	return d
}

func (d *Deployment) serve(t testing.TB, ctx context.Context, serve func(context.Context, net.Listener) error) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := serve(ctx, lis); err != nil {
			d.Log.Error("server stopped", "error", err)
		}
	}()
	return lis.Addr().String()
}

// Client dials the platform as the given identity.
func (d *Deployment) Client(t testing.TB, id *pki.Party) *grpc.ClientConn {
	t.Helper()
	c, err := hub.Dial(id, d.PlatformAddr, &pki.Identity{Role: pki.RolePlatform})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop shuts the deployment down and waits for every server.
func (d *Deployment) Stop() {
	if d.Conn != nil {
		d.Conn.Close()
	}
	d.cancel()
	d.wg.Wait()
}
