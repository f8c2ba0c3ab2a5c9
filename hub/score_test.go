package hub_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/authz/audit"
	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/score"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

type scoreEnv struct {
	d       *hubtest.Deployment
	ids     []string
	privs   map[string]ed25519.PrivateKey
	bank    *grpc.ClientConn
	bankKey *score.BankKey
	model   *hub.Model
	raw     map[string]map[string]float64 // enterprise -> tax column -> raw value
	tabs    map[string]*dataset.Table
}

// startScoring trains a label-only model (bank labels; tax and social
// features), registers a few enterprises' keys and the bank's scoring key.
func startScoring(t *testing.T) *scoreEnv {
	t.Helper()
	const n = 240
	r := rand.New(rand.NewPCG(11, 12))
	var bank, tax, social strings.Builder
	bank.WriteString("id,y\n")
	tax.WriteString("id,annual_tax_paid,profit\n")
	social.WriteString("id,staff,arrears\n")
	env := &scoreEnv{privs: map[string]ed25519.PrivateKey{}, raw: map[string]map[string]float64{}}
	for i := 0; i < n; i++ {
		id := testUSCC(t, fmt.Sprintf("91110000MA%07d", i))
		env.ids = append(env.ids, id)
		paid, prof, staff, arr := 50000+40000*r.NormFloat64(), r.NormFloat64(), r.NormFloat64(), r.NormFloat64()
		z := -0.5 + 1.5*(paid-50000)/40000 - 0.8*prof + 0.6*staff - 1.0*arr
		y := 0
		if r.Float64() < 1/(1+math.Exp(-z)) {
			y = 1
		}
		fmt.Fprintf(&bank, "%s,%d\n", id, y)
		if i < n-5 { // tax misses the last 5 enterprises
			fmt.Fprintf(&tax, "%s,%.2f,%.4f\n", id, paid, prof)
			env.raw[id] = map[string]float64{"annual_tax_paid": math.Round(paid*100) / 100}
		}
		fmt.Fprintf(&social, "%s,%.4f,%.4f\n", id, staff, arr)
	}
	env.tabs = map[string]*dataset.Table{"bank": table(t, bank.String(), "y"), "tax": table(t, tax.String(), ""), "social": table(t, social.String(), "")}
	env.d = hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: env.tabs["bank"]},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: env.tabs["tax"]},
		hubtest.AgentSpec{Name: "social", Role: pki.RoleProvider, Table: env.tabs["social"]},
	)
	ctx := context.Background()
	m, err := hub.TrainRemote(ctx, env.d.Conn, hub.TrainSpec{Name: "default-v1", LabelParty: "bank", Parties: []string{"tax", "social"}, LabelOnly: true,
		Epochs: 5, LearningRate: 0.5, TestFraction: 0.3, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.model = m
	if strings.Join(m.FeatureParties, ",") != "tax,social" && strings.Join(m.FeatureParties, ",") != "social,tax" {
		t.Fatalf("feature parties %v", m.FeatureParties)
	}
	for _, id := range append(env.ids[:6], env.ids[n-1]) {
		pub, priv, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hub.RegisterEnterprise(ctx, env.d.Conn, id, pub, false); err != nil {
			t.Fatal(err)
		}
		env.privs[id] = priv
	}
	env.bank = env.d.Client(t, env.d.Issue(t, "bank-a", pki.RoleBank))
	params, err := he.ByName(score.DefaultParamSet)
	if err != nil {
		t.Fatal(err)
	}
	if env.bankKey, err = score.GenerateBankKey(params); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.RegisterBankKey(ctx, env.bank, env.bankKey); err != nil {
		t.Fatal(err)
	}
	return env
}

func (e *scoreEnv) grant(t *testing.T, id string, mutate func(*grant.Claims), scopes ...string) string {
	t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"score:default-v1"}
	}
	c := grant.Claims{Issuer: id, Audience: "bank-a", Purpose: "loan-application", Scopes: scopes, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 10}
	if mutate != nil {
		mutate(&c)
	}
	tok, err := grant.Issue(e.privs[id], c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// plainLogit computes the model's logit from every party's saved part and
// its own preprocessed table (what the encrypted path must reproduce).
func (e *scoreEnv) plainLogit(t *testing.T, id string) float64 {
	t.Helper()
	var z float64
	for _, p := range e.model.Parties {
		part, err := e.d.Agents[p.Name].ModelPart(e.model.Name, e.model.Version)
		if err != nil {
			t.Fatal(err)
		}
		z += part.Intercept
		if len(part.Weights) == 0 {
			continue
		}
		tab := e.tabs[p.Name]
		row, ok := tab.Index(id)
		if !ok {
			t.Fatalf("%s lacks %s", p.Name, id)
		}
		col := map[string]int{}
		for j, f := range tab.FeatureNames {
			col[f] = j
		}
		for k, f := range part.Features {
			z += part.Weights[k] * tab.Columns[col[f]][row]
		}
	}
	return z
}

func TestScoreEndToEnd(t *testing.T) {
	env := startScoring(t)
	ctx := context.Background()
	ids := env.ids
	expired := env.grant(t, ids[4], func(c *grant.Claims) {
		c.IssuedAt, c.NotBefore, c.ExpiresAt = time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	})
	rows := []hub.ScoreRow{
		{Enterprise: ids[0], Grant: env.grant(t, ids[0], nil)},
		{Enterprise: ids[1], Grant: env.grant(t, ids[1], nil)},
		{Enterprise: ids[2], Grant: env.grant(t, ids[2], nil)},
		{Enterprise: ids[3], Grant: env.grant(t, ids[3], nil, "verify:tax.annual_tax_paid")}, // out of scope
		{Enterprise: ids[4], Grant: expired},
		{Enterprise: ids[5], Grant: ""},                                          // malformed row
		{Enterprise: ids[len(ids)-1], Grant: env.grant(t, ids[len(ids)-1], nil)}, // unknown at tax
	}
	before := countAudit(t, env.d.Platform.AuditLog())
	out, sum, err := hub.ScoreRemote(ctx, env.bank, env.bankKey, rows, hub.ScoreOptions{Model: "default-v1"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scored != 3 || sum.Refused != 4 {
		t.Fatalf("scored %d refused %d: %+v", sum.Scored, sum.Refused, out)
	}
	for i := 0; i < 3; i++ {
		z := env.plainLogit(t, ids[i])
		if out[i].Score == nil || math.Abs(out[i].Score.Logit-z) > 1e-3 {
			t.Fatalf("row %d: got %+v, plaintext logit %g", i, out[i].Score, z)
		}
		if math.Abs(out[i].Score.Probability-score.Sigmoid(z)) > 1e-3 {
			t.Fatalf("row %d: probability %g", i, out[i].Score.Probability)
		}
	}
	wantReason := map[int]string{3: "out_of_scope", 4: "expired", 5: "malformed row", 6: "unknown enterprise at tax"}
	for i, w := range wantReason {
		if out[i].Score != nil || !strings.Contains(out[i].Refused, w) {
			t.Errorf("row %d: refused %q by %q, want %q", i, out[i].Refused, out[i].RefusedBy, w)
		}
	}
	// Every decision and the job are in the audit log: 6 platform grant
	// decisions (the malformed row never reaches a check) + the job.
	if got := countAudit(t, env.d.Platform.AuditLog()) - before; got < 7 {
		t.Errorf("%d audit entries for the request, want >= 7", got)
	}

	// Pre-screen: pass/fail agrees with the plaintext PD away from the cutoff.
	prow := []hub.ScoreRow{{Enterprise: ids[0], Grant: env.grant(t, ids[0], nil)}, {Enterprise: ids[1], Grant: env.grant(t, ids[1], nil)}, {Enterprise: ids[2], Grant: env.grant(t, ids[2], nil)}}
	cutoff := 0.3
	pout, _, err := hub.ScoreRemote(ctx, env.bank, env.bankKey, prow, hub.ScoreOptions{Model: "default-v1", Prescreen: true, Cutoff: cutoff, Domain: 8})
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range pout {
		if o.Prescreen == nil || o.Score != nil {
			t.Fatalf("prescreen row %d: %+v", i, o)
		}
		z := env.plainLogit(t, ids[i])
		if math.Abs(z-score.Logit(cutoff)) > 0.3 && o.Prescreen.Pass != (score.Sigmoid(z) < cutoff) {
			t.Errorf("prescreen row %d: pass=%v, PD %.3f, cutoff %.2f", i, o.Prescreen.Pass, score.Sigmoid(z), cutoff)
		}
	}

	// Bad inputs: wrong model, no bank key of the right parameters.
	_, _, err = hub.ScoreRemote(ctx, env.bank, env.bankKey, rows[:1], hub.ScoreOptions{Model: "nope"})
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "nope") {
		t.Errorf("wrong model: %v", err)
	}
	small, _ := he.ByName(he.ScoringSmallSetName)
	wrongKey, _ := score.GenerateBankKey(small)
	bank2 := env.d.Client(t, env.d.Issue(t, "bank-b", pki.RoleBank))
	if _, err := hub.RegisterBankKey(ctx, bank2, wrongKey); err != nil {
		t.Fatal(err)
	}
	_, _, err = hub.ScoreRemote(ctx, bank2, wrongKey, rows[:1], hub.ScoreOptions{Model: "default-v1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "wrong parameters") {
		t.Errorf("bank key with wrong parameters: %v", err)
	}
	// Only banks may score.
	_, err = veilv1.NewScoringClient(env.d.Conn).Score(ctx, &veilv1.ScoreRequest{Model: "default-v1", Items: []*veilv1.ScoreItem{{Enterprise: ids[0], Grant: rows[0].Grant}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator scored: %v", err)
	}
}

func countAudit(t *testing.T, l *audit.Log) int {
	t.Helper()
	n, err := l.Size(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestVerifyAndQuery(t *testing.T) {
	env := startScoring(t)
	ctx := context.Background()
	id := env.ids[0]
	paid := env.raw[id]["annual_tax_paid"]
	tok := env.grant(t, id, nil, "verify:tax.annual_tax_paid")
	for _, c := range []struct {
		op   string
		v    float64
		want bool
	}{{"ge", paid - 1, true}, {"lt", paid - 1, false}, {"le", paid + 1, true}, {"gt", paid + 1, false}} {
		res, err := hub.VerifyRemote(ctx, env.bank, &veilv1.VerifyRequest{Provider: "tax", Field: "annual_tax_paid", Op: c.op, Value: c.v, Enterprise: id, Grant: tok})
		if err != nil {
			t.Fatal(err)
		}
		if res.Statement.Answer != c.want || res.Statement.Provider != "tax" || res.Statement.Bank != "bank-a" {
			t.Errorf("%s %v: %+v", c.op, c.v, res.Statement)
		}
	}
	// The verify scope does not allow a query; a query scope does.
	_, err := veilv1.NewScoringClient(env.bank).Query(ctx, &veilv1.QueryRequest{Provider: "tax", Field: "annual_tax_paid", Enterprise: id, Grant: tok})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "out_of_scope") {
		t.Fatalf("query under a verify scope: %v", err)
	}
	qt := env.grant(t, id, nil, "query:tax.annual_tax_paid")
	q, err := veilv1.NewScoringClient(env.bank).Query(ctx, &veilv1.QueryRequest{Provider: "tax", Field: "annual_tax_paid", Enterprise: id, Grant: qt})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(q.GetValue()-paid) > 1e-6*math.Abs(paid) {
		t.Fatalf("query value %v, want %v", q.GetValue(), paid)
	}
	// Without a grant: a clear error.
	_, err = veilv1.NewScoringClient(env.bank).Verify(ctx, &veilv1.VerifyRequest{Provider: "tax", Field: "annual_tax_paid", Op: "ge", Value: 1, Enterprise: id})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "no grant") {
		t.Fatalf("verify without grant: %v", err)
	}
}
