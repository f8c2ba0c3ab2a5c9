package hub_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"veil/authz/audit"
	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/hub/store/storetest"
	"veil/modeling/dataset"
	veilv1 "veil/proto/veil/v1"
)

// testUSCC makes a valid USCC from a 17-character prefix.
func testUSCC(t *testing.T, first17 string) string {
	t.Helper()
	c, err := dataset.USCCCheckChar(first17)
	if err != nil {
		t.Fatal(err)
	}
	return first17 + string(c)
}

type authzEnv struct {
	d      *hubtest.Deployment
	uscc   string
	pub    ed25519.PublicKey
	priv   ed25519.PrivateKey
	bank   *grpc.ClientConn
	noCert *grpc.ClientConn
	logKey string
}

func startAuthz(t *testing.T) *authzEnv {
	t.Helper()
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, "id,annual_tax_paid\na,1\nb,2\n", "")})
	pub, priv, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := hub.LoadCAPool(filepath.Join(d.CADir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := hub.DialPlatformNoCert(pool, d.PlatformAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	env := &authzEnv{d: d, uscc: testUSCC(t, "91110000MA01ABCDE"), pub: pub, priv: priv, noCert: nc,
		bank: d.Client(t, d.Issue(t, "bank-a", pki.RoleBank)), logKey: d.Platform.AuditVerifierKey()}
	resp, err := hub.RegisterEnterprise(context.Background(), d.Conn, env.uscc, pub, false)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetChanged() || len(resp.GetAgentsNotified()) != 1 || resp.GetAgentsNotified()[0] != "tax" {
		t.Fatalf("register: %v", resp)
	}
	return env
}

func (e *authzEnv) issue(t *testing.T, mutate func(*grant.Claims)) (string, grant.Claims) {
	t.Helper()
	c := grant.Claims{Issuer: e.uscc, Audience: "bank-a", Purpose: "loan-application",
		Scopes: []string{"score:default-v1", "verify:tax.annual_tax_paid"}, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 5}
	if mutate != nil {
		mutate(&c)
	}
	tok, err := grant.Issue(e.priv, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := grant.Inspect(tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, *got
}

func TestGrantRevokeAuditFlow(t *testing.T) {
	env := startAuthz(t)
	d, ctx := env.d, context.Background()
	tok, claims := env.issue(t, nil)
	tax := d.Agents["tax"]

	// The bank checks its grant: allowed, and the check consumes no use.
	for range 2 {
		chk, err := hub.CheckGrant(ctx, env.bank, tok, "", "score:default-v1")
		if err != nil {
			t.Fatal(err)
		}
		if !chk.GetAllowed() || chk.GetUses() != 0 || chk.GetMaxUses() != 5 || chk.GetGrantId() != claims.ID {
			t.Fatalf("check: %v", chk)
		}
	}
	// The scoring path: platform, then the provider agent independently.
	g, err := d.Platform.Authorize(ctx, tok, grant.Request{Audience: "bank-a", Subject: env.uscc, Scopes: []string{"score:default-v1"}, JobID: "score-1"})
	if err != nil || g.Uses != 1 {
		t.Fatalf("platform authorize: %v %+v", err, g)
	}
	if _, err := tax.Authorize(ctx, tok, grant.Request{Audience: "bank-a", Subject: env.uscc, Scopes: []string{"verify:tax.annual_tax_paid"}}); err != nil {
		t.Fatalf("agent authorize: %v", err)
	}
	if chk, err := hub.CheckGrant(ctx, env.bank, tok, "", "score:default-v1"); err != nil || chk.GetUses() != 1 {
		t.Fatalf("check after one use: %v %v", chk, err)
	}
	// The agent refuses a field the grant does not cover, whatever the
	// platform forwards.
	_, err = tax.Authorize(ctx, tok, grant.Request{Audience: "bank-a", Scopes: []string{"query:tax.annual_tax_paid"}})
	if r, _, ok := hub.GrantRefusal(err); !ok || r != grant.ReasonOutOfScope {
		t.Fatalf("agent out of scope: %v", err)
	}

	// The enterprise revokes over a connection without a certificate.
	rev, err := hub.RevokeGrant(ctx, env.noCert, env.priv, env.uscc, claims.ID)
	if err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if rev.GetGrantId() != claims.ID || len(rev.GetAgentsNotified()) != 1 || len(rev.GetAgentsFailed()) != 0 {
		t.Fatalf("revoke: %v", rev)
	}
	chk, err := hub.CheckGrant(ctx, env.bank, tok, "", "score:default-v1")
	if err != nil || chk.GetAllowed() || chk.GetReason() != string(grant.ReasonRevoked) {
		t.Fatalf("check after revocation: %v %v", chk, err)
	}
	_, err = d.Platform.Authorize(ctx, tok, grant.Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}})
	if status.Code(err) != codes.PermissionDenied || !strings.HasPrefix(status.Convert(err).Message(), "revoked: ") {
		t.Fatalf("platform after revocation: %v", err)
	}
	// Even if a platform forwarded the request, the agent refuses on its own.
	_, err = tax.Authorize(ctx, tok, grant.Request{Audience: "bank-a", Scopes: []string{"verify:tax.annual_tax_paid"}})
	if r, _, _ := hub.GrantRefusal(err); r != grant.ReasonRevoked {
		t.Fatalf("agent after revocation: %v", err)
	}
	// The signed revocation cannot be forged by someone without the key.
	_, otherKey, _ := keys.Generate(nil)
	if _, err := hub.RevokeGrant(ctx, env.noCert, otherKey, env.uscc, "another-grant"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("forged revocation: %v", err)
	}

	// audit mine: every entry about the enterprise, with verified proofs.
	mine, err := hub.AuditMine(ctx, env.noCert, env.priv, env.uscc, env.logKey)
	if err != nil {
		t.Fatal(err)
	}
	if !mine.Pinned || len(mine.Problems) != 0 || mine.Checked != len(mine.Entries) {
		t.Fatalf("audit mine: %+v", mine)
	}
	kinds := map[audit.Kind]int{}
	for _, e := range mine.Entries {
		kinds[e.Kind]++
		if e.Subject != env.uscc {
			t.Fatalf("foreign entry in audit mine: %+v", e)
		}
	}
	for k, n := range map[audit.Kind]int{audit.KindEnterpriseRegistered: 1, hub.KindGrantChecked: 4, audit.KindRequestAllowed: 1, audit.KindGrantRevoked: 1, audit.KindRequestDenied: 1} {
		if kinds[k] != n {
			t.Errorf("audit mine: %d %s entries, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	// The forged revocation is logged but not in the enterprise's history.
	recs, err := d.Platform.AuditLog().Query(ctx, audit.Query{Kind: hub.KindRevocationRefused})
	if err != nil || len(recs) != 1 {
		t.Fatalf("refused revocation entries: %d %v", len(recs), err)
	}

	// The auditor verifies the whole log, saves the checkpoint, and later
	// checks consistency with it.
	auditor := d.Client(t, d.Issue(t, "regulator", pki.RoleAuditor))
	ver, err := hub.VerifyAuditLog(ctx, auditor, env.logKey, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if !ver.OK() || ver.Unsigned != 0 || ver.Entries != ver.Head || ver.Latest == nil {
		t.Fatalf("verify: %+v", ver.Report)
	}
	saved := ver.Latest.Note
	if _, err := d.Platform.Authorize(ctx, "garbage", grant.Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}}); err == nil {
		t.Fatal("garbage token accepted")
	}
	ver, err = hub.VerifyAuditLog(ctx, auditor, env.logKey, saved, true)
	if err != nil || !ver.OK() || !ver.SavedConsistent {
		t.Fatalf("verify against saved: %v %+v", err, ver.Report)
	}

	// Tamper with one stored entry: verification names it.
	var seq int64
	if err := d.Platform.DB().SQL.QueryRowContext(ctx, `SELECT seq FROM audit_entries WHERE kind = 'grant_revoked'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Platform.DB().SQL.ExecContext(ctx, `UPDATE audit_entries SET body = replace(body, '"grant_revoked"', '"grant_checked"') WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	ver, err = hub.VerifyAuditLog(ctx, auditor, env.logKey, saved, false)
	if err != nil {
		t.Fatal(err)
	}
	if ver.OK() {
		t.Fatal("tampered log verified")
	}
	named := false
	for _, p := range ver.Problems {
		named = named || p.Index == seq
	}
	if !named {
		t.Fatalf("problems do not name entry %d: %v", seq, ver.Problems)
	}
	// The enterprise's own proofs now fail for that entry too.
	mine, err = hub.AuditMine(ctx, env.noCert, env.priv, env.uscc, env.logKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine.Problems) == 0 {
		t.Fatal("audit mine did not notice the tampered entry")
	}
}

func TestAuthzAccessControl(t *testing.T) {
	env := startAuthz(t)
	d, ctx := env.d, context.Background()
	// Certificate-less calls reach only the enterprise methods.
	if _, err := veilv1.NewRegistryClient(env.noCert).ListParties(ctx, &veilv1.ListPartiesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no-cert ListParties: %v", err)
	}
	if _, err := hub.RegisterEnterprise(ctx, env.noCert, env.uscc, env.pub, true); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no-cert RegisterEnterprise: %v", err)
	}
	if _, err := hub.CheckGrant(ctx, env.noCert, "x", "", "score:m"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no-cert CheckGrant: %v", err)
	}
	if k, err := hub.AuditLogKey(ctx, env.noCert); err != nil || k != env.logKey {
		t.Fatalf("no-cert AuditLogKey: %q %v", k, err)
	}
	// Wrong roles.
	if _, err := hub.RegisterEnterprise(ctx, env.bank, env.uscc, env.pub, true); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bank registering an enterprise: %v", err)
	}
	if _, err := hub.VerifyAuditLog(ctx, env.bank, env.logKey, nil, false); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bank reading the log: %v", err)
	}
	prov := d.Client(t, d.Issue(t, "social", pki.RoleProvider))
	err := hub.AuditStream(ctx, prov, &veilv1.AuthzAuditQueryRequest{Provider: "tax"}, func(uint64, []byte) error { return nil })
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("provider querying another provider: %v", err)
	}
	if err := hub.AuditStream(ctx, prov, &veilv1.AuthzAuditQueryRequest{Provider: "social"}, func(uint64, []byte) error { return nil }); err != nil {
		t.Fatalf("provider querying itself: %v", err)
	}
	// Registration input checks.
	bad := env.uscc[:17] + "0"
	if env.uscc[17] == '0' {
		bad = env.uscc[:17] + "1"
	}
	if _, err := hub.RegisterEnterprise(ctx, d.Conn, bad, env.pub, false); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad USCC: %v", err)
	}
	other, _, _ := keys.Generate(nil)
	if _, err := hub.RegisterEnterprise(ctx, d.Conn, env.uscc, other, false); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("key replaced without --replace: %v", err)
	}
	// audit mine: a replayed, stale or foreign-signed request is refused.
	client := veilv1.NewAuthzClient(env.noCert)
	now := time.Now().Unix()
	nonce := []byte("0123456789abcdef")
	req := &veilv1.AuthzAuditMineRequest{Uscc: env.uscc, UnixTime: now, Nonce: nonce, Signature: ed25519.Sign(env.priv, hub.AuditMineMessage(env.uscc, now, nonce))}
	if _, err := client.AuditMine(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AuditMine(ctx, req); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "replayed") {
		t.Fatalf("replay: %v", err)
	}
	old := now - 3600
	req = &veilv1.AuthzAuditMineRequest{Uscc: env.uscc, UnixTime: old, Nonce: []byte("fedcba9876543210"), Signature: ed25519.Sign(env.priv, hub.AuditMineMessage(env.uscc, old, []byte("fedcba9876543210")))}
	if _, err := client.AuditMine(ctx, req); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("stale: %v", err)
	}
	_, otherPriv, _ := keys.Generate(nil)
	if _, err := hub.AuditMine(ctx, env.noCert, otherPriv, env.uscc, env.logKey); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("audit mine with another key: %v", err)
	}
}

func b64json(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestBadGrantsRefusedOverRPC(t *testing.T) {
	env := startAuthz(t)
	ctx := context.Background()
	good, claims := env.issue(t, nil)
	parts := strings.Split(good, ".")
	payload := map[string]any{"iss": env.uscc, "sub": env.uscc, "aud": []string{"bank-a"}, "jti": "x1", "iat": time.Now().Unix(),
		"nbf": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "purpose": "p", "scope": claims.Scopes, "max_uses": 5}
	hs := b64json(t, map[string]any{"alg": "HS256", "typ": grant.GrantType}) + "." + b64json(t, payload)
	mac := hmac.New(sha256.New, env.pub)
	mac.Write([]byte(hs))
	hsTok := hs + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	_, wrongKey, _ := keys.Generate(nil)
	wrongTok, _ := grant.Issue(wrongKey, grant.Claims{Issuer: env.uscc, Audience: "bank-a", Scopes: claims.Scopes, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1})
	unknownTok, _ := grant.Issue(env.priv, grant.Claims{Issuer: testUSCC(t, "91310000MA1FL8XQ3"), Audience: "bank-a", Scopes: claims.Scopes, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1})
	expired, _ := env.issue(t, func(c *grant.Claims) {
		c.IssuedAt = time.Now().Add(-2 * time.Hour)
		c.ExpiresAt = time.Now().Add(-time.Hour)
	})
	future, _ := env.issue(t, func(c *grant.Claims) {
		c.NotBefore = time.Now().Add(time.Hour)
		c.ExpiresAt = time.Now().Add(2 * time.Hour)
	})
	otherBank, _ := env.issue(t, func(c *grant.Claims) { c.Audience = "bank-b" })
	modified := parts[0] + "." + b64json(t, map[string]any{"iss": env.uscc, "sub": env.uscc, "aud": []string{"bank-a"}, "jti": claims.ID,
		"iat": claims.IssuedAt.Unix(), "nbf": claims.NotBefore.Unix(), "exp": claims.ExpiresAt.Unix(), "purpose": "p", "scope": []string{"score:default-v1", "query:tax.annual_tax_paid"}, "max_uses": 500}) + "." + parts[2]

	cases := []struct {
		name, token, scope string
		want               grant.Reason
	}{
		{"alg none", b64json(t, map[string]any{"alg": "none", "typ": grant.GrantType}) + "." + parts[1] + ".", "score:default-v1", grant.ReasonAlgNotAllowed},
		{"HS256 keyed with the public key", hsTok, "score:default-v1", grant.ReasonAlgNotAllowed},
		{"wrong key", wrongTok, "score:default-v1", grant.ReasonBadSignature},
		{"unknown enterprise", unknownTok, "score:default-v1", grant.ReasonUnknownEnterprise},
		{"modified claims", modified, "score:default-v1", grant.ReasonBadSignature},
		{"truncated", good[:len(good)-10], "score:default-v1", grant.ReasonBadSignature},
		{"extra segment", good + ".e30", "score:default-v1", grant.ReasonMalformed},
		{"oversized", strings.Repeat("a", 9000), "score:default-v1", grant.ReasonOversized},
		{"expired", expired, "score:default-v1", grant.ReasonExpired},
		{"not yet valid", future, "score:default-v1", grant.ReasonNotYetValid},
		{"wrong audience", otherBank, "score:default-v1", grant.ReasonWrongAudience},
		{"scope escalation", good, "query:tax.annual_tax_paid", grant.ReasonOutOfScope},
	}
	before, _ := env.d.Platform.AuditLog().Query(ctx, audit.Query{Kind: audit.KindRequestDenied})
	for _, c := range cases {
		// Through the bank's check RPC and through Authorize's status path.
		chk, err := hub.CheckGrant(ctx, env.bank, c.token, "", c.scope)
		if err != nil || chk.GetAllowed() || chk.GetReason() != string(c.want) {
			t.Errorf("%s: check gave %v %v, want %s", c.name, chk, err, c.want)
		}
		_, err = env.d.Platform.Authorize(ctx, c.token, grant.Request{Audience: "bank-a", Scopes: []string{c.scope}})
		if r, _, ok := hub.GrantRefusal(err); !ok || r != c.want || status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: authorize gave %v, want %s", c.name, err, c.want)
		}
	}
	after, _ := env.d.Platform.AuditLog().Query(ctx, audit.Query{Kind: audit.KindRequestDenied})
	if len(after)-len(before) != len(cases) {
		t.Errorf("%d refusals logged, want %d", len(after)-len(before), len(cases))
	}
	// Over the use count: 5 uses, the sixth refused (at the platform).
	one, _ := env.issue(t, func(c *grant.Claims) { c.MaxUses = 2 })
	for i := range 3 {
		_, err := env.d.Platform.Authorize(ctx, one, grant.Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}})
		if (i < 2) != (err == nil) {
			t.Fatalf("use %d: %v", i+1, err)
		}
		if i == 2 {
			if r, _, _ := hub.GrantRefusal(err); r != grant.ReasonOverUseCount {
				t.Fatalf("third use: %v", err)
			}
		}
	}
}

func TestAgentSyncedOnRegistration(t *testing.T) {
	env := startAuthz(t)
	d, ctx := env.d, context.Background()
	tok, claims := env.issue(t, nil)
	if _, err := hub.RevokeGrant(ctx, env.noCert, env.priv, env.uscc, claims.ID); err != nil {
		t.Fatal(err)
	}
	// An agent that joins later gets the directory and the revocations.
	id := d.Issue(t, "courts", pki.RoleProvider)
	a, err := hub.NewAgent(hub.AgentConfig{Identity: id, Table: table(t, "id,cases\na,1\n", ""), DataDir: filepath.Join(d.Dir, "courts-data"), Log: d.Log})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Serve(sctx, lis) }()
	t.Cleanup(func() { cancel(); <-done })
	if _, err := veilv1.NewRegistryClient(d.Conn).AddParty(ctx, &veilv1.AddPartyRequest{Name: "courts", Role: "provider", Address: lis.Addr().String()}); err != nil {
		t.Fatal(err)
	}
	req := grant.Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}}
	if _, err := a.Authorize(ctx, tok, req); grant.ReasonOf(err) != "" || status.Code(err) != codes.PermissionDenied || !strings.HasPrefix(status.Convert(err).Message(), "revoked") {
		t.Fatalf("late agent, revoked grant: %v", err)
	}
	fresh, _ := env.issue(t, nil)
	if _, err := a.Authorize(ctx, fresh, req); err != nil {
		t.Fatalf("late agent, fresh grant: %v", err)
	}
}

func TestJobsAreAudited(t *testing.T) {
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: table(t, csvOf(idRange("E", 0, 40)), "")},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: table(t, csvOf(idRange("E", 20, 60)), "")},
	)
	ctx := context.Background()
	resp, err := veilv1.NewPSIClient(d.Conn).Align(ctx, &veilv1.AlignRequest{Parties: []string{"bank", "tax"}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := d.Platform.AuditLog().Query(ctx, audit.Query{Kind: audit.KindPSIJob})
	if err != nil || len(recs) != 2 {
		t.Fatalf("psi_job entries: %d %v", len(recs), err)
	}
	// One entry when the job started, before any party received anything,
	// and one with the outcome.
	if s := recs[0].Entry; s.JobID != resp.GetJobId() || s.Details["phase"] != hub.JobStarted || s.Details["intersection"] != "" {
		t.Fatalf("psi_job start entry: %+v", s)
	}
	e := recs[1].Entry
	if e.JobID != resp.GetJobId() || e.Details["phase"] != hub.JobFinished || e.Actor != "platform" || len(e.Providers) != 1 || e.Providers[0] != "tax" || e.Details["intersection"] != "20" {
		t.Fatalf("psi_job entry: %+v", e)
	}
	// The provider finds the job when it asks about its own data.
	n := 0
	prov := d.Client(t, d.Issue(t, "tax", pki.RoleProvider))
	if err := hub.AuditStream(ctx, prov, &veilv1.AuthzAuditQueryRequest{Provider: "tax"}, func(uint64, []byte) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("provider query: %d %v", n, err)
	}
}

func TestAuthorizeOnPostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	d := hubtest.Start(t)
	ctx := context.Background()
	p, err := hub.NewPlatform(ctx, hub.PlatformConfig{Identity: d.Operator, DB: dsn, DataDir: t.TempDir(), Log: d.Log, CheckpointEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.DB().Close()
	pub, priv, _ := keys.Generate(nil)
	uscc := testUSCC(t, "91440300MA5ABCDEF")
	if _, err := p.AuditAppend(ctx, audit.Entry{Kind: audit.KindEnterpriseRegistered, Subject: uscc}); err != nil {
		t.Fatal(err)
	}
	// Register in-process (as the demo may), then authorize.
	if _, err := p.RegisterEnterprise(ctx, uscc, pub, false); err != nil {
		t.Fatal(err)
	}
	tok, err := grant.Issue(priv, grant.Claims{Issuer: uscc, Audience: "bank-a", Scopes: []string{"score:m"}, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	req := grant.Request{Audience: "bank-a", Scopes: []string{"score:m"}}
	if _, err := p.Authorize(ctx, tok, req); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Authorize(ctx, tok, req); !strings.HasPrefix(status.Convert(err).Message(), "over_use_count") {
		t.Fatalf("second use: %v", err)
	}
	v, err := note.NewVerifier(p.AuditVerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := p.AuditLog().VerifyStored(ctx, v, nil)
	if err != nil || !rep.OK() || rep.Entries != 4 || rep.CheckpointsChecked < 2 {
		t.Fatalf("verify on PostgreSQL: %v %+v", err, rep)
	}
}

// BenchmarkPlatformAuthorize measures one grant check at the platform on
// SQLite: cached signature check, revocation lookup, use count, audit append.
func BenchmarkPlatformAuthorize(b *testing.B) {
	d := hubtest.Start(b)
	ctx := context.Background()
	pub, priv, _ := keys.Generate(nil)
	c, _ := dataset.USCCCheckChar("91110000MA01ABCDE")
	uscc := "91110000MA01ABCDE" + string(c)
	if _, err := hub.RegisterEnterprise(ctx, d.Conn, uscc, pub, false); err != nil {
		b.Fatal(err)
	}
	tok, _ := grant.Issue(priv, grant.Claims{Issuer: uscc, Audience: "bank-a", Scopes: []string{"score:m"}, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1 << 40})
	req := grant.Request{Audience: "bank-a", Scopes: []string{"score:m"}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Platform.Authorize(ctx, tok, req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAuthorizeBatch(t *testing.T) {
	env := startAuthz(t)
	ctx := context.Background()
	good, _ := env.issue(t, nil)
	other, _ := env.issue(t, func(c *grant.Claims) { c.Audience = "bank-b" })
	before, _ := env.d.Platform.AuditLog().Size(ctx)
	req := grant.Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}}
	gs, refs, err := env.d.Platform.AuthorizeBatch(ctx, []hub.AuthorizeItem{{good, req}, {other, req}, {"junk", req}})
	if err != nil {
		t.Fatal(err)
	}
	if gs[0] == nil || refs[0] != nil || gs[1] != nil || gs[2] != nil {
		t.Fatalf("batch: %v %v", gs, refs)
	}
	if r, _, _ := hub.GrantRefusal(refs[1]); r != grant.ReasonWrongAudience {
		t.Fatalf("batch refusal 1: %v", refs[1])
	}
	if r, _, _ := hub.GrantRefusal(refs[2]); r != grant.ReasonMalformed {
		t.Fatalf("batch refusal 2: %v", refs[2])
	}
	after, _ := env.d.Platform.AuditLog().Size(ctx)
	if after-before != 3 {
		t.Fatalf("%d entries logged for a batch of 3", after-before)
	}
}

// BenchmarkPlatformAuthorizeBatch1000 measures batch checks: 1000 grants,
// one audit transaction.
func BenchmarkPlatformAuthorizeBatch1000(b *testing.B) {
	d := hubtest.Start(b)
	ctx := context.Background()
	pub, priv, _ := keys.Generate(nil)
	c, _ := dataset.USCCCheckChar("91110000MA01ABCDE")
	uscc := "91110000MA01ABCDE" + string(c)
	if _, err := hub.RegisterEnterprise(ctx, d.Conn, uscc, pub, false); err != nil {
		b.Fatal(err)
	}
	items := make([]hub.AuthorizeItem, 1000)
	for i := range items {
		tok, _ := grant.Issue(priv, grant.Claims{Issuer: uscc, Audience: "bank-a", Scopes: []string{"score:m"}, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 1 << 40})
		items[i] = hub.AuthorizeItem{Token: tok, Request: grant.Request{Audience: "bank-a", Scopes: []string{"score:m"}}}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := d.Platform.AuthorizeBatch(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}

// TestNoCertificateRefusedEverywhereElse calls every method of every Veil
// service on the platform without a client certificate: only the three
// enterprise methods may get past the Guard.
func TestNoCertificateRefusedEverywhereElse(t *testing.T) {
	env := startAuthz(t)
	public := map[string]bool{
		veilv1.Authz_RevokeGrant_FullMethodName: true, veilv1.Authz_AuditMine_FullMethodName: true, veilv1.Authz_AuditLogKey_FullMethodName: true,
	}
	refused := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("veil.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				m := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				if public[m] {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := env.noCert.Invoke(ctx, m, &emptypb.Empty{}, &emptypb.Empty{})
				cancel()
				switch status.Code(err) {
				case codes.Unauthenticated:
					refused++
				case codes.Unimplemented: // an agent service, not served by the platform
				default:
					t.Errorf("%s without a certificate: %v", m, err)
				}
			}
		}
		return true
	})
	if refused < 14 {
		t.Fatalf("only %d platform methods refused", refused)
	}
}
