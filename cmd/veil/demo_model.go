package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"veil/hub"
	"veil/modeling/score"
	"veil/mpc/he"
	veilv1 "veil/proto/veil/v1"
)

// demoModel is the model the demo trains and serves.
const demoModel = "polish-default"

// trainStep trains the bankruptcy model: the bank holds only the labels; tax,
// social and utility hold the features.
func (d *demoRun) trainStep(ctx context.Context) error {
	start := time.Now()
	spec := hub.TrainSpec{
		Name: demoModel, LabelParty: "bank", Parties: []string{"tax", "social", "utility"}, LabelOnly: true,
		Epochs: 20, LearningRate: 0.3, L2: 0.001, Tol: 1e-5, Patience: 2, TestFraction: 0.3, Seed: 7, PSIProtocol: "ecdh",
	}
	iterations := 0
	m, err := hub.TrainRemote(ctx, d.dep.Conn, spec, func(p hub.Progress) {
		if p.Iteration > iterations {
			iterations = p.Iteration
		}
	})
	if err != nil {
		return rpcError("train", err)
	}
	var feats []string
	for _, p := range m.Parties {
		if len(p.Features) > 0 {
			feats = append(feats, fmt.Sprintf("%s %d", p.Name, len(p.Features)))
		}
	}
	d.step("train", start, map[string]any{
		"model": m.Name, "version": m.Version, "rows_aligned": m.RowsAligned, "train_rows": m.TrainRows, "test_rows": m.TestRows,
		"iterations": m.Iterations, "auc": m.AUC, "ks": m.KS, "feature_parties": m.FeatureParties, "seconds": m.TrainingSeconds,
	}, "trained %s v%d under a collective CKKS key (bank labels only; features: %s) on %d aligned enterprises: %d iterations, test AUC %.3f, KS %.3f; each party keeps its own weights, and a scoring key was set up among the feature parties and the platform",
		m.Name, m.Version, strings.Join(feats, ", "), m.RowsAligned, m.Iterations, m.AUC, m.KS)
	return nil
}

// bankKeyStep: the bank makes the CKKS key pair it receives scores under;
// only the public key leaves its machine.
func (d *demoRun) bankKeyStep(ctx context.Context) error {
	start := time.Now()
	params, err := he.ByName(score.DefaultParamSet)
	if err != nil {
		return err
	}
	if d.bankKey, err = score.GenerateBankKey(params); err != nil {
		return err
	}
	conn, err := d.bankConn()
	if err != nil {
		return err
	}
	if _, err := hub.RegisterBankKey(ctx, conn, d.bankKey); err != nil {
		return rpcError("register bank key", err)
	}
	d.step("bank-key", start, map[string]string{"param_set": score.DefaultParamSet}, "the bank generated its CKKS key pair (%s) and registered the public key; the secret key never leaves the bank", score.DefaultParamSet)
	return nil
}

// scoreStep: the bank scores the enterprise under its grant. want says
// whether the grant should be accepted.
func (d *demoRun) scoreStep(ctx context.Context, want bool) error {
	start := time.Now()
	conn, err := d.bankConn()
	if err != nil {
		return err
	}
	out, _, err := hub.ScoreRemote(ctx, conn, d.bankKey, []hub.ScoreRow{{Enterprise: d.ent.uscc, Grant: d.ent.token}}, hub.ScoreOptions{Model: demoModel})
	if err != nil {
		return rpcError("score", err)
	}
	if len(out) != 1 {
		return fmt.Errorf("score: %d results for one enterprise", len(out))
	}
	o := out[0]
	switch {
	case want && o.Score == nil:
		return fmt.Errorf("score refused by %s: %s", o.RefusedBy, o.Refused)
	case !want && o.Score != nil:
		return fmt.Errorf("score released after revocation")
	case want:
		d.step("score", start, o, "the bank scored enterprise %s: probability of default %.4f, %.0f points; the providers encrypted their partial logits under the collective key, the platform added them and switched the sum to the bank's key, so only the bank saw the score",
			d.ent.uscc, o.Score.Probability, o.Score.Points)
	default:
		d.step("refused", start, o, "after revocation the bank's score request is refused by %s: %s", o.RefusedBy, o.Refused)
	}
	return nil
}

// verifyStep: the bank asks tax whether the enterprise's net profit ratio is
// non-negative and checks the provider's signature offline.
func (d *demoRun) verifyStep(ctx context.Context) error {
	start := time.Now()
	conn, err := d.bankConn()
	if err != nil {
		return err
	}
	res, err := hub.VerifyRemote(ctx, conn, &veilv1.VerifyRequest{Provider: "tax", Field: "Attr1", Op: "ge", Value: 0, Enterprise: d.ent.uscc, Grant: d.ent.token})
	if err != nil {
		return rpcError("verify", err)
	}
	// The bank trusts tax's published signing key (fetched from the
	// platform in a deployment: veil verify --check).
	signer, err := score.LoadOrCreateSigningKey(filepath.Join(d.work, "tax", "state"))
	if err != nil {
		return err
	}
	if err := res.Check(signer.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("verify result signature: %w", err)
	}
	d.step("verify", start, res, "the bank asked tax \"is %s's Attr1 (net profit / total assets) >= 0?\": %v, signed by tax; the signature checks offline", d.ent.uscc, res.Statement.Answer)
	return nil
}
