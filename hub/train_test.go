package hub_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/hub"
	"veil/hub/hubtest"
	"veil/hub/pki"
	"veil/modeling/dataset"
	"veil/modeling/lr"
	"veil/modeling/metrics"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

// trainTables builds three parties' CSV tables over overlapping IDs: the
// bank has labels, a text column and a numeric column with missing values;
// tax and social have numeric features. The label follows a logistic model
// of all of them.
func trainTables(t *testing.T, n int) map[string]*dataset.Table {
	r := rand.New(rand.NewPCG(5, 6))
	var bank, tax, social strings.Builder
	bank.WriteString("id,y,sector,age\n")
	tax.WriteString("id,revenue,profit,vat\n")
	social.WriteString("id,staff,arrears\n")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("E%05d", i)
		sector := []string{"retail", "farm", "tech"}[r.IntN(3)]
		age, rev, prof, vat, staff, arr := r.NormFloat64(), r.NormFloat64(), r.NormFloat64(), r.NormFloat64(), r.NormFloat64(), r.NormFloat64()
		z := -0.8 + 0.6*age + 1.2*rev - 0.9*prof + 0.3*vat + 0.7*staff - 1.1*arr
		if sector == "tech" {
			z += 0.5
		}
		y := 0
		if r.Float64() < 1/(1+math.Exp(-z)) {
			y = 1
		}
		ageCell := fmt.Sprintf("%.4f", age)
		if i%17 == 0 {
			ageCell = ""
		}
		if i < n-20 { // the bank misses the last 20 enterprises
			fmt.Fprintf(&bank, "%s,%d,%s,%s\n", id, y, sector, ageCell)
		}
		if i >= 10 { // tax misses the first 10
			fmt.Fprintf(&tax, "%s,%.4f,%.4f,%.4f\n", id, rev, prof, vat)
		}
		fmt.Fprintf(&social, "%s,%.4f,%.4f\n", id, staff, arr)
	}
	return map[string]*dataset.Table{
		"bank":   table(t, bank.String(), "y"),
		"tax":    table(t, tax.String(), ""),
		"social": table(t, social.String(), ""),
	}
}

func startTrainDeployment(t *testing.T, n int) (*hubtest.Deployment, map[string]*dataset.Table) {
	tabs := trainTables(t, n)
	d := hubtest.Start(t,
		hubtest.AgentSpec{Name: "bank", Role: pki.RoleBank, Table: tabs["bank"]},
		hubtest.AgentSpec{Name: "tax", Role: pki.RoleProvider, Table: tabs["tax"]},
		hubtest.AgentSpec{Name: "social", Role: pki.RoleProvider, Table: tabs["social"]},
	)
	return d, tabs
}

// partWeights returns every party's saved weights (label holder first,
// then the intercept last).
func partWeights(t *testing.T, d *hubtest.Deployment, m *hub.Model) []float64 {
	t.Helper()
	var w []float64
	var b float64
	for _, p := range m.Parties {
		part, err := d.Agents[p.Name].ModelPart(m.Name, m.Version)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(part.Features, ",") != strings.Join(p.Features, ",") {
			t.Fatalf("%s: part features %v, registry %v", p.Name, part.Features, p.Features)
		}
		w = append(w, part.Weights...)
		b += part.Intercept
	}
	return append(w, b)
}

func TestTrainOverGRPCMatchesPlaintext(t *testing.T) {
	d, tabs := startTrainDeployment(t, 400)
	ctx := context.Background()
	spec := hub.TrainSpec{Name: "credit", LabelParty: "bank", Parties: []string{"tax", "social"}, Epochs: 8, BatchSize: 128,
		LearningRate: 0.5, L2: 0.001, TestFraction: 0.3, Seed: 7}
	var events []hub.Progress
	m, err := hub.TrainRemote(ctx, d.Conn, spec, func(p hub.Progress) { events = append(events, p) })
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 1 || m.RowsAligned != 370 || m.TrainRows+m.TestRows != 370 || m.TestRows != 111 {
		t.Fatalf("model %s v%d rows %d/%d/%d", m.Name, m.Version, m.RowsAligned, m.TrainRows, m.TestRows)
	}
	if !m.LabelIsFeatureParty || len(m.FeatureParties) != 3 || m.Parties[0].Role != "label holder and features" {
		t.Errorf("label holder's features not recorded: %+v", m.Parties[0])
	}
	if m.Parties[0].Features[0] != "sector=farm" && !strings.Contains(strings.Join(m.Parties[0].Features, ","), "sector=") {
		t.Errorf("one-hot features missing: %v", m.Parties[0].Features)
	}
	var trainEvents int
	last := 0
	for _, e := range events {
		if e.Phase == "train" {
			trainEvents++
			if e.Iteration != last+1 || e.Iterations != 24 || !(e.Loss > 0) {
				t.Fatalf("progress event %+v after iteration %d", e, last)
			}
			last = e.Iteration
		}
	}
	if trainEvents != m.Iterations || m.Iterations != 24 {
		t.Errorf("%d train events, %d iterations", trainEvents, m.Iterations)
	}

	// The same algorithm, split and hyperparameters in plaintext.
	ids, err := d.Agents["bank"].Alignment(m.AlignJobID)
	if err != nil {
		t.Fatal(err)
	}
	trainIdx, testIdx, err := hub.SplitRows(len(ids), 0.3, 7)
	if err != nil {
		t.Fatal(err)
	}
	var all [][]float64
	var y []float64
	for _, name := range []string{"bank", "tax", "social"} {
		sel, err := tabs[name].Select(ids)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sel.Columns...)
		if name == "bank" {
			y = sel.Labels
		}
	}
	pickRows := func(cols [][]float64, rows []int) [][]float64 {
		out := make([][]float64, len(cols))
		for j, c := range cols {
			for _, i := range rows {
				out[j] = append(out[j], c[i])
			}
		}
		return out
	}
	plain, err := lr.TrainPlaintext(ctx, pickRows(all, trainIdx), pickRows([][]float64{y}, trainIdx)[0], spec.Config())
	if err != nil {
		t.Fatal(err)
	}
	got := partWeights(t, d, m)
	want := append(append([]float64(nil), plain.Weights...), plain.Intercept)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-3 {
			t.Fatalf("weight %d: federated %g, plaintext %g", i, got[i], want[i])
		}
	}
	plainAUC, _ := metrics.AUC(plain.Logits(pickRows(all, testIdx)), pickRows([][]float64{y}, testIdx)[0])
	if math.Abs(plainAUC-m.AUC) > 0.005 || m.AUC < 0.75 {
		t.Errorf("federated test AUC %.4f, plaintext %.4f", m.AUC, plainAUC)
	}
	if len(m.Evaluation.ROC) < 10 || len(m.Evaluation.Histogram.Good) == 0 || m.KS <= 0 {
		t.Errorf("evaluation incomplete: %d ROC points, KS %g", len(m.Evaluation.ROC), m.KS)
	}

	// The registry over gRPC: a re-train bumps the version.
	spec.Epochs = 2
	m2, err := hub.TrainRemote(ctx, d.Conn, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Version != 2 {
		t.Errorf("re-train got version %d", m2.Version)
	}
	cl := veilv1.NewTrainingClient(d.Conn)
	list, err := cl.ListModels(ctx, &veilv1.ListModelsRequest{})
	if err != nil || len(list.GetModels()) != 1 || list.GetModels()[0].GetVersion() != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	rec, err := cl.GetModel(ctx, &veilv1.GetModelRequest{Name: "credit", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	back, err := hub.ModelFromRecord(rec)
	if err != nil || back.AUC != m.AUC || back.JobID != m.JobID {
		t.Fatalf("get v1: %+v %v", back, err)
	}
	if strings.Contains(rec.GetModelJson(), "weights") {
		t.Error("the registry record carries weights")
	}
	if latest, err := d.Platform.Model(ctx, "credit"); err != nil || latest.Version != 2 {
		t.Fatalf("Platform.Model: %+v %v", latest, err)
	}
	if _, err := cl.GetModel(ctx, &veilv1.GetModelRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown model: %v", err)
	}
	// Bad specs are refused before anything runs.
	for _, bad := range []hub.TrainSpec{
		{Name: "x", LabelParty: "bank"},
		{Name: "../x", LabelParty: "bank", Parties: []string{"tax"}},
		{Name: "x", LabelParty: "bank", Parties: []string{"bank"}},
		{Name: "x", LabelParty: "bank", Parties: []string{"ghost"}},
		{Name: "x", LabelParty: "bank", Parties: []string{"tax"}, TestFraction: 1.5},
	} {
		if _, err := hub.TrainRemote(ctx, d.Conn, bad, nil); err == nil {
			t.Errorf("spec %+v accepted", bad)
		}
	}
}

func TestTrainResumesAfterAgentRestart(t *testing.T) {
	d, _ := startTrainDeployment(t, 300)
	ctx := context.Background()
	d.Platform.SetTrainRetryWindow(30 * time.Second)
	spec := hub.TrainSpec{Name: "steady", LabelParty: "bank", Parties: []string{"tax", "social"}, Epochs: 4, BatchSize: 64,
		LearningRate: 0.5, L2: 0.001, TestFraction: 0.3, Seed: 3}
	ref, err := d.Platform.Train(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Same job again; the tax agent dies after iteration 6 and comes back
	// 1.5 s later with the same identity, table and data directory.
	spec.Name = "restarted"
	var wg sync.WaitGroup
	var restartErr error
	stopped := false
	var phases []string
	m, err := d.Platform.Train(ctx, spec, func(p hub.Progress) {
		phases = append(phases, p.Phase)
		if p.Phase == "train" && p.Iteration == 6 && !stopped {
			stopped = true
			if err := d.StopAgent("tax"); err != nil {
				t.Error(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(1500 * time.Millisecond)
				restartErr = d.StartAgent("tax")
			}()
		}
	})
	wg.Wait()
	if restartErr != nil {
		t.Fatal(restartErr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !stopped || m.Resumes < 1 {
		t.Fatalf("the job did not resume (stopped %v, resumes %d, phases %v)", stopped, m.Resumes, phases)
	}
	if m.Iterations != ref.Iterations {
		t.Errorf("iterations %d, uninterrupted %d", m.Iterations, ref.Iterations)
	}
	a, b := partWeights(t, d, ref), partWeights(t, d, m)
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-4 {
			t.Fatalf("weight %d: resumed %g, uninterrupted %g", i, b[i], a[i])
		}
	}
	if math.Abs(m.AUC-ref.AUC) > 1e-3 {
		t.Errorf("AUC resumed %g, uninterrupted %g", m.AUC, ref.AUC)
	}
}

func TestTrainGivesUpOnDeadAgent(t *testing.T) {
	d, _ := startTrainDeployment(t, 200)
	d.Platform.SetTrainRetryWindow(2 * time.Second)
	spec := hub.TrainSpec{Name: "doomed", LabelParty: "bank", Parties: []string{"tax"}, Epochs: 3, BatchSize: 50, TestFraction: 0.3, Seed: 1}
	_, err := d.Platform.Train(context.Background(), spec, func(p hub.Progress) {
		if p.Phase == "train" && p.Iteration == 2 {
			d.StopAgent("tax")
		}
	})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "gave up") {
		t.Fatalf("want a bounded give-up, got %v", err)
	}
	if _, err := d.Platform.Model(context.Background(), "doomed"); err == nil {
		t.Error("a failed job registered a model")
	}
}

// TestAgentRejectsMalformedAndMismatchedOverRPC drives two agents through
// the platform's calls by hand and sends the tax agent residuals it must
// refuse: garbage, and a ciphertext of another parameter set. After the
// refusals the correct message still works (no partial state).
func TestAgentRejectsMalformedAndMismatchedOverRPC(t *testing.T) {
	d, _ := startTrainDeployment(t, 200)
	ctx := context.Background()
	al, err := d.Platform.RunAlignment(ctx, []string{"bank", "tax"}, "ecdh")
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]veilv1.AgentTrainClient{}
	for name, role := range map[string]pki.Role{"bank": pki.RoleBank, "tax": pki.RoleProvider} {
		conn, err := hub.Dial(d.Operator, d.AgentAddrs[name], &pki.Identity{Name: name, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		clients[name] = veilv1.NewAgentTrainClient(conn)
	}
	const job = "train-00112233aabbccdd"
	var rows int64
	for _, name := range []string{"bank", "tax"} {
		resp, err := clients[name].Prepare(ctx, &veilv1.TrainPrepareRequest{JobId: job, AlignJobId: al.JobID, Label: name == "bank",
			TestFraction: 0.25, Seed: 1, Model: "m", Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		rows = resp.GetTrainRows()
	}
	step := func(name, s string, payload []byte) ([]byte, error) {
		resp, err := clients[name].Step(ctx, &veilv1.TrainStepRequest{JobId: job, Step: s, Payload: payload})
		return resp.GetPayload(), err
	}
	mustStep := func(name, s string, payload []byte) []byte {
		t.Helper()
		out, err := step(name, s, payload)
		if err != nil {
			t.Fatalf("%s %s: %v", name, s, err)
		}
		return out
	}
	// Garbage before any setup.
	if _, err := step("tax", "init", []byte("not a setup")); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("garbage setup: %v", err)
	}
	if _, err := step("tax", "no_such_step", nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown step: %v", err)
	}
	if _, err := clients["tax"].Step(ctx, &veilv1.TrainStepRequest{JobId: "train-ffffffffffffffff", Step: "init"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown job: %v", err)
	}
	cfg := lr.DefaultConfig()
	cfg.Epochs = 1
	coord, err := lr.NewCoordinator(cfg, []string{"bank", "tax"}, int(rows))
	if err != nil {
		t.Fatal(err)
	}
	setup, _ := coord.Setup()
	for _, n := range []string{"bank", "tax"} {
		if err := coord.AddKeyShare(mustStep(n, "init", setup)); err != nil {
			t.Fatal(err)
		}
	}
	pk, _ := coord.PublicKey()
	mustStep("bank", "public_key", pk)
	mustStep("tax", "public_key", pk)
	it, _, _ := coord.NextIteration()
	for _, n := range []string{"bank", "tax"} {
		if err := coord.AddResidualShare(mustStep(n, "share_residual", it)); err != nil {
			t.Fatal(err)
		}
	}
	resid, err := coord.Residual()
	if err != nil {
		t.Fatal(err)
	}
	good, _ := lr.UnmarshalResidual(resid)

	// A residual ciphertext under another parameter set.
	other, _ := he.ByName(he.ScoringSmallSetName)
	key := he.NewRecipientKey(other)
	ct, err := he.NewEncryptor(key.PublicKey()).EncryptSlots([]float64{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.MarshalCiphertext(ct)
	wrong := &lr.Residual{Iteration: good.Iteration, Cts: append([][]byte{foreign}, good.Cts[1:]...)}
	wb, _ := wrong.MarshalBinary()
	_, err = step("tax", "gradient", wb)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "parameter") {
		t.Fatalf("foreign-parameter ciphertext: %v", err)
	}
	// A truncated ciphertext.
	trunc := &lr.Residual{Iteration: good.Iteration, Cts: append([][]byte{good.Cts[0][:len(good.Cts[0])/2]}, good.Cts[1:]...)}
	tb, _ := trunc.MarshalBinary()
	if _, err := step("tax", "gradient", tb); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("truncated ciphertext: %v", err)
	}
	// A whole residual of garbage bytes.
	if _, err := step("tax", "gradient", []byte{0xff, 0, 1, 2}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("garbage residual: %v", err)
	}
	// The correct residual is still accepted.
	g := mustStep("tax", "gradient", resid)
	if err := coord.AddGradient(g); err != nil {
		t.Fatal(err)
	}
	// A bank-role client may not drive an agent.
	bankID := d.Issue(t, "bank2", pki.RoleBank)
	conn, err := hub.Dial(bankID, d.AgentAddrs["tax"], &pki.Identity{Name: "tax", Role: pki.RoleProvider})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := veilv1.NewAgentTrainClient(conn).Step(ctx, &veilv1.TrainStepRequest{JobId: job, Step: "gradient", Payload: resid}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bank driving an agent: %v", err)
	}
}

func TestTrainReusesAlignmentJob(t *testing.T) {
	d, _ := startTrainDeployment(t, 200)
	ctx := context.Background()
	al, err := veilv1.NewPSIClient(d.Conn).Align(ctx, &veilv1.AlignRequest{Parties: []string{"bank", "tax", "social"}})
	if err != nil {
		t.Fatal(err)
	}
	spec := hub.TrainSpec{Name: "reuse", LabelParty: "bank", Parties: []string{"tax", "social"}, Epochs: 2, TestFraction: 0.3, Seed: 7, AlignJob: al.GetJobId()}
	m, err := hub.TrainRemote(ctx, d.Conn, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.AlignJobID != al.GetJobId() || int64(m.RowsAligned) != al.GetIntersection() {
		t.Fatalf("model used alignment %s (%d rows), want %s (%d)", m.AlignJobID, m.RowsAligned, al.GetJobId(), al.GetIntersection())
	}
	// An alignment of other parties, or no such job, is refused.
	spec.Parties = []string{"social", "tax"}
	if _, err := hub.TrainRemote(ctx, d.Conn, spec, nil); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("mismatched parties: %v", err)
	}
	spec.Parties, spec.AlignJob = []string{"tax", "social"}, "psi-0000000000000000"
	if _, err := hub.TrainRemote(ctx, d.Conn, spec, nil); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown job: %v", err)
	}
}
