package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub"
	"veil/hub/pki"
)

// clientFlags are shared by every command that talks to the platform.
type clientFlags struct {
	platform string
	tlsDir   string
	json     bool
	timeout  time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.registerTLSDir(cmd, "your certificate directory (party.crt, party.key, ca.crt)")
}

// registerTLSDir registers the flags with tlsDirUsage as the help of --tls-dir.
func (f *clientFlags) registerTLSDir(cmd *cobra.Command, tlsDirUsage string) {
	cmd.Flags().StringVar(&f.platform, "platform", "127.0.0.1:7443", "platform address host:port")
	cmd.Flags().StringVar(&f.tlsDir, "tls-dir", "", tlsDirUsage)
	cmd.Flags().BoolVar(&f.json, "json", false, "print machine-readable JSON")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 60*time.Second, "give up after this long")
}

// dial connects to the platform, pinning its role.
func (f *clientFlags) dial() (*grpc.ClientConn, *pki.Party, error) {
	if f.tlsDir == "" {
		return nil, nil, usagef("--tls-dir is required (your directory from 'veil pki issue')")
	}
	id, err := pki.Load(f.tlsDir)
	if err != nil {
		return nil, nil, err
	}
	conn, err := hub.Dial(id, f.platform, &pki.Identity{Role: pki.RolePlatform})
	if err != nil {
		return nil, nil, err
	}
	return conn, id, nil
}

// connect dials the platform and derives the call context (--timeout) from
// the command's; done cancels the context and closes the connection.
func (f *clientFlags) connect(cmd *cobra.Command) (*grpc.ClientConn, context.Context, func(), error) {
	conn, _, err := f.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, done := f.session(cmd, conn)
	return conn, ctx, done, nil
}

// session derives the call context (--timeout) from the command's for calls
// on conn; done cancels the context and closes conn.
func (f *clientFlags) session(cmd *cobra.Command, conn *grpc.ClientConn) (context.Context, func()) {
	ctx, cancel := f.context(cmd.Context())
	return ctx, func() { cancel(); conn.Close() }
}

func (f *clientFlags) context(parent context.Context) (context.Context, context.CancelFunc) {
	if f.timeout <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithTimeout(parent, f.timeout)
}

// rpcError turns a gRPC status into a plain message and an exit code.
func rpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := fmt.Errorf("%s: %s", what, st.Message())
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated:
		return withCode(exitRefused, msg)
	case codes.InvalidArgument:
		return usageError{msg}
	case codes.Unavailable:
		return fmt.Errorf("%s: platform unavailable: %s", what, st.Message())
	case codes.DeadlineExceeded:
		return errors.New(what + ": timed out (raise --timeout?)")
	}
	return msg
}
