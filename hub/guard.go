package hub

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"veil/hub/pki"
)

// Policy maps a full gRPC method name ("/veil.v1.Registry/AddParty") to the
// roles allowed to call it. A method that is not listed is refused: the
// default is deny.
type Policy map[string][]pki.Role

// PublicEnterprise is a pseudo-role for Policy entries: the method is
// accepted WITHOUT a client certificate because its handler authenticates
// the caller itself, by an enterprise's Ed25519 signature (enterprises hold
// signing keys, not certificates), or returns only public information.
// A caller that does present a certificate must still present a valid one.
const PublicEnterprise pki.Role = "public-enterprise"

// Guard authenticates every call by its client certificate and authorizes it
// by the role the certificate carries.
//
// The TLS layer asks for a client certificate but leaves the chain check to
// the Guard, so that a certificate from another CA gets a clear
// Unauthenticated status (and a log line) instead of an opaque handshake
// failure.
type Guard struct {
	roots   *x509.CertPool
	policy  Policy
	log     *slog.Logger
	metrics *Metrics

	mu       sync.Mutex
	verified map[[32]byte]pki.Identity // certificate hash -> identity, for certificates that chained
}

// NewGuard returns a Guard trusting roots and applying policy.
func NewGuard(roots *x509.CertPool, policy Policy, log *slog.Logger, m *Metrics) *Guard {
	return &Guard{roots: roots, policy: policy, log: log, metrics: m, verified: map[[32]byte]pki.Identity{}}
}

type identityKey struct{}

// CallerFrom returns the authenticated caller that the Guard stored in ctx.
func CallerFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(pki.Identity)
	return id, ok
}

// authenticate verifies the peer certificate and returns its identity.
func (g *Guard) authenticate(ctx context.Context) (pki.Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, errors.New("no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return pki.Identity{}, errors.New("connection is not TLS")
	}
	certs := ti.State.PeerCertificates
	if len(certs) == 0 {
		return pki.Identity{}, errors.New("no client certificate presented")
	}
	leaf := certs[0]
	key := sha256.Sum256(leaf.Raw)
	g.mu.Lock()
	id, ok := g.verified[key]
	g.mu.Unlock()
	if ok && time.Now().Before(leaf.NotAfter) {
		return id, nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: g.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return pki.Identity{}, errors.New("client certificate is not issued by this platform's CA: " + err.Error())
	}
	id, err := pki.IdentityOf(leaf)
	if err != nil {
		return pki.Identity{}, err
	}
	g.mu.Lock()
	g.verified[key] = id
	g.mu.Unlock()
	return id, nil
}

func (g *Guard) check(ctx context.Context, method string) (context.Context, error) {
	allowed, listed := g.policy[method]
	if listed && slices.Contains(allowed, PublicEnterprise) && !hasClientCert(ctx) {
		return ctx, nil // the handler authenticates the enterprise's signature
	}
	id, err := g.authenticate(ctx)
	if err != nil {
		g.log.Warn("call refused", "method", method, "reason", "unauthenticated", "error", err.Error())
		g.metrics.refused(method, "unauthenticated")
		return nil, status.Errorf(codes.Unauthenticated, "%s refused: %v", method, err)
	}
	if !listed || !(slices.Contains(allowed, id.Role) || slices.Contains(allowed, PublicEnterprise)) {
		g.log.Warn("call refused", "method", method, "reason", "role not allowed", "caller", id.Name, "role", id.Role)
		g.metrics.refused(method, "permission_denied")
		return nil, status.Errorf(codes.PermissionDenied, "%s refused: role %q (party %q) may not call it; allowed roles: %v", method, id.Role, id.Name, allowed)
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// hasClientCert reports whether the TLS peer presented any certificate.
func hasClientCert(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(ti.State.PeerCertificates) > 0
}

// Unary is the unary server interceptor.
func (g *Guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx2, err := g.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	resp, err := handler(ctx2, req)
	g.metrics.observe(info.FullMethod, status.Code(err), time.Since(start))
	return resp, err
}

type guardedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s guardedStream) Context() context.Context { return s.ctx }

// Stream is the streaming server interceptor.
func (g *Guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, err := g.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	err = handler(srv, guardedStream{ServerStream: ss, ctx: ctx})
	g.metrics.observe(info.FullMethod, status.Code(err), time.Since(start))
	return err
}
