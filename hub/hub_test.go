package hub_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/hub/store/storetest"
	"veil/modeling/dataset"
	veilv1 "veil/proto/veil/v1"
)

func table(t testing.TB, csv string, label string) *dataset.Table {
	t.Helper()
	tb, err := dataset.ReadCSV(strings.NewReader(csv), dataset.Options{IDColumn: "id", LabelColumn: label})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRegistryAndSummaryOverMTLS(t *testing.T) {
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: table(t, "id,y,income\na,1,10\nb,0,20\nc,1,35\n", "y")},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, "id,paid,sector\na,5,retail\nb,7,farm\n", "")},
	)
	ctx := context.Background()
	reg := veilv1.NewRegistryClient(d.Conn)
	list, err := reg.ListParties(ctx, &veilv1.ListPartiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetParties()) != 2 || list.GetParties()[0].GetName() != "bank" || list.GetParties()[0].GetCertSha256() == "" {
		t.Fatalf("parties: %v", list.GetParties())
	}
	s, err := reg.PartySummary(ctx, &veilv1.PartySummaryRequest{Name: "tax"})
	if err != nil {
		t.Fatal(err)
	}
	if s.GetRows() != 2 || len(s.GetFeatures()) != 3 || s.GetHasLabel() {
		t.Fatalf("summary: %v", s)
	}
	// The summary carries names only: no value of the table.
	for _, f := range s.GetFeatures() {
		if strings.ContainsAny(f, "57") {
			t.Fatalf("summary leaks a value: %q", f)
		}
	}
	if _, err := reg.PartySummary(ctx, &veilv1.PartySummaryRequest{Name: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown party: %v", err)
	}
}

func TestUnknownCARefused(t *testing.T) {
	d := hubtest.Start(t)
	// A second, unrelated CA issues a certificate claiming the platform role.
	other := t.TempDir()
	if err := pki.InitCA(filepath.Join(other, "ca"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := pki.Issue(filepath.Join(other, "ca"), filepath.Join(other, "p"), pki.IssueRequest{Name: "platform", Role: pki.RolePlatform}); err != nil {
		t.Fatal(err)
	}
	id, err := pki.Load(filepath.Join(other, "p"))
	if err != nil {
		t.Fatal(err)
	}
	// Trust the real CA for the server side so the handshake completes and the
	// refusal comes from the Guard with a clear status.
	real, _ := pki.Load(d.TLSDir("platform"))
	id.CAPool = real.CAPool
	conn, err := hub.Dial(id, d.PlatformAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = veilv1.NewRegistryClient(conn).ListParties(context.Background(), &veilv1.ListPartiesRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "not issued by this platform's CA") {
		t.Fatalf("foreign certificate: got %v, want Unauthenticated", err)
	}
}

func TestWrongRoleRefused(t *testing.T) {
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, "id,x\na,1\nb,2\n", "")})
	ctx := context.Background()
	bank := d.Issue(t, "bank-a", pki.RoleBank)
	_, err := veilv1.NewRegistryClient(d.Client(t, bank)).AddParty(ctx, &veilv1.AddPartyRequest{Name: "evil", Role: "provider"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bank adding a party: got %v, want PermissionDenied", err)
	}
	// A provider may not call another agent directly either.
	prov := d.Issue(t, "social", pki.RoleProvider)
	conn, err := hub.Dial(prov, d.AgentAddrs["tax"], &pki.Identity{Name: "tax"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := veilv1.NewAgentClient(conn).Summary(ctx, &veilv1.SummaryRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("provider calling an agent: got %v, want PermissionDenied", err)
	}
}

func TestAddPartyChecksCertificateAtAddress(t *testing.T) {
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, "id,x\na,1\nb,2\n", "")})
	ctx := context.Background()
	reg := veilv1.NewRegistryClient(d.Conn)
	// Registering "courts" at tax's address must fail: the certificate there says "tax".
	_, err := reg.AddParty(ctx, &veilv1.AddPartyRequest{Name: "courts", Role: "provider", Address: d.AgentAddrs["tax"]})
	if err == nil || !strings.Contains(err.Error(), "is for party") {
		t.Fatalf("impersonation accepted or unclear: %v", err)
	}
	// Wrong role claimed.
	if _, err := reg.AddParty(ctx, &veilv1.AddPartyRequest{Name: "tax", Role: "bank", Address: d.AgentAddrs["tax"]}); err == nil {
		t.Fatal("wrong role accepted")
	}
	for _, bad := range []*veilv1.AddPartyRequest{
		{Name: "Bad Name", Role: "provider"},
		{Name: "x", Role: "wizard"},
		{Name: "x", Role: "provider", Address: "no-port"},
	} {
		if _, err := reg.AddParty(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%v: got %v, want InvalidArgument", bad, err)
		}
	}
}

func TestRegistryPersistsAcrossPlatformRestart(t *testing.T) {
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, "id,x\na,1\nb,2\n", "")})
	d.Stop()
	p, err := hub.NewPlatform(context.Background(), hub.PlatformConfig{Identity: d.Operator, DataDir: filepath.Join(d.Dir, "platform-data"), Log: d.Log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.DB().Close()
	got, err := p.ListParties(context.Background(), &veilv1.ListPartiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetParties()) != 1 || got.GetParties()[0].GetName() != "tax" {
		t.Fatalf("after restart: %v", got.GetParties())
	}
}

func TestPlatformOnPostgresPersistsRegistry(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, "id,x\na,1\nb,2\n", "")})
	ctx := context.Background()
	open := func() *hub.Platform {
		p, err := hub.NewPlatform(ctx, hub.PlatformConfig{Identity: d.Operator, DB: dsn, DataDir: filepath.Join(d.Dir, "pg-platform-data"), Log: d.Log})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	if p.DB().Dialect.String() != "postgres" {
		t.Fatalf("dialect %v", p.DB().Dialect)
	}
	if _, err := p.AddParty(ctx, &veilv1.AddPartyRequest{Name: "tax", Role: "provider", Address: d.AgentAddrs["tax"]}); err != nil {
		t.Fatal(err)
	}
	p.DB().Close()
	p = open() // restart: migrations run again, the registry is still there
	defer p.DB().Close()
	got, err := p.ListParties(ctx, &veilv1.ListPartiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetParties()) != 1 || got.GetParties()[0].GetCertSha256() == "" {
		t.Fatalf("after restart on PostgreSQL: %v", got.GetParties())
	}
}
