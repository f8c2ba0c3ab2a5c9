package hub

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"veil/mpc/psi"
	veilv1 "veil/proto/veil/v1"
)

// ListCheckResult is what a bank gets from a list check.
type ListCheckResult struct {
	JobID string `json:"job_id"`
	*psi.ListCheck
}

// CheckList runs the bank's side of a list check through the platform on
// conn: it learns which of ids are on provider's list; the provider learns
// only how many IDs were checked and how many matched.
func CheckList(ctx context.Context, conn grpc.ClientConnInterface, provider, list string, ids []string) (*ListCheckResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := veilv1.NewPSIClient(conn).CheckList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list check: %w", err)
	}
	if err := stream.Send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Start{Start: &veilv1.PSIStart{Role: "list_client", Peers: []string{provider}, List: list}}}); err != nil {
		return nil, fmt.Errorf("list check: %w", err)
	}
	f, err := stream.Recv()
	if err != nil {
		return nil, status.Errorf(status.Code(err), "list check: %s", status.Convert(err).Message())
	}
	st := f.GetStart()
	if st == nil || st.GetSession() == "" {
		return nil, fmt.Errorf("list check: platform did not start a session")
	}
	out := &lockedStream{s: stream}
	dm := newDemux([]string{""})
	go dm.run(ctx, stream)
	res, err := psi.CheckList(ctx, dm.conn(out, ""), list, ids, psi.Config{Session: st.GetSession()})
	if err != nil {
		// The platform's status (why the stream ended) arrives on the
		// receive side; wait for it briefly so the error names the cause
		// rather than a broken pipe.
		wait := time.NewTimer(5 * time.Second)
		defer wait.Stop()
	drain:
		for {
			select {
			case _, ok := <-dm.done:
				if !ok {
					break drain
				}
			case <-wait.C:
				break drain
			}
		}
		if derr := dm.error(); derr != nil {
			return nil, status.Errorf(status.Code(derr), "list check: %s", status.Convert(derr).Message())
		}
		return nil, fmt.Errorf("list check: %w", err)
	}
	if err := out.send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Done{Done: &veilv1.PSIDone{Intersection: int64(res.MatchCount), Input: int64(res.Input.Unique)}}}); err != nil {
		return nil, fmt.Errorf("list check: %w", err)
	}
	if _, ok := <-dm.done; !ok {
		if derr := dm.error(); derr != nil {
			return nil, status.Errorf(status.Code(derr), "list check: %s", status.Convert(derr).Message())
		}
	}
	stream.CloseSend()
	return &ListCheckResult{JobID: st.GetJobId(), ListCheck: res}, nil
}
