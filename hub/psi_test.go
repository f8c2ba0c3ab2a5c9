package hub_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	veilv1 "veil/proto/veil/v1"
)

// csvOf builds a table CSV with the given IDs and one feature.
func csvOf(ids []string) string {
	var b strings.Builder
	b.WriteString("id,x\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "%s,%d\n", id, i)
	}
	return b.String()
}

func idRange(prefix string, lo, hi int) []string {
	var out []string
	for i := lo; i < hi; i++ {
		out = append(out, fmt.Sprintf("%s%05d", prefix, i))
	}
	return out
}

func TestThreePartyAlignmentOverMTLS(t *testing.T) {
	bankIDs := idRange("E", 0, 300)
	taxIDs := append(idRange("E", 100, 400), "ONLYTAX")
	socialIDs := append(idRange("E", 50, 250), idRange("E", 350, 380)...)
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: table(t, csvOf(bankIDs), "")},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, csvOf(taxIDs), "")},
		hubtest.AgentSpec{Name: "social", Role: pki.RoleProvider, Table: table(t, csvOf(socialIDs), "")},
	)
	ctx := context.Background()
	for _, proto := range []string{"ecdh", "kkrt"} {
		t.Run(proto, func(t *testing.T) {
			resp, err := veilv1.NewPSIClient(d.Conn).Align(ctx, &veilv1.AlignRequest{Parties: []string{"bank", "tax", "social"}, Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			want := idRange("E", 100, 250) // bank ∩ tax ∩ social
			if resp.GetIntersection() != int64(len(want)) {
				t.Fatalf("intersection %d, want %d", resp.GetIntersection(), len(want))
			}
			if resp.GetSizes()["tax"] != int64(len(taxIDs)) || resp.GetSizes()["bank"] != 300 {
				t.Fatalf("sizes %v", resp.GetSizes())
			}
			for name, a := range d.Agents {
				got, err := a.Alignment(resp.GetJobId())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s holds %d ids, want the %d common ones", name, len(got), len(want))
				}
			}
			job, err := veilv1.NewPSIClient(d.Conn).GetJob(ctx, &veilv1.JobRequest{JobId: resp.GetJobId()})
			if err != nil || job.GetStatus() != "done" || strings.Contains(job.GetResultJson(), "E001") {
				t.Fatalf("job record %v %v", job, err)
			}
		})
	}
	// Bad requests.
	for _, req := range []*veilv1.AlignRequest{
		{Parties: []string{"bank"}},
		{Parties: []string{"bank", "bank"}},
		{Parties: []string{"bank", "tax"}, Protocol: "magic"},
	} {
		if _, err := veilv1.NewPSIClient(d.Conn).Align(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v", req, err)
		}
	}
	if _, err := veilv1.NewPSIClient(d.Conn).Align(ctx, &veilv1.AlignRequest{Parties: []string{"bank", "nobody"}}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown party: %v", err)
	}
}

func TestListCheckOverMTLS(t *testing.T) {
	dishonest := []string{"E00003", "E00007", "E00011", "X99999"}
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "courts", Role: pki.RoleProvider, Table: table(t, csvOf(idRange("E", 0, 20)), ""),
			Configure: func(a *hub.Agent) error {
				return a.AddList(context.Background(), hub.ListSource{Name: "dishonest", Load: func(context.Context) ([]string, error) { return dishonest, nil }})
			}},
	)
	bank := d.Issue(t, "bank-a", pki.RoleBank)
	conn := d.Client(t, bank)
	ctx := context.Background()
	res, err := hub.CheckList(ctx, conn, "courts", "dishonest", idRange("E", 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Matches, []string{"E00003", "E00007"}) || res.MatchCount != 2 {
		t.Fatalf("matches %v", res.Matches)
	}
	if _, err := hub.CheckList(ctx, conn, "courts", "nolist", []string{"A"}); err == nil || !strings.Contains(err.Error(), "no list") {
		t.Fatalf("unknown list: %v", err)
	}
	// The operator (platform role) may not run list checks: it is the bank's call.
	if _, err := hub.CheckList(ctx, d.Conn, "courts", "dishonest", []string{"A"}); err == nil || !strings.Contains(err.Error(), "PermissionDenied") && !strings.Contains(err.Error(), "may not call") {
		t.Fatalf("operator list check: %v", err)
	}
}

func TestJobDoesNotRunUnaudited(t *testing.T) {
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: table(t, csvOf(idRange("E", 0, 30)), "")},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, csvOf(idRange("E", 10, 40)), "")},
	)
	audited := d.Platform.OnJob
	var started []string
	d.Platform.OnJob = func(ctx context.Context, kind, jobID string, parties []string, phase string, result any) error {
		if phase == hub.JobStarted {
			started = append(started, jobID)
			return fmt.Errorf("disk full")
		}
		return audited(ctx, kind, jobID, parties, phase, result)
	}
	_, err := veilv1.NewPSIClient(d.Conn).Align(context.Background(), &veilv1.AlignRequest{Parties: []string{"bank", "tax"}})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "audit log") {
		t.Fatalf("unaudited job: %v", err)
	}
	if len(started) != 1 {
		t.Fatalf("start events: %v", started)
	}
	// No agent took part: nothing was aligned.
	for name, a := range d.Agents {
		if _, err := a.Alignment(started[0]); err == nil {
			t.Fatalf("%s holds an alignment of a job that was never audited", name)
		}
	}
}
