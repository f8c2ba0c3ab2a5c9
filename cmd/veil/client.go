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
	cmd.Flags().StringVar(&f.platform, "platform", "127.0.0.1:7443", "platform address host:port")
	cmd.Flags().StringVar(&f.tlsDir, "tls-dir", "", "your certificate directory (party.crt, party.key, ca.crt)")
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
