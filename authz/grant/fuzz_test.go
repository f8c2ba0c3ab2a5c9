package grant

import (
	"context"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary strings to the full verification path. It must
// never panic, every failure must be a refusal (the stores here cannot fail),
// and nothing but the seeded, genuinely signed tokens may ever be accepted.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	fx.v.cfg.Recorder = nil
	valid := map[string]bool{}
	for i, mod := range []func(*Claims){
		nil,
		func(c *Claims) { c.ID = "g-2"; c.Scopes = []string{"query:tax.x", "score:m.1"} },
		func(c *Claims) { c.ID = "g-3"; c.MaxUses = 1 << 40 },
	} {
		tok := fx.issue(f, mod)
		valid[tok] = true
		f.Add(tok)
		if i == 0 {
			f.Add(tok[:len(tok)-1])
			f.Add(tok + ".")
		}
	}
	rtok, _ := SignRevocation(fx.key, testUSCC, "g-1", t0)
	f.Add(rtok)
	f.Add("")
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		g, err := fx.v.Verify(context.Background(), token, Request{Audience: "bank-a", Scopes: []string{"score:default-v1"}, Time: t0})
		if err == nil {
			if !valid[token] {
				t.Fatalf("accepted a token that was never signed: %q", token)
			}
			if g.Issuer != testUSCC {
				t.Fatalf("wrong issuer %q", g.Issuer)
			}
			return
		}
		if ReasonOf(err) == "" {
			t.Fatalf("non-refusal error for bad input: %v", err)
		}
		// Inspect must not panic either.
		_, _ = Inspect(token)
	})
}

func BenchmarkVerify(b *testing.B) {
	for _, mode := range []struct {
		name  string
		cache int
	}{{"uncached", -1}, {"cached", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			fx := newFixture(b)
			v, _ := NewVerifier(Config{Directory: fx.dir, Revocations: fx.rev, Uses: fx.uses, CacheSize: mode.cache, Now: func() time.Time { return t0 }})
			tok := fx.issue(b, func(c *Claims) { c.MaxUses = 1 << 50 })
			ctx := context.Background()
			r := req()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
