package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestDemoJSON(t *testing.T) {
	out, errs, code := runCLI(t, "demo", "--json")
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, errs, out)
	}
	var sum demoSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("demo --json output is not JSON: %v\n%s", err, out)
	}
	if !sum.OK {
		t.Fatalf("demo not ok: %s", sum.Error)
	}
	seen := map[string]bool{}
	for _, s := range sum.Steps {
		seen[s.Step] = true
	}
	for _, want := range []string{"pki", "platform", "agents", "register", "datasets", "psi-align", "psi-list-check", "train", "bank-key", "grant", "score", "verify", "revoke", "refused", "audit-mine", "audit-verify", "audit-tamper", "shutdown"} {
		if !seen[want] {
			t.Errorf("demo step %q missing; steps: %+v", want, sum.Steps)
		}
	}
	if _, err := os.Stat(sum.WorkDir); !os.IsNotExist(err) {
		t.Errorf("temporary work dir %s left behind", sum.WorkDir)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"no-such-command"},
		{"pki", "issue", "--name", "x"},
		{"party", "list", "--bogus"},
		{"pki", "issue", "--ca", "c", "--name", "x", "--role", "wizard", "--out", "o"},
	} {
		_, errs, code := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errs)
		}
		if !strings.HasPrefix(errs, "veil: ") {
			t.Errorf("%v: error not reported: %q", args, errs)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if _, errs, code := runCLI(t, "pki", "init", "--dir", ca); code != 0 {
		t.Fatal(errs)
	}
	cfg := filepath.Join(dir, "veil.conf")
	os.WriteFile(cfg, []byte("# issue defaults\nca = "+ca+"\nrole: provider\nname = fromfile\n"), 0o600)
	t.Setenv("VEIL_NAME", "fromenv")
	out := filepath.Join(dir, "out")
	if _, errs, code := runCLI(t, "pki", "issue", "--config", cfg, "--out", out); code != 0 {
		t.Fatal(errs)
	}
	b, _ := os.ReadFile(filepath.Join(out, "party.crt"))
	if len(b) == 0 {
		t.Fatal("no certificate written")
	}
	// env beats file; a flag beats env.
	stdout, _, _ := runCLI(t, "pki", "issue", "--config", cfg, "--out", filepath.Join(dir, "o2"), "--name", "fromflag")
	if !strings.Contains(stdout, "issued fromflag") {
		t.Fatalf("flag did not win: %s", stdout)
	}
	stdout, _, _ = runCLI(t, "pki", "issue", "--config", cfg, "--out", filepath.Join(dir, "o3"))
	if !strings.Contains(stdout, "issued fromenv") {
		t.Fatalf("env did not beat file: %s", stdout)
	}
	if _, errs, code := runCLI(t, "pki", "issue", "--config", filepath.Join(dir, "missing.conf")); code != exitUsage || !strings.Contains(errs, "config file") {
		t.Fatalf("missing config: %d %s", code, errs)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestAgentServeNameMustMatchCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if _, errs, code := runCLI(t, "pki", "init", "--dir", ca); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := runCLI(t, "pki", "issue", "--ca", ca, "--name", "tax", "--role", "provider", "--out", filepath.Join(dir, "tax")); code != 0 {
		t.Fatal(errs)
	}
	data := filepath.Join(dir, "tax.csv")
	os.WriteFile(data, []byte("uscc,x\nA,1\n"), 0o600)
	_, errs, code := runCLI(t, "agent", "serve", "--listen", "127.0.0.1:0", "--name", "social", "--tls-dir", filepath.Join(dir, "tax"), "--data", data)
	if code != exitUsage || !strings.Contains(errs, `which is for "tax"`) {
		t.Fatalf("exit %d: %s", code, errs)
	}
	_, errs, code = runCLI(t, "agent", "serve", "--listen", "127.0.0.1:0", "--tls-dir", filepath.Join(dir, "tax"), "--data", filepath.Join(dir, "missing.csv"))
	if code == 0 || !strings.Contains(errs, "missing.csv") {
		t.Fatalf("missing data: exit %d: %s", code, errs)
	}
}

// TestEveryCommandTeaches checks that every runnable command says what it
// does and gives an example in its --help.
func TestEveryCommandTeaches(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if sub.Short == "" {
				t.Errorf("%s has no short description", sub.CommandPath())
			}
			if sub.Runnable() {
				n++
				if strings.TrimSpace(sub.Example) == "" {
					t.Errorf("%s has no example", sub.CommandPath())
				}
			}
			walk(sub)
		}
	}
	walk(newRootCmd())
	if n < 30 {
		t.Fatalf("only %d runnable commands found", n)
	}
}
