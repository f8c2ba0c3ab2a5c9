package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/modeling/dataset"
)

// TestAuthzCommandsEndToEnd runs the enterprise, bank and auditor commands
// as a user would, against a real deployment (gRPC, mTLS, SQLite).
func TestAuthzCommandsEndToEnd(t *testing.T) {
	tb, err := dataset.ReadCSV(strings.NewReader("id,annual_tax_paid\na,1\nb,2\n"), dataset.Options{IDColumn: "id"})
	if err != nil {
		t.Fatal(err)
	}
	d := hubtest.Start(t, hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: tb})
	d.Issue(t, "bank-a", pki.RoleBank)
	d.Issue(t, "regulator", pki.RoleAuditor)
	dir := t.TempDir()
	ca := filepath.Join(d.CADir, "ca.crt")
	plat := []string{"--platform", d.PlatformAddr}
	check := func(want int, args ...string) (string, string) {
		t.Helper()
		out, errs, code := runCLI(t, args...)
		if code != want {
			t.Fatalf("veil %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
		}
		return out, errs
	}
	with := func(base []string, more ...string) []string {
		return append(append(append([]string{}, base...), plat...), more...)
	}
	c17 := "91110000MA01ABCDE"
	cc, _ := dataset.USCCCheckChar(c17)
	uscc := c17 + string(cc)
	ent := filepath.Join(dir, "ent")

	check(0, "keys", "gen", "--out", ent)
	check(1, "keys", "gen", "--out", ent) // never overwrites
	check(exitUsage, with([]string{"enterprise", "register", "--tls-dir", d.TLSDir("platform"), "--pubkey", ent + ".pub"}, "--uscc", c17+"Z")...)
	out, _ := check(0, with([]string{"enterprise", "register", "--tls-dir", d.TLSDir("platform"), "--pubkey", ent + ".pub"}, "--uscc", strings.ToLower(uscc))...)
	if !strings.Contains(out, "registered "+uscc) || !strings.Contains(out, "agents updated: tax") {
		t.Fatalf("register: %s", out)
	}
	out, _ = check(0, with([]string{"enterprise", "list", "--tls-dir", d.TLSDir("platform"), "--json"})...)
	if !strings.Contains(out, uscc) {
		t.Fatalf("list: %s", out)
	}
	// A bank may not register enterprises.
	check(exitRefused, with([]string{"enterprise", "register", "--tls-dir", d.TLSDir("bank-a"), "--pubkey", ent + ".pub", "--uscc", uscc})...)

	// Issue offline, inspect.
	check(exitUsage, "grant", "issue", "--key", ent+".key", "--uscc", uscc, "--to", "bank-a", "--purpose", "p", "--scope", "bogus")
	tok, _ := check(0, "grant", "issue", "--key", ent+".key", "--uscc", uscc, "--to", "bank-a", "--purpose", "loan-application",
		"--scope", "score:default-v1", "--scope", "verify:tax.annual_tax_paid", "--ttl", "720h", "--max-uses", "5")
	grantFile := filepath.Join(dir, "grant.jwt")
	os.WriteFile(grantFile, []byte(tok), 0o600)
	out, _ = check(0, "grant", "inspect", grantFile)
	if !strings.Contains(out, "UNVERIFIED") || !strings.Contains(out, "bank-a") {
		t.Fatalf("inspect: %s", out)
	}
	out, _ = check(0, "grant", "inspect", grantFile, "--json")
	var insp struct {
		Claims struct {
			ID      string `json:"jti"`
			MaxUses int64  `json:"max_uses"`
		} `json:"claims"`
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil || insp.Claims.ID == "" || insp.Claims.MaxUses != 5 {
		t.Fatalf("inspect --json: %v %s", err, out)
	}

	// The bank checks it.
	bankCheck := with([]string{"grant", "check", "--tls-dir", d.TLSDir("bank-a"), "--grant", grantFile})
	out, _ = check(0, append(bankCheck, "--scope", "score:default-v1")...)
	if !strings.HasPrefix(out, "allowed: grant "+insp.Claims.ID) || !strings.Contains(out, "0 of 5 uses") {
		t.Fatalf("check: %s", out)
	}
	out, _ = check(exitRefused, append(bankCheck, "--scope", "query:tax.annual_tax_paid")...)
	if !strings.HasPrefix(out, "refused: out_of_scope") {
		t.Fatalf("check out of scope: %s", out)
	}

	// The enterprise pins the log key, revokes without a certificate.
	logKey, _ := check(0, with([]string{"audit", "log-key", "--ca-cert", ca})...)
	logKey = strings.TrimSpace(logKey)
	if logKey != d.Platform.AuditVerifierKey() {
		t.Fatalf("log key %q", logKey)
	}
	keyFile := filepath.Join(dir, "platform.logkey")
	os.WriteFile(keyFile, []byte(logKey+"\n"), 0o644)
	out, _ = check(0, with([]string{"grant", "revoke", "--ca-cert", ca, "--key", ent + ".key", "--grant", grantFile})...)
	if !strings.Contains(out, "revoked grant "+insp.Claims.ID) || !strings.Contains(out, "agents notified: tax") {
		t.Fatalf("revoke: %s", out)
	}
	out, _ = check(0, with([]string{"grant", "revoke", "--ca-cert", ca, "--key", ent + ".key", "--uscc", uscc, "--id", insp.Claims.ID})...)
	if !strings.Contains(out, "already revoked") {
		t.Fatalf("second revoke: %s", out)
	}
	out, _ = check(exitRefused, append(bankCheck, "--scope", "score:default-v1")...)
	if !strings.HasPrefix(out, "refused: revoked") {
		t.Fatalf("check after revoke: %s", out)
	}

	// The provider's own record shows the revocation it verified itself.
	out, _ = check(0, "agent", "usage", "--data-dir", filepath.Join(d.Dir, "tax", "state"), "--json")
	if !strings.Contains(out, `"kind": "grant_revoked"`) || !strings.Contains(out, insp.Claims.ID) {
		t.Fatalf("agent usage: %s", out)
	}

	// audit mine, pinned (file) and unpinned.
	mineArgs := with([]string{"audit", "mine", "--ca-cert", ca, "--key", ent + ".key", "--uscc", uscc})
	out, errs := check(0, append(mineArgs, "--log-key", keyFile, "--json")...)
	var mine struct {
		Pinned  bool `json:"log_key_pinned"`
		Checked int  `json:"proofs_verified"`
		Entries []struct {
			Entry struct {
				Kind string `json:"kind"`
			} `json:"entry"`
			ProofOK bool `json:"proof_ok"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(out), &mine); err != nil {
		t.Fatalf("mine --json: %v\n%s", err, out)
	}
	kinds := map[string]bool{}
	for _, e := range mine.Entries {
		kinds[e.Entry.Kind] = e.ProofOK
	}
	if !mine.Pinned || mine.Checked != len(mine.Entries) || !kinds["enterprise_registered"] || !kinds["grant_revoked"] || !kinds["grant_checked"] || strings.Contains(errs, "not pinned") {
		t.Fatalf("mine: %s\n%s", out, errs)
	}
	t.Setenv("VEIL_LOG_KEY", "")
	_, errs = check(0, mineArgs...)
	if !strings.Contains(errs, "not pinned") {
		t.Fatalf("unpinned mine did not warn: %s", errs)
	}
	// A wrong pinned key is a verification failure.
	badKey := strings.Replace(logKey, "veil-audit/", "veil-audit-x/", 1)
	check(exitMismatch, append(mineArgs, "--log-key", badKey)...)

	// The auditor verifies, saves a checkpoint, queries, exports.
	aud := []string{"--tls-dir", d.TLSDir("regulator"), "--log-key", keyFile}
	cp := filepath.Join(dir, "cp.txt")
	out, _ = check(0, with(append([]string{"audit", "verify"}, aud...), "--save-checkpoint", cp)...)
	if !strings.Contains(out, "OK: the log is complete and unaltered") {
		t.Fatalf("verify: %s", out)
	}
	out, _ = check(0, with(append([]string{"audit", "verify"}, aud...), "--checkpoint", cp, "--json")...)
	var ver struct {
		OK     bool `json:"ok"`
		Report struct {
			SavedConsistent bool   `json:"saved_consistent"`
			Entries         uint64 `json:"entries"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(out), &ver); err != nil || !ver.OK || !ver.Report.SavedConsistent {
		t.Fatalf("verify --json: %v %s", err, out)
	}
	out, _ = check(0, with([]string{"audit", "query", "--tls-dir", d.TLSDir("regulator"), "--subject", uscc, "--kind", "grant_revoked", "--json"})...)
	var q []map[string]any
	if err := json.Unmarshal([]byte(out), &q); err != nil || len(q) != 1 {
		t.Fatalf("query: %v %s", err, out)
	}
	check(exitRefused, with([]string{"audit", "query", "--tls-dir", d.TLSDir("bank-a"), "--subject", uscc})...)
	export := filepath.Join(dir, "log.jsonl")
	check(0, with([]string{"audit", "export", "--tls-dir", d.TLSDir("regulator"), "--out", export})...)
	b, _ := os.ReadFile(export)
	if lines := strings.Count(string(b), "\n"); uint64(lines) != ver.Report.Entries {
		t.Fatalf("export has %d lines, log %d entries", lines, ver.Report.Entries)
	}

	// Tamper with the SQLite file: verify fails and says where.
	var seq int64
	db := d.Platform.DB().SQL
	if err := db.QueryRow(`SELECT seq FROM audit_entries WHERE kind = 'grant_revoked'`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_entries SET body = replace(body, 'grant_revoked', 'grant_reviewed') WHERE seq = ?`, seq); err != nil {
		t.Fatal(err)
	}
	out, errs = check(exitMismatch, with(append([]string{"audit", "verify"}, aud...), "--checkpoint", cp)...)
	if want := "entry " + itoa(seq) + ":"; !strings.Contains(out, want) || !strings.Contains(errs, want) {
		t.Fatalf("tamper not located (want %q):\n%s\n%s", want, out, errs)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
