package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"veil/authz/grant"
)

// TestGrantDecisionsAreLogged wires a grant verifier to the log: an allowed
// request, then refusals, each committed as an entry with its reason, and
// the enterprise's own view (Prove by subject) shows the verified ones only.
func TestGrantDecisionsAreLogged(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	k := newKeys(t)
	l := openLog(t, db, k, 1000, time.Hour, newClock())
	gs, err := grant.NewSQLStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	uscc := subjects[0]
	if _, err := gs.RegisterEnterprise(ctx, uscc, pub, false); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	v, err := grant.NewVerifier(grant.Config{Directory: gs, Revocations: gs, Uses: gs, Recorder: GrantRecorder{Log: l, CheckedBy: "platform"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := grant.Issue(key, grant.Claims{Issuer: uscc, Audience: "bank-a", ID: "g-1", IssuedAt: now.Add(-time.Minute),
		ExpiresAt: now.Add(time.Hour), Purpose: "loan-application", Scopes: []string{"verify:tax.annual_tax_paid"}, MaxUses: 2})
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := grant.Issue(forger, grant.Claims{Issuer: uscc, Audience: "bank-a", ID: "g-f", IssuedAt: now.Add(-time.Minute),
		ExpiresAt: now.Add(time.Hour), Scopes: []string{"query:tax.annual_tax_paid"}, MaxUses: 9})

	r := grant.Request{Audience: "bank-a", Subject: uscc, Scopes: []string{"verify:tax.annual_tax_paid"}, JobID: "job-7"}
	if _, err := v.Verify(ctx, tok, r); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		token string
		req   grant.Request
		want  grant.Reason
	}{
		{tok, grant.Request{Audience: "bank-a", Scopes: []string{"query:tax.annual_tax_paid"}}, grant.ReasonOutOfScope},
		{tok, grant.Request{Audience: "bank-b", Scopes: []string{"verify:tax.annual_tax_paid"}}, grant.ReasonWrongAudience},
		{forged, grant.Request{Audience: "bank-a", Scopes: []string{"query:tax.annual_tax_paid"}}, grant.ReasonBadSignature},
		{"garbage", grant.Request{Audience: "bank-a", Scopes: []string{"verify:tax.x"}}, grant.ReasonMalformed},
	}
	for _, s := range steps {
		if _, err := v.Verify(ctx, s.token, s.req); grant.ReasonOf(err) != s.want {
			t.Fatalf("want %s, got %v", s.want, err)
		}
	}
	recs, err := l.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 {
		t.Fatalf("%d entries, want 5", len(recs))
	}
	first := recs[0].Entry
	if first.Kind != KindRequestAllowed || first.Decision != Allow || first.Subject != uscc || first.GrantID != "g-1" ||
		first.JobID != "job-7" || first.Actor != "bank-a" || len(first.Providers) != 1 || first.Providers[0] != "tax" ||
		first.Details["checked_by"] != "platform" || first.Details["uses"] != "1" {
		t.Fatalf("allow entry %+v", first)
	}
	for i, s := range steps {
		e := recs[i+1].Entry
		if e.Kind != KindRequestDenied || e.Decision != Deny || e.Reason != string(s.want) {
			t.Fatalf("entry %d: %+v", i+1, e)
		}
	}
	if forgedEntry := recs[3].Entry; forgedEntry.Subject != "" || forgedEntry.Details["claimed_subject"] != uscc {
		t.Fatalf("forged token attributed to the enterprise: %+v", forgedEntry)
	}
	// The enterprise's own history: entries from verified grants only.
	cp, mine, err := l.Prove(ctx, Query{Subject: uscc})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 3 {
		t.Fatalf("enterprise sees %d entries, want 3", len(mine))
	}
	for _, pe := range mine {
		if _, err := VerifyInclusion(k.verifier, cp.Note, pe); err != nil {
			t.Fatal(err)
		}
	}
	// Provider view.
	tax, err := l.Query(ctx, Query{Provider: "tax"})
	if err != nil || len(tax) != 5 {
		t.Fatalf("provider view: %d %v", len(tax), err)
	}
}

func BenchmarkAppend(b *testing.B) {
	db := openSQLite(b)
	l := openLog(b, db, newKeys(b), 1000, time.Hour, newClock())
	ctx := context.Background()
	b.Run("single", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := l.Append(ctx, sampleEntry(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("batch1000", func(b *testing.B) {
		batch := make([]Entry, 1000)
		for i := range batch {
			batch[i] = sampleEntry(i)
		}
		for b.Loop() {
			if _, err := l.AppendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*1000), "µs/entry")
	})
}
