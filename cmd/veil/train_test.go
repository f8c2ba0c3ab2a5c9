package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/modeling/dataset"
)

// writeTrainCSVs writes a bank file (label, a text column, a numeric column
// with missing values) and a tax file over overlapping IDs.
func writeTrainCSVs(t *testing.T, dir string, n int) (bank, tax string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var b, x strings.Builder
	b.WriteString("id,y,sector,age\n")
	x.WriteString("id,revenue,profit\n")
	for i := 0; i < n; i++ {
		sector := []string{"retail", "farm", "tech"}[r.IntN(3)]
		age, rev, prof := r.NormFloat64(), r.NormFloat64(), r.NormFloat64()
		z := -0.5 + 0.7*age + 1.3*rev - 0.8*prof
		if sector == "farm" {
			z -= 0.6
		}
		y := 0
		if r.Float64() < 1/(1+math.Exp(-z)) {
			y = 1
		}
		ageCell := fmt.Sprintf("%.3f", age)
		if i%11 == 0 {
			ageCell = "NA"
		}
		if i >= 5 {
			fmt.Fprintf(&b, "E%04d,%d,%s,%s\n", i, y, sector, ageCell)
		}
		if i < n-7 {
			fmt.Fprintf(&x, "E%04d,%.3f,%.3f\n", i, rev, prof)
		}
	}
	bank, tax = filepath.Join(dir, "bank.csv"), filepath.Join(dir, "tax.csv")
	if err := os.WriteFile(bank, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tax, []byte(x.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return bank, tax
}

func TestLocalTrainJSON(t *testing.T) {
	dir := t.TempDir()
	bank, tax := writeTrainCSVs(t, dir, 400)
	out, errs, code := runCLI(t, "local", "train", "--party", "bank="+bank, "--party", "tax="+tax, "--label-party", "bank",
		"--label", "y", "--id-column", "id", "--epochs", "10", "--batch-size", "100", "--test-fraction", "0.3", "--seed", "7", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	var res localTrainResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if res.RowsAligned != 388 || res.TestRows != 116 || res.Epochs != 10 || res.Iterations != 30 || res.Seconds <= 0 {
		t.Errorf("result %+v", res)
	}
	if res.AUC < 0.7 || math.Abs(res.AUC-res.PlaintextAUC) > 0.005 || math.Abs(res.KS-res.PlaintextKS) > 0.02 || res.MaxWeightDiff > 1e-3 {
		t.Errorf("federated AUC %.4f KS %.4f vs plaintext %.4f %.4f (weights differ by %g)", res.AUC, res.KS, res.PlaintextAUC, res.PlaintextKS, res.MaxWeightDiff)
	}
	// sector one-hot (3) + age: the text column and the missing values were
	// preprocessed at the bank's agent.
	if res.Features["bank"] != 4 || res.Features["tax"] != 2 {
		t.Errorf("features %v", res.Features)
	}
	if errs != "" {
		t.Errorf("--json printed progress: %q", errs)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"local", "train", "--party", "bank=" + bank},
		{"local", "train", "--party", "bank=" + bank, "--party", "tax=" + tax, "--label", "y"},
		{"local", "train", "--party", "bank=" + bank, "--party", "tax=" + tax, "--label-party", "ghost", "--label", "y"},
		{"local", "train", "--party", "bank=" + bank, "--party", "tax=" + tax, "--label-party", "bank", "--label", "y", "--test-fraction", "1"},
		{"train", "--tls-dir", dir, "--name", "x"},
	} {
		if _, errs, code := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d (%s)", args, code, errs)
		}
	}
}

func TestTrainAndModelCommands(t *testing.T) {
	dir := t.TempDir()
	bankCSV, taxCSV := writeTrainCSVs(t, dir, 300)
	load := func(path, label string) *dataset.Table {
		tb, err := dataset.LoadCSV(path, dataset.Options{IDColumn: "id", LabelColumn: label})
		if err != nil {
			t.Fatal(err)
		}
		return tb
	}
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: load(bankCSV, "y")},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: load(taxCSV, "")},
	)
	tls := d.TLSDir("platform")
	client := []string{"--platform", d.PlatformAddr, "--tls-dir", tls}
	args := append([]string{"train", "--name", "sme", "--label-party", "bank", "--parties", "tax", "--epochs", "5", "--json"}, client...)
	out, errs, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("train exit %d: %s\n%s", code, errs, out)
	}
	var m hub.Model
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("train --json: %v\n%s", err, out)
	}
	if m.Name != "sme" || m.Version != 1 || m.AUC < 0.6 || len(m.Parties) != 2 {
		t.Fatalf("model %+v", m)
	}
	// Without --json: a human summary, progress on stderr (not a terminal here).
	args = append([]string{"train", "--name", "sme", "--label-party", "bank", "--parties", "tax", "--epochs", "2"}, client...)
	out, errs, code = runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "model sme version 2 registered") || !strings.Contains(errs, "iteration 2/2") {
		t.Fatalf("train exit %d:\n%s\n%s", code, out, errs)
	}

	out, _, code = runCLI(t, append([]string{"model", "list", "--json"}, client...)...)
	var list []hub.Model
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Version != 2 {
		t.Fatalf("model list: %d %s", code, out)
	}
	out, _, code = runCLI(t, append([]string{"model", "show", "sme", "--version", "1"}, client...)...)
	for _, want := range []string{"version 1", "sector=", "label holder and features", "must be online", "revenue", "learning rate"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("model show lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	if strings.Contains(strings.ToLower(out), "weight") {
		t.Errorf("model show mentions weights:\n%s", out)
	}
	report := filepath.Join(dir, "report.html")
	if _, errs, code := runCLI(t, append([]string{"model", "report", "sme", "--out", report}, client...)...); code != 0 {
		t.Fatalf("model report exit %d: %s", code, errs)
	}
	html, err := os.ReadFile(report)
	if err != nil || !strings.Contains(string(html), "data:image/png;base64,") {
		t.Fatalf("report: %v (%d bytes)", err, len(html))
	}
	if _, errs, code := runCLI(t, append([]string{"model", "show", "nope"}, client...)...); code != exitError || !strings.Contains(errs, "not found") {
		t.Errorf("unknown model: exit %d %s", code, errs)
	}
	// The saved parts at the agents.
	part, err := d.Agents["tax"].ModelPart("sme", 0)
	if err != nil || part.Version != 2 || len(part.Weights) != 2 || part.Transform == nil {
		t.Fatalf("tax part: %+v %v", part, err)
	}
}
