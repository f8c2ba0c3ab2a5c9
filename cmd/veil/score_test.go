package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/modeling/dataset"
)

// TestScoreCommandsEndToEnd runs the bank's commands as a user would:
// keys, single and batch scoring (with bad rows), pre-screen, verify with an
// offline check, query.
func TestScoreCommandsEndToEnd(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var bank, tax strings.Builder
	bank.WriteString("id,y\n")
	tax.WriteString("id,annual_tax_paid,profit\n")
	var ids []string
	for i := 0; i < 120; i++ {
		c17 := fmt.Sprintf("91350100M%08d", i)
		cc, _ := dataset.USCCCheckChar(c17)
		id := c17 + string(cc)
		ids = append(ids, id)
		paid := 100000 + 50000*r.NormFloat64()
		y := 0
		if r.Float64() < 0.3 {
			y = 1
		}
		fmt.Fprintf(&bank, "%s,%d\n", id, y)
		fmt.Fprintf(&tax, "%s,%.0f,%.3f\n", id, paid, r.NormFloat64())
	}
	read := func(s, label string) *dataset.Table {
		tb, err := dataset.ReadCSV(strings.NewReader(s), dataset.Options{IDColumn: "id", LabelColumn: label})
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	taxTab := read(tax.String(), "")
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "lender", Role: pki.RoleBank, Table: read(bank.String(), "y")},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: taxTab})
	ctx := context.Background()
	if _, err := hub.TrainRemote(ctx, d.Conn, hub.TrainSpec{Name: "default-v1", LabelParty: "lender", Parties: []string{"tax"}, LabelOnly: true, Epochs: 3, LearningRate: 0.3, TestFraction: 0.3, Seed: 1}, nil); err != nil {
		t.Fatal(err)
	}
	d.Issue(t, "bank-a", pki.RoleBank)
	dir := t.TempDir()
	grantFile := func(id string, scopes ...string) string {
		pub, priv, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hub.RegisterEnterprise(ctx, d.Conn, id, pub, true); err != nil {
			t.Fatal(err)
		}
		tok, err := grant.Issue(ed25519.PrivateKey(priv), grant.Claims{Issuer: id, Audience: "bank-a", Purpose: "loan", Scopes: scopes, ExpiresAt: time.Now().Add(time.Hour), MaxUses: 5})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, id+".jwt")
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(want int, args ...string) (string, string) {
		t.Helper()
		out, errs, code := runCLI(t, append(args, "--platform", d.PlatformAddr)...)
		if code != want {
			t.Fatalf("veil %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
		}
		return out, errs
	}
	bankTLS := d.TLSDir("bank-a")
	key := filepath.Join(dir, "bankkey")
	if out, _, code := runCLI(t, "bank", "keys", "gen", "--out", key); code != 0 || !strings.Contains(out, "veil-score-ci-n14-q347") {
		t.Fatalf("bank keys gen: %d %s", code, out)
	}
	check(0, "bank", "keys", "register", "--key", key, "--tls-dir", bankTLS)

	g0 := grantFile(ids[0], "score:default-v1", "verify:tax.annual_tax_paid")
	out, _ := check(0, "score", "--model", "default-v1", "--enterprise", ids[0], "--grant", g0, "--key", key, "--tls-dir", bankTLS, "--json")
	var one hub.ScoreOutcome
	if err := json.Unmarshal([]byte(out), &one); err != nil || one.Score == nil || one.Score.Probability <= 0 || one.Score.Probability >= 1 {
		t.Fatalf("score --json: %v %s", err, out)
	}
	// No grant, wrong model: clear errors.
	_, errs := check(exitUsage, "score", "--model", "default-v1", "--enterprise", ids[0], "--key", key, "--tls-dir", bankTLS)
	if !strings.Contains(errs, "no grant") {
		t.Fatalf("no grant: %s", errs)
	}
	_, errs = check(1, "score", "--model", "nope", "--enterprise", ids[0], "--grant", g0, "--key", key, "--tls-dir", bankTLS)
	if !strings.Contains(errs, `"nope"`) {
		t.Fatalf("wrong model: %s", errs)
	}

	// Batch: good rows, a malformed row, a grant for another scope.
	g1 := grantFile(ids[1], "score:default-v1")
	g2 := grantFile(ids[2], "verify:tax.annual_tax_paid")
	batch := filepath.Join(dir, "requests.csv")
	os.WriteFile(batch, []byte("enterprise,grant\n"+ids[0]+","+g0+"\n"+ids[1]+","+g1+"\nonly-one-field\n"+ids[2]+","+g2+"\n"), 0o600)
	outCSV := filepath.Join(dir, "scores.csv")
	_, errs = check(0, "score", "--model", "default-v1", "--batch", batch, "--out", outCSV, "--key", key, "--tls-dir", bankTLS)
	b, _ := os.ReadFile(outCSV)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 5 || !strings.Contains(lines[1], ",ok,") || !strings.Contains(lines[2], ",ok,") || !strings.Contains(lines[3], "malformed row") || !strings.Contains(lines[4], "out_of_scope") {
		t.Fatalf("batch output:\n%s\nstderr: %s", b, errs)
	}
	out, _ = check(0, "prescreen", "--model", "default-v1", "--cutoff", "0.3", "--enterprise", ids[1], "--grant", g1, "--key", key, "--tls-dir", bankTLS)
	if !strings.Contains(out, "PASS") && !strings.Contains(out, "FAIL") {
		t.Fatalf("prescreen: %s", out)
	}

	res := filepath.Join(dir, "result.json")
	out, _ = check(0, "verify", "--provider", "tax", "--field", "annual_tax_paid", "--op", "ge", "--value", "-1e9", "--enterprise", ids[0], "--grant", g0, "--out", res, "--tls-dir", bankTLS)
	if !strings.HasPrefix(out, "YES") {
		t.Fatalf("verify: %s", out)
	}
	out, _, code := runCLI(t, "verify", "--check", res)
	if code != 0 || !strings.Contains(out, "valid signature by tax") {
		t.Fatalf("verify --check: %d %s", code, out)
	}
	var vr map[string]any
	b, _ = os.ReadFile(res)
	json.Unmarshal(b, &vr)
	vr["statement"].(map[string]any)["answer"] = false
	b, _ = json.Marshal(vr)
	os.WriteFile(res, b, 0o600)
	if _, _, code := runCLI(t, "verify", "--check", res); code != exitRefused {
		t.Fatalf("tampered result: exit %d", code)
	}
	// Query needs a query: scope.
	_, errs = check(exitRefused, "query", "--provider", "tax", "--field", "annual_tax_paid", "--enterprise", ids[0], "--grant", g0, "--tls-dir", bankTLS)
	if !strings.Contains(errs, "out_of_scope") {
		t.Fatalf("query without scope: %s", errs)
	}
	g3 := grantFile(ids[3], "query:tax.annual_tax_paid")
	out, _ = check(0, "query", "--provider", "tax", "--field", "annual_tax_paid", "--enterprise", ids[3], "--grant", g3, "--tls-dir", bankTLS)
	row, _ := taxTab.Index(ids[3])
	_ = row
	if !strings.Contains(out, "annual_tax_paid = ") {
		t.Fatalf("query: %s", out)
	}
}
