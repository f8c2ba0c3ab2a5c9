package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/mpc/psi"
	veilv1 "veil/proto/veil/v1"
)

// agentPSI serves the PSI side of an agent.
type agentPSI struct {
	veilv1.UnimplementedAgentPSIServer
	a *Agent

	mu         sync.Mutex
	alignments map[string]*psi.Alignment // job ID -> alignment, also kept on disk
	lists      *psi.ListServer
	listSrc    map[string]ListSource
}

// ListSource is a named list a provider offers for list checks (for
// example the courts' list of dishonest enterprises). Load is called before
// every check; the list is re-encoded only when its content changed.
type ListSource struct {
	Name string
	Load func(ctx context.Context) ([]string, error)
}

var jobIDRE = regexp.MustCompile(`^[a-z]+-[0-9a-f]{8,64}$`)

func validJobID(id string) error {
	if !jobIDRE.MatchString(id) {
		return fmt.Errorf("invalid job id %q", id)
	}
	return nil
}

// AddList offers a named list for list checks and encodes it now.
func (a *Agent) AddList(ctx context.Context, src ListSource) error {
	ids, err := src.Load(ctx)
	if err != nil {
		return fmt.Errorf("list %q: %w", src.Name, err)
	}
	if _, err := a.psi.lists.SetList(ctx, src.Name, ids); err != nil {
		return fmt.Errorf("list %q: %w", src.Name, err)
	}
	a.psi.mu.Lock()
	a.psi.listSrc[src.Name] = src
	a.psi.mu.Unlock()
	return nil
}

// Alignment returns the alignment of a finished PSI job: the sorted common
// IDs. It survives a restart of the agent.
func (a *Agent) Alignment(jobID string) ([]string, error) {
	if err := validJobID(jobID); err != nil {
		return nil, err
	}
	a.psi.mu.Lock()
	al, ok := a.psi.alignments[jobID]
	a.psi.mu.Unlock()
	if ok {
		return al.IDs, nil
	}
	if a.cfg.DataDir == "" {
		return nil, fmt.Errorf("no alignment for job %s", jobID)
	}
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, "jobs", jobID, "alignment.ids"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no alignment for job %s at this agent", jobID)
		}
		return nil, fmt.Errorf("alignment of job %s: %w", jobID, err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return []string{}, nil
	}
	return strings.Split(s, "\n"), nil
}

func (a *Agent) saveAlignment(jobID string, al *psi.Alignment) error {
	a.psi.mu.Lock()
	a.psi.alignments[jobID] = al
	a.psi.mu.Unlock()
	if a.cfg.DataDir == "" {
		return nil
	}
	var b strings.Builder
	for _, id := range al.IDs {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	return saveFile(filepath.Join(a.cfg.DataDir, "jobs", jobID, "alignment.ids"), []byte(b.String()))
}

// Align runs this agent's side of an alignment, relayed by the platform.
func (s *agentPSI) Align(stream veilv1.AgentPSI_AlignServer) error {
	ctx := stream.Context()
	f, err := stream.Recv()
	if err != nil {
		return err
	}
	start := f.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "psi align: first frame must be a start frame")
	}
	if err := validJobID(start.GetJobId()); err != nil {
		return status.Errorf(codes.InvalidArgument, "psi align: %v", err)
	}
	cfg := psi.Config{Session: start.GetSession(), Protocol: psi.Protocol(start.GetProtocol())}
	out := &lockedStream{s: stream}
	ids := s.a.cfg.Table.IDs
	t0 := time.Now()
	var al *psi.Alignment
	switch start.GetRole() {
	case "leader":
		if len(start.GetPeers()) == 0 {
			return status.Error(codes.InvalidArgument, "psi align: leader without followers")
		}
		dm := newDemux(start.GetPeers())
		go dm.run(ctx, stream)
		conns := map[string]psi.Conn{}
		for _, p := range start.GetPeers() {
			conns[p] = dm.conn(out, p)
		}
		al, err = psi.AlignLeader(ctx, ids, conns, cfg)
		if err == nil {
			err = s.finish(ctx, out, dm, start.GetJobId(), al)
		}
	case "follower":
		dm := newDemux([]string{""})
		go dm.run(ctx, stream)
		al, err = psi.AlignFollower(ctx, ids, dm.conn(out, ""), cfg)
		if err == nil {
			err = s.finish(ctx, out, dm, start.GetJobId(), al)
		}
	default:
		return status.Errorf(codes.InvalidArgument, "psi align: unknown role %q", start.GetRole())
	}
	if err != nil {
		s.a.log.Warn("psi alignment failed", "job", start.GetJobId(), "error", err)
		return status.Errorf(codes.Aborted, "psi align at %s: %v", s.a.Name(), err)
	}
	s.a.log.Info("psi alignment done", "job", start.GetJobId(), "role", start.GetRole(), "intersection", al.Size, "seconds", time.Since(t0).Seconds())
	return nil
}

// finish stores the alignment, reports sizes and waits for the platform to
// close the stream (so no Recv outlives the handler).
func (s *agentPSI) finish(ctx context.Context, out *lockedStream, dm *demux, jobID string, al *psi.Alignment) error {
	if err := s.a.saveAlignment(jobID, al); err != nil {
		return fmt.Errorf("store alignment: %w", err)
	}
	sizes := map[string]int64{}
	for k, v := range al.PeerSizes {
		sizes[k] = int64(v)
	}
	if err := out.send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Done{Done: &veilv1.PSIDone{
		Intersection: int64(al.Size), Input: int64(al.Input.Unique), Seconds: al.Seconds, PeerSizes: sizes,
	}}}); err != nil {
		return err
	}
	for range dm.done {
		// drain until the platform closes its side
	}
	return nil
}

// ListCheck serves a bank's list check against one of this provider's lists.
func (s *agentPSI) ListCheck(stream veilv1.AgentPSI_ListCheckServer) error {
	ctx := stream.Context()
	f, err := stream.Recv()
	if err != nil {
		return err
	}
	start := f.GetStart()
	if start == nil || start.GetRole() != "list_server" {
		return status.Error(codes.InvalidArgument, "list check: first frame must be a list_server start frame")
	}
	s.mu.Lock()
	src, ok := s.listSrc[start.GetList()]
	s.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "list check: %s has no list %q", s.a.Name(), start.GetList())
	}
	// Refresh: re-encodes only if the list's content changed.
	ids, err := src.Load(ctx)
	if err != nil {
		return status.Errorf(codes.Internal, "list check: load list %q: %v", src.Name, err)
	}
	if _, err := s.lists.SetList(ctx, src.Name, ids); err != nil {
		return status.Errorf(codes.Internal, "list check: %v", err)
	}
	out := &lockedStream{s: stream}
	dm := newDemux([]string{""})
	go dm.run(ctx, stream)
	st, err := s.lists.Serve(ctx, dm.conn(out, ""), psi.Config{Session: start.GetSession()})
	if err != nil {
		return status.Errorf(codes.Aborted, "list check at %s: %v", s.a.Name(), err)
	}
	s.a.recordUse(usageRecord{Kind: "list_check", Job: start.GetJobId(), Detail: fmt.Sprintf("list %s: %d ids checked, %d matches reported", st.List, st.Checked, st.ReportedMatches)})
	if err := out.send(&veilv1.PSIFrame{Body: &veilv1.PSIFrame_Done{Done: &veilv1.PSIDone{
		Input: int64(st.Checked), Intersection: int64(st.ReportedMatches), Seconds: st.Seconds,
	}}}); err != nil {
		return err
	}
	for range dm.done {
	}
	return nil
}

// Lists reports the named lists this provider offers.
func (s *agentPSI) Lists(ctx context.Context, _ *veilv1.ListsRequest) (*veilv1.ListsResponse, error) {
	out := &veilv1.ListsResponse{}
	for _, l := range s.lists.Lists() {
		out.Lists = append(out.Lists, &veilv1.ListInfo{Name: l.Name, Size: int64(l.Size), Version: l.Version})
	}
	return out, nil
}

// IDs returns a copy of the agent's own enterprise IDs, for the party's
// own tools (the demo's bank picks its applicants from them); it is never
// sent anywhere by the agent.
func (a *Agent) IDs() []string { return append([]string(nil), a.cfg.Table.IDs...) }
