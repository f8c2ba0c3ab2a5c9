package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingDir counts directory lookups, single and batched.
type countingDir struct {
	*SQLStore
	single, batched atomic.Int64
}

func (c *countingDir) EnterpriseKey(ctx context.Context, uscc string) (ed25519.PublicKey, error) {
	c.single.Add(1)
	return c.SQLStore.EnterpriseKey(ctx, uscc)
}

func (c *countingDir) EnterpriseKeys(ctx context.Context, usccs []string) (map[string]ed25519.PublicKey, error) {
	c.batched.Add(int64(len(usccs)))
	return c.SQLStore.EnterpriseKeys(ctx, usccs)
}

func TestVerifyBatchOnSQLStore(t *testing.T) {
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			s, err := NewSQLStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			changed, err := s.RegisterEnterprises(ctx, []Enterprise{{USCC: testUSCC, Key: key.Public().(ed25519.PublicKey)}, {USCC: otherUSCC, Key: other.Public().(ed25519.PublicKey)}})
			if err != nil || len(changed) != 2 {
				t.Fatalf("register: %v %v", changed, err)
			}
			if changed, err = s.RegisterEnterprises(ctx, []Enterprise{{USCC: testUSCC, Key: key.Public().(ed25519.PublicKey)}}); err != nil || len(changed) != 0 {
				t.Fatalf("re-register same key: %v %v", changed, err)
			}
			dir := &countingDir{SQLStore: s}
			rec := &recorder{}
			v, err := NewVerifier(Config{Directory: dir, Revocations: s, Uses: s, Recorder: rec, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			issue := func(k ed25519.PrivateKey, mod func(*Claims)) string {
				c := baseClaims()
				if mod != nil {
					mod(&c)
				}
				tok, err := Issue(k, c)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			twice := issue(key, func(c *Claims) { c.ID, c.MaxUses = "g-twice", 2 })
			revoked := issue(key, func(c *Claims) { c.ID = "g-revoked" })
			forged := issue(other, func(c *Claims) { c.ID = "g-forged" }) // iss is testUSCC, signed by other's key
			wrongAud := issue(key, func(c *Claims) { c.ID, c.Audience = "g-aud", "bank-b" })
			otherOK := issue(other, func(c *Claims) { c.Issuer, c.ID = otherUSCC, "g-other" })
			rev, err := SignRevocation(key, testUSCC, "g-revoked", t0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Revoke(ctx, rev); err != nil {
				t.Fatal(err)
			}
			r := req()
			rs := r
			rs.Subject = testUSCC
			items := []BatchItem{{twice, rs}, {twice, rs}, {twice, rs}, {revoked, r}, {forged, r}, {wrongAud, r}, {otherOK, r}, {"junk", r}}
			ds, gs, refs, err := v.VerifyBatch(ctx, items)
			if err != nil {
				t.Fatal(err)
			}
			want := []Reason{"", "", ReasonOverUseCount, ReasonRevoked, ReasonBadSignature, ReasonWrongAudience, "", ReasonMalformed}
			for i, w := range want {
				if got := ReasonOf(refs[i]); got != w {
					t.Errorf("item %d: reason %q, want %q (%v)", i, got, w, refs[i])
				}
				if (w == "") != (gs[i] != nil) || ds[i].Allowed != (w == "") || ds[i].Reason != w {
					t.Errorf("item %d: grant %v decision %+v", i, gs[i], ds[i])
				}
			}
			if gs[0].Uses != 1 || gs[1].Uses != 2 || ds[2].Uses != 2 {
				t.Errorf("use counts %d %d %d, want 1 2 2", gs[0].Uses, gs[1].Uses, ds[2].Uses)
			}
			if n, _ := s.UseCount(ctx, testUSCC, "g-twice"); n != 2 {
				t.Errorf("stored use count %d, want 2", n)
			}
			if n, _ := s.UseCount(ctx, testUSCC, "g-revoked"); n != 0 {
				t.Errorf("revoked grant counted %d uses", n)
			}
			if len(rec.decisions) != len(items) {
				t.Errorf("%d decisions recorded for %d items", len(rec.decisions), len(items))
			}
			if dir.batched.Load() != 1 {
				t.Errorf("directory prefetch asked for %d keys, want 1 (the one named subject)", dir.batched.Load())
			}

			// A second batch with the same grants: every signature check is
			// a cache hit by token hash (no directory lookups at all), and
			// use counts and revocation are still enforced.
			dir.single.Store(0)
			dir.batched.Store(0)
			_, _, refs, err = v.VerifyBatch(ctx, items[:4])
			if err != nil {
				t.Fatal(err)
			}
			if dir.single.Load()+dir.batched.Load() != 0 {
				t.Errorf("second batch looked up %d+%d keys: cache missed", dir.single.Load(), dir.batched.Load())
			}
			for i, w := range []Reason{ReasonOverUseCount, ReasonOverUseCount, ReasonOverUseCount, ReasonRevoked} {
				if got := ReasonOf(refs[i]); got != w {
					t.Errorf("second batch item %d: %q, want %q", i, got, w)
				}
			}
			// A token that differs in one byte of its signature is not a hit.
			mangled := twice[:len(twice)-2] + "AA"
			if mangled == twice {
				mangled = twice[:len(twice)-2] + "BB"
			}
			_, _, refs, _ = v.VerifyBatch(ctx, []BatchItem{{mangled, r}})
			if ReasonOf(refs[0]) != ReasonBadSignature && ReasonOf(refs[0]) != ReasonMalformed {
				t.Errorf("mangled token: %v", refs[0])
			}
		})
	}
}

// TestConcurrentBatchesNeverExceedMax runs batches that all want the same
// grants at once, alongside single Verify calls: exactly MaxUses uses are
// granted per grant, never more.
func TestConcurrentBatchesNeverExceedMax(t *testing.T) {
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			s, err := NewSQLStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			if _, err := s.RegisterEnterprise(ctx, testUSCC, key.Public().(ed25519.PublicKey), false); err != nil {
				t.Fatal(err)
			}
			v, err := NewVerifier(Config{Directory: s, Revocations: s, Uses: s, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			const grants, maxUses, workers, rounds = 5, 7, 6, 4
			toks := make([]string, grants)
			for i := range toks {
				c := baseClaims()
				c.ID, c.MaxUses = fmt.Sprintf("g-%d", i), maxUses
				if toks[i], err = Issue(key, c); err != nil {
					t.Fatal(err)
				}
			}
			var allowed [grants]atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, workers*rounds*2)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range rounds {
						var items []BatchItem
						for i := range toks {
							items = append(items, BatchItem{toks[i], req()}, BatchItem{toks[(i+w)%grants], req()})
						}
						_, gs, _, err := v.VerifyBatch(ctx, items)
						if err != nil {
							errs <- err
							return
						}
						for _, g := range gs {
							if g != nil {
								var i int
								fmt.Sscanf(g.ID, "g-%d", &i)
								allowed[i].Add(1)
							}
						}
						if g, err := v.Verify(ctx, toks[w%grants], req()); err == nil {
							var i int
							fmt.Sscanf(g.ID, "g-%d", &i)
							allowed[i].Add(1)
						} else if ReasonOf(err) == "" {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i := range allowed {
				if n := allowed[i].Load(); n != maxUses {
					t.Errorf("grant %d: %d uses allowed, want exactly %d", i, n, maxUses)
				}
				if n, _ := s.UseCount(ctx, testUSCC, fmt.Sprintf("g-%d", i)); n != maxUses {
					t.Errorf("grant %d: stored count %d, want %d", i, n, maxUses)
				}
			}
		})
	}
}

// TestPrepareBatchParallelMatchesVerify checks that the worker-pool path
// gives each item the same verdict as Verify on a batch larger than the
// number of workers, with a mix of issuers and faults.
func TestPrepareBatchParallelMatchesVerify(t *testing.T) {
	f := newFixture(t)
	single, err := NewVerifier(Config{Directory: f.dir, Revocations: NewMemoryRevocations(), Uses: NewMemoryUses(), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := NewVerifier(Config{Directory: f.dir, Revocations: NewMemoryRevocations(), Uses: NewMemoryUses(), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	var items []BatchItem
	for i := range 64 {
		tok := f.issue(t, func(c *Claims) {
			c.ID = fmt.Sprintf("p-%d", i)
			switch i % 4 {
			case 1:
				c.IssuedAt, c.ExpiresAt = t0.Add(-2*time.Hour), t0.Add(-time.Hour)
			case 2:
				c.Scopes = []string{"verify:tax.x"}
			}
		})
		if i%4 == 3 {
			tok = tok[:len(tok)-3] + "abc"
		}
		items = append(items, BatchItem{tok, req()})
	}
	_, _, refs, err := batch.VerifyBatch(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		_, serr := single.Verify(context.Background(), it.Token, it.Request)
		if ReasonOf(serr) != ReasonOf(refs[i]) || (serr == nil) != (refs[i] == nil) {
			t.Errorf("item %d: batch %v, single %v", i, refs[i], serr)
		}
	}
}
