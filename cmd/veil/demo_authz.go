package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"

	"veil/authz/grant"
	"veil/hub"
	"veil/hub/pki"
)

// demoEnterprise is the enterprise whose data the demo's bank asks to use.
type demoEnterprise struct {
	uscc  string
	key   ed25519.PrivateKey
	token string
	jti   string
}

// bankConn returns the bank's own connection to the platform.
func (d *demoRun) bankConn() (*grpc.ClientConn, error) {
	if d.bank != nil {
		return d.bank, nil
	}
	id, err := pki.Load(d.dep.TLSDir("bank"))
	if err != nil {
		return nil, err
	}
	d.bank, err = d.dep.Client(id)
	return d.bank, err
}

// enterpriseConn returns a connection to the platform without a client
// certificate, as an enterprise has (veil grant revoke, veil audit mine).
func (d *demoRun) enterpriseConn() (*grpc.ClientConn, error) {
	pool, err := hub.LoadCAPool(filepath.Join(d.dep.CADir, pki.CACertFile))
	if err != nil {
		return nil, err
	}
	return hub.DialPlatformNoCert(pool, d.dep.PlatformAddr)
}

// grantStep: the enterprise makes a key, the operator registers it, and the
// enterprise grants the bank the use of its data for a loan application.
func (d *demoRun) grantStep(ctx context.Context, scopes []string) error {
	start := time.Now()
	common, err := d.dep.Agents["bank"].Alignment(d.alignJob)
	if err != nil || len(common) == 0 {
		return fmt.Errorf("no aligned enterprise to use: %v", err)
	}
	e := &demoEnterprise{uscc: common[0]}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	e.key = priv
	if _, err := hub.RegisterEnterprise(ctx, d.dep.Conn, e.uscc, pub, false); err != nil {
		return rpcError("register enterprise", err)
	}
	now := time.Now()
	e.token, err = grant.Issue(priv, grant.Claims{
		Issuer: e.uscc, Audience: "bank", Purpose: "loan-application", Scopes: scopes,
		IssuedAt: now, NotBefore: now, ExpiresAt: now.Add(30 * 24 * time.Hour), MaxUses: 5,
	})
	if err != nil {
		return err
	}
	info, err := grant.Inspect(e.token)
	if err != nil {
		return err
	}
	e.jti = info.ID
	d.ent = e
	d.step("grant", start, map[string]any{"enterprise": e.uscc, "grant_id": e.jti, "audience": "bank", "scopes": scopes, "max_uses": 5},
		"enterprise %s registered its Ed25519 key and signed a grant (EdDSA JWT %s) letting the bank use its data for a loan application: %s, at most 5 uses",
		e.uscc, short(e.jti), strings.Join(scopes, ", "))
	return nil
}

// revokeStep: the enterprise revokes the grant over a connection without a
// certificate, signing the revocation with its own key.
func (d *demoRun) revokeStep(ctx context.Context) error {
	start := time.Now()
	conn, err := d.enterpriseConn()
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := hub.RevokeGrant(ctx, conn, d.ent.key, d.ent.uscc, d.ent.jti); err != nil {
		return rpcError("revoke grant", err)
	}
	d.step("revoke", start, map[string]string{"grant_id": d.ent.jti}, "the enterprise revoked grant %s (signed revocation; every provider agent checks the signature itself)", short(d.ent.jti))
	return nil
}

// auditSteps: the enterprise sees every use of its data with Merkle
// inclusion proofs; an auditor verifies the whole log, then an attacker
// edits the SQLite file and the auditor's verification fails.
func (d *demoRun) auditSteps(ctx context.Context) error {
	start := time.Now()
	public, err := d.enterpriseConn()
	if err != nil {
		return err
	}
	defer public.Close()
	logKey := d.dep.Platform.AuditVerifierKey() // pinned out of band in a deployment: `veil audit log-key`
	mine, err := hub.AuditMine(ctx, public, d.ent.key, d.ent.uscc, logKey)
	if err != nil {
		return rpcError("audit mine", err)
	}
	if len(mine.Problems) > 0 {
		return fmt.Errorf("audit mine: %s", strings.Join(mine.Problems, "; "))
	}
	var kinds []string
	for _, e := range mine.Entries {
		kinds = append(kinds, string(e.Entry.Kind)+"/"+e.Entry.Decision)
	}
	d.step("audit-mine", start, mine, "the enterprise fetched the %d log entries about itself (%s), each with a Merkle inclusion proof verified locally against a signed checkpoint of %d entries",
		len(mine.Entries), strings.Join(kinds, ", "), mine.Size)

	start = time.Now()
	auditorID, err := d.dep.Issue("auditor", pki.RoleAuditor)
	if err != nil {
		return err
	}
	auditor, err := d.dep.Client(auditorID)
	if err != nil {
		return err
	}
	defer auditor.Close()
	v, err := hub.VerifyAuditLog(ctx, auditor, logKey, nil, true)
	if err != nil {
		return rpcError("audit verify", err)
	}
	if !v.OK() {
		return fmt.Errorf("audit verify failed on an untouched log: %v", v.Err())
	}
	saved := v.Latest.Note
	d.step("audit-verify", start, v.Report, "an auditor fetched all %d entries and %d signed checkpoints, recomputed the Merkle tree and checked every signature: the log is intact",
		v.Entries, v.CheckpointsChecked)

	start = time.Now()
	// An attacker with write access to the database file rewrites history:
	// the bank's use of the enterprise's data is made to look like another bank's.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(d.work, "platform-data", "platform.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var seq int64
	if err := db.QueryRowContext(ctx, `SELECT seq FROM audit_entries WHERE subject = ? AND body LIKE '%"actor":"bank"%' ORDER BY seq LIMIT 1`, d.ent.uscc).Scan(&seq); err != nil {
		return fmt.Errorf("find an entry to tamper with: %w", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_entries SET body = replace(body, '"actor":"bank"', '"actor":"bank-z"') WHERE seq = ?`, seq); err != nil {
		return fmt.Errorf("tamper: %w", err)
	}
	v2, err := hub.VerifyAuditLog(ctx, auditor, logKey, saved, false)
	if err != nil {
		return rpcError("audit verify", err)
	}
	if v2.OK() {
		return fmt.Errorf("audit verify did not detect the edited entry %d", seq)
	}
	d.step("audit-tamper", start, v2.Report, "someone edited entry %d directly in the SQLite file; audit verify now fails: %v", seq, v2.Err())
	return nil
}
