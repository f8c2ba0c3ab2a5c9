package hub

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"veil/hub/pki"
)

// MaxMessageBytes bounds every gRPC message: CKKS ciphertexts and PSI chunks
// are large, but a bound keeps a malicious peer from exhausting memory.
const MaxMessageBytes = 64 << 20

// NewGRPCServer returns a gRPC server for party p whose calls all pass
// through g. Client certificates are requested at the TLS layer and
// verified (chain and role) by the Guard, which refuses a call without one
// unless its method is marked PublicEnterprise in the Policy.
func NewGRPCServer(p *pki.Party, g *Guard) *grpc.Server {
	cfg := p.ServerTLS()
	cfg.ClientAuth = tls.RequestClientCert
	cfg.ClientCAs = nil
	return grpc.NewServer(
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(g.Unary),
		grpc.ChainStreamInterceptor(g.Stream),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
}

// Serve runs srv on lis until ctx ends, then stops gracefully: in-flight calls
// get up to grace to finish before the server is stopped hard.
func Serve(ctx context.Context, srv *grpc.Server, lis net.Listener, grace time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", grace.String())
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		srv.Stop()
	}
	return nil
}

// Dial opens a mutually authenticated connection from p to addr, checking
// that the server's certificate carries the expected identity.
func Dial(p *pki.Party, addr string, expect *pki.Identity) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(p.ClientTLS(expect))),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}
