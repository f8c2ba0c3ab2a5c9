package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"veil/hub"
	"veil/hub/local"
	"veil/hub/pki"
	"veil/modeling/dataset"
)

func writeCSV(t *testing.T, path string, header string, ids []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(header + "\n")
	for i, id := range ids {
		fmt.Fprintf(&b, "%s,%d\n", id, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func seq(prefix string, lo, hi int) []string {
	var out []string
	for i := lo; i < hi; i++ {
		out = append(out, fmt.Sprintf("%s%04d", prefix, i))
	}
	return out
}

func TestLocalPSIJSON(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv"), filepath.Join(dir, "c.csv")
	writeCSV(t, a, "id,x", append(seq("e", 0, 100), "e0001")) // a duplicate
	writeCSV(t, b, "id,y", seq("E", 50, 150))                 // upper-case: IDs are normalised
	writeCSV(t, c, "id,z", seq("e", 60, 70))
	out := filepath.Join(dir, "common.csv")
	for _, proto := range []string{"ecdh", "kkrt"} {
		stdout, errs, code := runCLI(t, "local", "psi", "--party", "a="+a, "--party", "b="+b, "--party", "c="+c, "--id-column", "id", "--protocol", proto, "--out", out, "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", proto, code, errs)
		}
		var res alignJSON
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout)
		}
		if res.Intersection != 10 || res.Sizes["a"] != 100 || res.Sizes["b"] != 100 || res.Sizes["c"] != 10 || res.Seconds <= 0 {
			t.Fatalf("%s: %+v", proto, res)
		}
		got, err := readIDs(out, "id")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(seq("E", 60, 70), ",") {
			t.Fatalf("common ids %v", got)
		}
	}
	if _, errs, code := runCLI(t, "local", "psi", "--party", "a="+a); code != exitUsage {
		t.Fatalf("one party: %d %s", code, errs)
	}
	if _, errs, code := runCLI(t, "local", "psi", "--party", "a="+a, "--party", "b="+filepath.Join(dir, "missing.csv")); code == 0 || !strings.Contains(errs, "missing.csv") {
		t.Fatalf("missing file: %d %s", code, errs)
	}
}

func TestPSICheckCLI(t *testing.T) {
	dir := t.TempDir()
	tb, err := dataset.ReadCSV(strings.NewReader("id,x\nA,1\nB,2\n"), dataset.Options{IDColumn: "id"})
	if err != nil {
		t.Fatal(err)
	}
	listPath := filepath.Join(dir, "dishonest.csv")
	writeCSV(t, listPath, "uscc,case", []string{"E0003", "E0005", "Z9999"})
	dep, err := local.Start(context.Background(), filepath.Join(dir, "dep"), discardLogger(), local.AgentSpec{
		Name: "courts", Role: pki.RoleProvider, Table: tb,
		Configure: func(a *hub.Agent) error {
			return a.AddList(context.Background(), fileList("dishonest", listPath, "uscc"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dep.Stop()
	if _, err := dep.Issue("bank-a", pki.RoleBank); err != nil {
		t.Fatal(err)
	}
	apps := filepath.Join(dir, "applicants.csv")
	writeCSV(t, apps, "uscc,amount", seq("E", 0, 8))
	out := filepath.Join(dir, "matches.csv")
	args := []string{"psi", "check", "--platform", dep.PlatformAddr, "--tls-dir", dep.TLSDir("bank-a"), "--provider", "courts", "--list", "dishonest", "--ids", apps}
	stdout, errs, code := runCLI(t, append(args, "--out", out, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Matches int    `json:"matches"`
		JobID   string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Matches != 2 || res.JobID == "" {
		t.Fatalf("%v %s", err, stdout)
	}
	got, _ := readIDs(out, "uscc")
	if strings.Join(got, ",") != "E0003,E0005" {
		t.Fatalf("matches %v", got)
	}
	// The list file changes: the provider re-reads and re-encodes it.
	writeCSV(t, listPath, "uscc,case", []string{"E0001"})
	stdout, errs, code = runCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, "1 of 8 IDs") || !strings.Contains(stdout, "E0001") {
		t.Fatalf("after list change: %d %s %s", code, stdout, errs)
	}
	// The operator may not run a bank's list check.
	_, errs, code = runCLI(t, "psi", "check", "--platform", dep.PlatformAddr, "--tls-dir", dep.TLSDir("platform"), "--provider", "courts", "--list", "dishonest", "--ids", apps)
	if code != exitRefused || !strings.Contains(errs, "may not call") {
		t.Fatalf("operator list check: %d %s", code, errs)
	}
}
