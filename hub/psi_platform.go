package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub/pki"
	"veil/hub/store"
	veilv1 "veil/proto/veil/v1"
)

// platformPSI serves the platform's PSI service: it relays blinded
// messages between agents (alignment) or between a bank and a provider
// (list checks), and learns only set sizes.
type platformPSI struct {
	veilv1.UnimplementedPSIServer
	p *Platform
}

// NewJobID returns a fresh random job ID such as "psi-3f2a…".
func NewJobID(kind string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return kind + "-" + hex.EncodeToString(b[:])
}

// AlignResult is what the platform learns from an alignment.
type AlignResult struct {
	JobID        string           `json:"job_id"`
	Protocol     string           `json:"protocol"`
	Parties      []string         `json:"parties"`
	Intersection int64            `json:"intersection"`
	Sizes        map[string]int64 `json:"sizes"`
	Seconds      float64          `json:"seconds"`
}

// RunAlignment aligns parties (the first is the label holder, who leads)
// and records the job. Each agent keeps the sorted common IDs under the
// returned job ID.
func (p *Platform) RunAlignment(ctx context.Context, parties []string, protocol string) (*AlignResult, error) {
	if len(parties) < 2 {
		return nil, status.Error(codes.InvalidArgument, "psi align: need at least two parties (the label holder first)")
	}
	seen := map[string]bool{}
	for _, n := range parties {
		if seen[n] {
			return nil, status.Errorf(codes.InvalidArgument, "psi align: party %q listed twice", n)
		}
		seen[n] = true
	}
	switch protocol {
	case "", "ecdh", "kkrt":
	default:
		return nil, status.Errorf(codes.InvalidArgument, "psi align: unknown protocol %q (want ecdh or kkrt)", protocol)
	}
	if protocol == "" {
		protocol = "ecdh"
	}
	jobID := NewJobID("psi")
	if err := p.jobs.Create(ctx, store.Job{ID: jobID, Kind: "psi", Parties: parties}); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if err := p.jobEvent(ctx, "psi_job", jobID, parties, JobStarted, map[string]any{"protocol": protocol}); err != nil {
		p.jobs.Finish(context.WithoutCancel(ctx), jobID, nil, err)
		return nil, err
	}
	res, err := p.relayAlignment(ctx, jobID, parties, protocol)
	if ferr := p.jobs.Finish(context.WithoutCancel(ctx), jobID, res, err); ferr != nil && err == nil {
		err = status.Errorf(codes.Internal, "%v", ferr)
	}
	p.log.Info("psi alignment", "job", jobID, "parties", parties, "ok", err == nil)
	if err != nil {
		return nil, err
	}
	if err := p.jobEvent(ctx, "psi_job", jobID, parties, JobFinished, res); err != nil {
		return nil, err
	}
	return res, nil
}

func (p *Platform) relayAlignment(parent context.Context, jobID string, parties []string, protocol string) (*AlignResult, error) {
	start := time.Now()
	// Every stream lives under the group's context: the first failure
	// cancels them all, so no relay goroutine stays blocked in Recv.
	g, ctx := errgroup.WithContext(parent)
	streams := make([]veilv1.AgentPSI_AlignClient, len(parties))
	locked := make(map[string]*lockedStream, len(parties))
	for i, name := range parties {
		conn, _, err := p.AgentConn(ctx, name)
		if err != nil {
			return nil, err
		}
		s, err := veilv1.NewAgentPSIClient(conn).Align(ctx)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "psi align: open stream to %s: %v", name, err)
		}
		streams[i] = s
		locked[name] = &lockedStream{s: s}
		st := &veilv1.PSIStart{JobId: jobID, Session: jobID, Protocol: protocol, Role: "follower", Peers: []string{parties[0]}}
		if i == 0 {
			st.Role, st.Peers = "leader", parties[1:]
		}
		if err := locked[name].send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Start{Start: st}}); err != nil {
			return nil, status.Errorf(codes.Unavailable, "psi align: start %s: %v", name, err)
		}
	}
	var mu sync.Mutex
	res := &AlignResult{JobID: jobID, Protocol: protocol, Parties: parties, Sizes: map[string]int64{}, Intersection: -1}
	for i, name := range parties {
		g.Go(func() error {
			recvErr := func(err error) error {
				if errors.Is(err, io.EOF) {
					return fmt.Errorf("%s closed its stream before finishing", name)
				}
				if ctx.Err() != nil && status.Code(err) == codes.Canceled {
					return ctx.Err()
				}
				return fmt.Errorf("%s: %s", name, status.Convert(err).Message())
			}
			done, err := relayUntilDone(streams[i], name, recvErr, func(f *veilv1.PSIFrame) error {
				var dst *lockedStream
				var tag string
				if i == 0 {
					dst = locked[f.GetPeer()]
					if dst == nil || f.GetPeer() == parties[0] {
						return fmt.Errorf("%s addressed unknown follower %q", name, f.GetPeer())
					}
				} else {
					dst, tag = locked[parties[0]], name
				}
				if err := dst.send(&veilv1.PSIFrame{Peer: tag, Body: f.Body}); err != nil {
					return fmt.Errorf("relay from %s: %w", name, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			res.Sizes[name] = done.GetInput()
			if res.Intersection >= 0 && res.Intersection != done.GetIntersection() {
				return fmt.Errorf("parties disagree on the intersection size (%d vs %d from %s)", res.Intersection, done.GetIntersection(), name)
			}
			res.Intersection = done.GetIntersection()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, status.Errorf(codes.Aborted, "psi align: %v", err)
	}
	for i := range streams {
		streams[i].CloseSend()
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// Align is the operator's RPC.
func (s *platformPSI) Align(ctx context.Context, req *veilv1.AlignRequest) (*veilv1.AlignResponse, error) {
	res, err := s.p.RunAlignment(ctx, req.GetParties(), req.GetProtocol())
	if err != nil {
		return nil, err
	}
	return &veilv1.AlignResponse{JobId: res.JobID, Protocol: res.Protocol, Intersection: res.Intersection, Sizes: res.Sizes, Seconds: res.Seconds}, nil
}

// GetJob returns a job record.
func (s *platformPSI) GetJob(ctx context.Context, req *veilv1.JobRequest) (*veilv1.Job, error) {
	j, err := s.p.jobs.Get(ctx, req.GetJobId())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "no job %q", req.GetJobId())
		}
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	out := &veilv1.Job{Id: j.ID, Kind: j.Kind, Parties: j.Parties, Status: j.Status, ResultJson: string(j.Result), CreatedUnix: j.CreatedAt.Unix(), Error: j.Error}
	if !j.FinishedAt.IsZero() {
		out.FinishedUnix = j.FinishedAt.Unix()
	}
	return out, nil
}

// CheckList relays a bank's list check to a provider. The bank's first
// frame names the provider and the list.
func (s *platformPSI) CheckList(stream veilv1.PSI_CheckListServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	caller, _ := CallerFrom(ctx)
	f, err := stream.Recv()
	if err != nil {
		return err
	}
	st := f.GetStart()
	if st == nil || len(st.GetPeers()) != 1 || st.GetList() == "" {
		return status.Error(codes.InvalidArgument, "list check: first frame must name one provider and a list")
	}
	provider := st.GetPeers()[0]
	party, err := s.p.registry.GetParty(ctx, provider)
	if err != nil {
		return status.Errorf(codes.NotFound, "list check: provider %q is not registered", provider)
	}
	if party.Role != string(pki.RoleProvider) {
		return status.Errorf(codes.InvalidArgument, "list check: %q is not a provider", provider)
	}
	conn, _, err := s.p.AgentConn(ctx, provider)
	if err != nil {
		return err
	}
	jobID := NewJobID("list")
	if err := s.p.jobs.Create(ctx, store.Job{ID: jobID, Kind: "list_check", Parties: []string{caller.Name, provider}}); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	var result struct {
		List     string `json:"list"`
		Checked  int64  `json:"checked"`
		Matches  int64  `json:"matches"`
		Provider string `json:"provider"`
		Bank     string `json:"bank"`
	}
	result.List, result.Provider, result.Bank = st.GetList(), provider, caller.Name
	if err := s.p.jobEvent(ctx, "list_check", jobID, []string{caller.Name, provider}, JobStarted, map[string]any{"list": st.GetList()}); err != nil {
		s.p.jobs.Finish(context.WithoutCancel(ctx), jobID, nil, err)
		return err
	}
	err = func() error {
		ps, err := veilv1.NewAgentPSIClient(conn).ListCheck(ctx)
		if err != nil {
			return status.Errorf(codes.Unavailable, "list check: open stream to %s: %v", provider, err)
		}
		pstart := &veilv1.PSIStart{JobId: jobID, Session: jobID, Role: "list_server", List: st.GetList()}
		if err := ps.Send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Start{Start: pstart}}); err != nil {
			return status.Errorf(codes.Unavailable, "list check: %v", err)
		}
		bank := &lockedStream{s: stream}
		if err := bank.send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Start{Start: &veilv1.PSIStart{JobId: jobID, Session: jobID, Role: "list_client", List: st.GetList(), Peers: []string{provider}}}}); err != nil {
			return err
		}
		prov := &lockedStream{s: ps}
		// The bank's stream can only be unblocked by returning from this
		// handler, so wait for both directions to finish or for the first
		// error, not for every goroutine.
		errc := make(chan error, 2)
		goRelay := func(f func() error) { go func() { errc <- f() }() }
		goRelay(func() error { // bank -> provider
			done, err := relayUntilDone(stream, "bank", func(err error) error {
				return fmt.Errorf("bank: %s", status.Convert(err).Message())
			}, func(f *veilv1.PSIFrame) error {
				if err := prov.send(&veilv1.PSIFrame{Body: f.Body}); err != nil {
					return fmt.Errorf("relay to %s: %w", provider, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			result.Matches = done.GetIntersection()
			return nil
		})
		goRelay(func() error { // provider -> bank
			done, err := relayUntilDone(ps, provider, func(err error) error {
				return fmt.Errorf("%s: %s", provider, status.Convert(err).Message())
			}, func(f *veilv1.PSIFrame) error {
				if err := bank.send(&veilv1.PSIFrame{Body: f.Body}); err != nil {
					return fmt.Errorf("relay to bank: %w", err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			result.Checked = done.GetInput()
			return bank.send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Done{Done: done}})
		})
		for range 2 {
			if err := <-errc; err != nil {
				cancel()
				return status.Errorf(codes.Aborted, "list check: %v", err)
			}
		}
		ps.CloseSend()
		return nil
	}()
	if ferr := s.p.jobs.Finish(context.WithoutCancel(ctx), jobID, result, err); ferr != nil && err == nil {
		err = status.Errorf(codes.Internal, "%v", ferr)
	}
	if err == nil {
		err = s.p.jobEvent(ctx, "list_check", jobID, []string{caller.Name, provider}, JobFinished, result)
	}
	return err
}

// relayUntilDone reads frames from src (the stream of party who) and hands
// each message frame to forward until src sends its done frame, which it
// returns. recvErr describes a failed receive.
func relayUntilDone(src frameStream, who string, recvErr func(error) error, forward func(*veilv1.PSIFrame) error) (*veilv1.PSIDone, error) {
	for {
		f, err := src.Recv()
		if err != nil {
			return nil, recvErr(err)
		}
		switch b := f.Body.(type) {
		case *veilv1.PSIFrame_Message:
			if err := forward(f); err != nil {
				return nil, err
			}
		case *veilv1.PSIFrame_Done:
			return b.Done, nil
		default:
			return nil, fmt.Errorf("%s sent an unexpected frame", who)
		}
	}
}

// alignmentOf returns the result of a finished alignment job, checking
// that it aligned exactly parties, in that order (the label holder led).
func (p *Platform) alignmentOf(ctx context.Context, jobID string, parties []string) (*AlignResult, error) {
	j, err := p.jobs.Get(ctx, jobID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(codes.NotFound, "no alignment job %q", jobID)
		}
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if j.Kind != "psi" || j.Status != store.JobDone {
		return nil, status.Errorf(codes.FailedPrecondition, "job %s is a %s job in state %s, not a finished alignment", jobID, j.Kind, j.Status)
	}
	if !slices.Equal(j.Parties, parties) {
		return nil, status.Errorf(codes.FailedPrecondition, "alignment %s aligned %v, but this job needs %v (label party first)", jobID, j.Parties, parties)
	}
	var res AlignResult
	if err := json.Unmarshal(j.Result, &res); err != nil {
		return nil, status.Errorf(codes.Internal, "alignment %s: %v", jobID, err)
	}
	return &res, nil
}
