package hubtest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"

	"veil/hub/local"
	"veil/hub/pki"
)

// AgentSpec describes one agent to start.
type AgentSpec = local.AgentSpec

// Deployment is a running deployment bound to a test.
type Deployment struct {
	*local.Deployment
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

// Start starts a deployment that stops when the test ends.
func Start(t testing.TB, agents ...AgentSpec) *Deployment {
	t.Helper()
	d, err := local.Start(context.Background(), t.TempDir(), Logger(t), agents...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("deployment stop: %v", err)
		}
	})
	return &Deployment{d}
}

// Issue issues a certificate from the deployment's CA.
func (d *Deployment) Issue(t testing.TB, name string, role pki.Role) *pki.Party {
	t.Helper()
	p, err := d.Deployment.Issue(name, role)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Client dials the platform as id; the connection closes when the test ends.
func (d *Deployment) Client(t testing.TB, id *pki.Party) *grpc.ClientConn {
	t.Helper()
	c, err := d.Deployment.Client(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
