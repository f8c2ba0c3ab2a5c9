package grant

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testUSCC  = "91110000MA01ABCD2X"
	otherUSCC = "91310000MA1FL0000Q"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type recorder struct {
	mu        sync.Mutex
	decisions []Decision
}

func (r *recorder) RecordDecision(_ context.Context, d Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, d)
	return nil
}

func (r *recorder) last() Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.decisions[len(r.decisions)-1]
}

type fixture struct {
	key, other ed25519.PrivateKey
	dir        *MemoryDirectory
	rev        *MemoryRevocations
	uses       *MemoryUses
	rec        *recorder
	v          *Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	f := &fixture{key: key, other: other, dir: NewMemoryDirectory(), rev: NewMemoryRevocations(), uses: NewMemoryUses(), rec: &recorder{}}
	if err := f.dir.Register(testUSCC, key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := f.dir.Register(otherUSCC, other.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{Directory: f.dir, Revocations: f.rev, Uses: f.uses, Recorder: f.rec, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

func baseClaims() Claims {
	return Claims{
		Issuer:    testUSCC,
		Audience:  "bank-a",
		ID:        "g-1",
		IssuedAt:  t0.Add(-time.Hour),
		ExpiresAt: t0.Add(720 * time.Hour),
		Purpose:   "loan-application",
		Scopes:    []string{"score:default-v1", "verify:tax.annual_tax_paid"},
		MaxUses:   5,
	}
}

func (f *fixture) issue(t testing.TB, mod func(*Claims)) string {
	t.Helper()
	c := baseClaims()
	if mod != nil {
		mod(&c)
	}
	tok, err := Issue(f.key, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// rawPayload is a valid grant payload as a map, for hand-made tokens.
func rawPayload() map[string]any {
	return map[string]any{
		"iss": testUSCC, "sub": testUSCC, "aud": []string{"bank-a"}, "jti": "g-raw",
		"iat": t0.Add(-time.Hour).Unix(), "nbf": t0.Add(-time.Hour).Unix(), "exp": t0.Add(time.Hour).Unix(),
		"purpose": "loan-application", "scope": []string{"score:default-v1"}, "max_uses": 3,
	}
}

// signRaw builds header.payload and signs it with Ed25519 key k.
func signRaw(k ed25519.PrivateKey, header, payload map[string]any) string {
	in := b64(header) + "." + b64(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k, []byte(in)))
}

func edHeader() map[string]any { return map[string]any{"alg": "EdDSA", "typ": GrantType} }

func withPayload(mod func(map[string]any)) map[string]any {
	p := rawPayload()
	mod(p)
	return p
}

func req(scopes ...string) Request {
	if len(scopes) == 0 {
		scopes = []string{"score:default-v1"}
	}
	return Request{Audience: "bank-a", Scopes: scopes}
}

func TestValidGrantAccepted(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, nil)
	ctx := context.Background()
	for i := 1; i <= 5; i++ {
		g, err := f.v.Verify(ctx, tok, Request{Audience: "bank-a", Subject: testUSCC, Scopes: []string{"verify:tax.annual_tax_paid"}, JobID: "job-1"})
		if err != nil {
			t.Fatalf("use %d: %v", i, err)
		}
		if g.Uses != int64(i) || g.Issuer != testUSCC || g.Audience != "bank-a" || g.Purpose != "loan-application" {
			t.Fatalf("use %d: grant %+v", i, g)
		}
		d := f.rec.last()
		if !d.Allowed || d.Claims == nil || d.Request.JobID != "job-1" || d.Uses != int64(i) {
			t.Fatalf("decision %+v", d)
		}
	}
	_, err := f.v.Verify(ctx, tok, req())
	if ReasonOf(err) != ReasonOverUseCount {
		t.Fatalf("sixth use: %v", err)
	}
	c, err := Inspect(tok)
	if err != nil || c.ID != "g-1" || len(c.Providers()) != 1 || c.Providers()[0] != "tax" {
		t.Fatalf("inspect: %+v %v", c, err)
	}
}

// TestForgedAndBrokenTokens is the catalogue of bad tokens from the issue:
// each must be refused with exactly the right reason, and each refusal must
// reach the recorder.
func TestForgedAndBrokenTokens(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	valid := f.issue(t, nil)
	parts := strings.Split(valid, ".")
	pub := f.key.Public().(ed25519.PublicKey)

	hs256, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(rawPayload())).SignedString([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	hs256b64, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(rawPayload())).SignedString([]byte(base64.StdEncoding.EncodeToString(pub)))
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(rawPayload())).SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(rawPayload())).SignedString(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(rawPayload())).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	// Modified claims: payload re-encoded with a different aud / more uses, original signature kept.
	tamper := func(mod func(map[string]any)) string {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		mod(p)
		return parts[0] + "." + b64(p) + "." + parts[2]
	}
	// A signature with S replaced by S+L: same point equation, rejected by
	// Go's ed25519 as non-canonical (signature malleability).
	malleable := func() string {
		sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
		s := make([]byte, 32)
		for i := range 32 {
			s[i] = sig[63-i]
		}
		l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
		sum := new(big.Int).Add(new(big.Int).SetBytes(s), l)
		out := sum.FillBytes(make([]byte, 32))
		for i := range 32 {
			sig[32+i] = out[31-i]
		}
		return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	revocation, err := SignRevocation(f.key, testUSCC, "g-1", t0)
	if err != nil {
		t.Fatal(err)
	}

	revokedTok := f.issue(t, func(c *Claims) { c.ID = "g-revoked" })
	rtok, _ := SignRevocation(f.key, testUSCC, "g-revoked", t0)
	if _, err := f.v.Verify(ctx, revokedTok, req()); err != nil {
		t.Fatalf("grant before revocation: %v", err)
	}
	if _, err := f.v.Revoke(ctx, rtok); err != nil {
		t.Fatal(err)
	}
	oneUse := f.issue(t, func(c *Claims) { c.ID = "g-once"; c.MaxUses = 1 })
	if _, err := f.v.Verify(ctx, oneUse, req()); err != nil {
		t.Fatalf("first use: %v", err)
	}

	cases := []struct {
		name  string
		token string
		req   Request
		want  Reason
	}{
		{"alg none", noneTok, req(), ReasonAlgNotAllowed},
		{"alg none hand-made with EdDSA claims", b64(map[string]any{"alg": "none", "typ": GrantType}) + "." + parts[1] + ".", req(), ReasonAlgNotAllowed},
		{"HS256 with public key as secret", hs256, req(), ReasonAlgNotAllowed},
		{"HS256 with base64 public key as secret", hs256b64, req(), ReasonAlgNotAllowed},
		{"RS256", rs256, req(), ReasonAlgNotAllowed},
		{"ES256", es256, req(), ReasonAlgNotAllowed},
		{"alg lower-case eddsa", signRaw(f.key, map[string]any{"alg": "eddsa", "typ": GrantType}, rawPayload()), req(), ReasonAlgNotAllowed},
		{"alg Ed25519", signRaw(f.key, map[string]any{"alg": "Ed25519", "typ": GrantType}, rawPayload()), req(), ReasonAlgNotAllowed},
		{"no alg", signRaw(f.key, map[string]any{"typ": GrantType}, rawPayload()), req(), ReasonAlgNotAllowed},
		{"wrong key", signRaw(f.other, edHeader(), rawPayload()), req(), ReasonBadSignature},
		{"truncated signature", valid[:len(valid)-10], req(), ReasonBadSignature},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(f.issue(t, func(c *Claims) { c.ID = "g-x" }), ".")[2], req(), ReasonBadSignature},
		{"non-canonical signature S+L", malleable(), req(), ReasonBadSignature},
		{"modified aud", tamper(func(p map[string]any) { p["aud"] = []string{"bank-b"} }), Request{Audience: "bank-b", Scopes: []string{"score:default-v1"}}, ReasonBadSignature},
		{"modified max_uses", tamper(func(p map[string]any) { p["max_uses"] = 1000000 }), req(), ReasonBadSignature},
		{"modified scope", tamper(func(p map[string]any) { p["scope"] = []string{"query:tax.annual_tax_paid"} }), req("query:tax.annual_tax_paid"), ReasonBadSignature},
		{"truncated to two segments", parts[0] + "." + parts[1], req(), ReasonMalformed},
		{"truncated mid-payload", valid[:len(parts[0])+20], req(), ReasonMalformed},
		{"extra segment", valid + ".AAAA", req(), ReasonMalformed},
		{"five segments (JWE shape)", valid + ".a.b", req(), ReasonMalformed},
		{"empty", "", req(), ReasonMalformed},
		{"garbage base64 header", "!!!." + parts[1] + "." + parts[2], req(), ReasonMalformed},
		{"garbage base64 payload", parts[0] + ".%%%." + parts[2], req(), ReasonMalformed},
		{"garbage base64 signature", parts[0] + "." + parts[1] + ".***", req(), ReasonMalformed},
		{"padded base64", parts[0] + "." + parts[1] + "." + parts[2] + "==", req(), ReasonMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + parts[1] + "." + parts[2], req(), ReasonMalformed},
		{"embedded jwk header", signRaw(f.other, map[string]any{"alg": "EdDSA", "typ": GrantType, "jwk": map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(f.other.Public().(ed25519.PublicKey))}}, rawPayload()), req(), ReasonMalformed},
		{"crit header", signRaw(f.key, map[string]any{"alg": "EdDSA", "typ": GrantType, "crit": []string{"exp"}}, rawPayload()), req(), ReasonMalformed},
		{"typ JWT", signRaw(f.key, map[string]any{"alg": "EdDSA", "typ": "JWT"}, rawPayload()), req(), ReasonMalformed},
		{"revocation presented as grant", revocation, req(), ReasonMalformed},
		{"payload not JSON", signRawBytes(f.key, edHeader(), []byte("[1,2")), req(), ReasonMalformed},
		{"iss differs from sub", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["sub"] = otherUSCC })), req(), ReasonMalformed},
		{"two audiences", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["aud"] = []string{"bank-a", "bank-b"} })), req(), ReasonMalformed},
		{"scope is a string", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["scope"] = "score:default-v1" })), req(), ReasonMalformed},
		{"bad scope grammar", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["scope"] = []string{"admin:*"} })), req(), ReasonMalformed},
		{"max_uses zero", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["max_uses"] = 0 })), req(), ReasonMalformed},
		{"max_uses fractional", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["max_uses"] = 2.5 })), req(), ReasonMalformed},
		{"missing exp", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { delete(p, "exp") })), req(), ReasonMalformed},
		{"missing iss", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { delete(p, "iss") })), req(), ReasonMalformed},
		{"missing jti", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { delete(p, "jti") })), req(), ReasonMissingJTI},
		{"empty jti", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["jti"] = "" })), req(), ReasonMissingJTI},
		{"wrong aud", valid, Request{Audience: "bank-b", Scopes: []string{"score:default-v1"}}, ReasonWrongAudience},
		{"wrong subject", valid, Request{Audience: "bank-a", Subject: otherUSCC, Scopes: []string{"score:default-v1"}}, ReasonWrongSubject},
		{"exp in the past", f.issue(t, func(c *Claims) { c.IssuedAt = t0.Add(-48 * time.Hour); c.ExpiresAt = t0.Add(-24 * time.Hour) }), req(), ReasonExpired},
		{"exp just past leeway", f.issue(t, func(c *Claims) { c.ExpiresAt = t0.Add(-31 * time.Second) }), req(), ReasonExpired},
		{"nbf in the future", f.issue(t, func(c *Claims) { c.NotBefore = t0.Add(24 * time.Hour) }), req(), ReasonNotYetValid},
		{"iat in the future", f.issue(t, func(c *Claims) { c.IssuedAt = t0.Add(time.Hour); c.NotBefore = t0.Add(-time.Hour) }), req(), ReasonNotYetValid},
		{"reuse after revocation", revokedTok, req(), ReasonRevoked},
		{"scope escalation verify->query", valid, req("query:tax.annual_tax_paid"), ReasonOutOfScope},
		{"scope escalation other field", valid, req("verify:tax.monthly_revenue"), ReasonOutOfScope},
		{"scope escalation other provider", valid, req("verify:customs.annual_tax_paid"), ReasonOutOfScope},
		{"scope escalation other model", valid, req("score:premium-v2"), ReasonOutOfScope},
		{"scope escalation one of two", valid, req("score:default-v1", "query:tax.annual_tax_paid"), ReasonOutOfScope},
		{"over use count", oneUse, req(), ReasonOverUseCount},
		{"unknown enterprise", signRaw(f.key, edHeader(), withPayload(func(p map[string]any) { p["iss"] = "91440300MA5XXXXX0Y"; p["sub"] = "91440300MA5XXXXX0Y" })), req(), ReasonUnknownEnterprise},
		{"other enterprise's key claims", signRaw(f.other, edHeader(), withPayload(func(p map[string]any) { p["iss"] = otherUSCC })), req(), ReasonMalformed}, // sub still testUSCC
		{"oversized", valid + strings.Repeat("A", DefaultMaxTokenSize), req(), ReasonOversized},
		{"oversized garbage", strings.Repeat(".", DefaultMaxTokenSize+1), req(), ReasonOversized},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(f.rec.decisions)
			g, err := f.v.Verify(ctx, c.token, c.req)
			if err == nil {
				t.Fatalf("accepted: %+v", g)
			}
			var ref *Refusal
			if !errors.As(err, &ref) {
				t.Fatalf("not a refusal: %v", err)
			}
			if ref.Reason != c.want {
				t.Fatalf("reason %s (%s), want %s", ref.Reason, ref.Detail, c.want)
			}
			if !errors.Is(err, &Refusal{Reason: c.want}) {
				t.Fatal("errors.Is does not match the reason")
			}
			if len(f.rec.decisions) != before+1 {
				t.Fatalf("refusal not recorded")
			}
			d := f.rec.last()
			if d.Allowed || d.Reason != c.want {
				t.Fatalf("recorded decision %+v", d)
			}
		})
	}
}

func signRawBytes(k ed25519.PrivateKey, header map[string]any, payload []byte) string {
	in := b64(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k, []byte(in)))
}

func TestCacheStillChecksTimeRevocationAndUses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := f.issue(t, func(c *Claims) { c.ExpiresAt = t0.Add(3 * time.Minute) })
	if _, err := f.v.Verify(ctx, tok, req()); err != nil {
		t.Fatal(err)
	}
	if f.v.cache.len() != 1 {
		t.Fatalf("cache has %d entries", f.v.cache.len())
	}
	// Second use is a cache hit: remove the key from the directory to prove
	// the signature is not re-checked (the directory would now refuse).
	f.dir.mu.Lock()
	delete(f.dir.keys, testUSCC)
	f.dir.mu.Unlock()
	if _, err := f.v.Verify(ctx, tok, req()); err != nil {
		t.Fatalf("cache hit: %v", err)
	}
	later := req()
	later.Time = t0.Add(5 * time.Minute) // within the cache TTL, past exp+leeway
	if _, err := f.v.Verify(ctx, tok, later); ReasonOf(err) != ReasonExpired {
		t.Fatalf("expired token from cache: %v", err)
	}
	wrong := Request{Audience: "bank-b", Scopes: []string{"score:default-v1"}}
	if _, err := f.v.Verify(ctx, tok, wrong); ReasonOf(err) != ReasonWrongAudience {
		t.Fatalf("audience from cache: %v", err)
	}
	if err := f.rev.Revoke(ctx, Revocation{Issuer: testUSCC, GrantID: "g-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(ctx, tok, req()); ReasonOf(err) != ReasonRevoked {
		t.Fatalf("revoked token from cache: %v", err)
	}
	f.v.ForgetEnterprise(testUSCC)
	if f.v.cache.len() != 0 {
		t.Fatal("ForgetEnterprise left entries")
	}
	if _, err := f.v.Verify(ctx, tok, req()); ReasonOf(err) != ReasonUnknownEnterprise {
		t.Fatalf("after forget: %v", err)
	}
}

func TestCacheTTLAndEviction(t *testing.T) {
	f := newFixture(t)
	v, err := NewVerifier(Config{Directory: f.dir, Revocations: f.rev, Uses: f.uses, CacheSize: 2, CacheTTL: time.Minute, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		tok := f.issue(t, func(c *Claims) { c.ID = "g-" + string(rune('a'+i)) })
		if _, err := v.Verify(ctx, tok, req()); err != nil {
			t.Fatal(err)
		}
	}
	if v.cache.len() != 2 {
		t.Fatalf("LRU holds %d, want 2", v.cache.len())
	}
	tok := f.issue(t, func(c *Claims) { c.ID = "g-ttl" })
	var sum [32]byte
	if _, err := v.Verify(ctx, tok, req()); err != nil {
		t.Fatal(err)
	}
	g, _ := v.Verify(ctx, tok, req())
	sum = g.TokenSHA256
	if v.cache.get(sum, t0.Add(2*time.Minute)) != nil {
		t.Fatal("entry older than TTL was served")
	}
}

func TestRevocationStatements(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	good, err := SignRevocation(f.key, testUSCC, "g-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.v.VerifyRevocation(ctx, good)
	if err != nil || r.GrantID != "g-1" || r.Issuer != testUSCC || !r.RevokedAt.Equal(t0) {
		t.Fatalf("good revocation: %+v %v", r, err)
	}
	forged, _ := SignRevocation(f.other, testUSCC, "g-1", t0) // someone else revoking testUSCC's grant
	future, _ := SignRevocation(f.key, testUSCC, "g-1", t0.Add(time.Hour))
	grantTok := f.issue(t, nil)
	for name, c := range map[string]struct {
		tok  string
		want Reason
	}{
		"forged by other enterprise": {forged, ReasonBadSignature},
		"dated in the future":        {future, ReasonNotYetValid},
		"grant presented":            {grantTok, ReasonMalformed},
		"garbage":                    {"a.b.c", ReasonMalformed},
		"no grant id":                {signRaw(f.key, map[string]any{"alg": "EdDSA", "typ": RevocationType}, map[string]any{"iss": testUSCC, "sub": testUSCC, "iat": t0.Unix()}), ReasonMissingJTI},
	} {
		if _, err := f.v.Revoke(ctx, c.tok); ReasonOf(err) != c.want {
			t.Errorf("%s: %v, want %s", name, err, c.want)
		}
	}
	if ok, _ := f.rev.IsRevoked(ctx, testUSCC, "g-1"); ok {
		t.Fatal("a refused revocation was stored")
	}
	if _, err := f.v.Revoke(ctx, good); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(ctx, grantTok, req()); ReasonOf(err) != ReasonRevoked {
		t.Fatalf("after revocation: %v", err)
	}
}

func TestIssueRejectsBadClaims(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	for name, mod := range map[string]func(*Claims){
		"no audience":     func(c *Claims) { c.Audience = "" },
		"no scopes":       func(c *Claims) { c.Scopes = nil },
		"bad scope":       func(c *Claims) { c.Scopes = []string{"verify:tax"} },
		"exp before nbf":  func(c *Claims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) },
		"zero max uses":   func(c *Claims) { c.MaxUses = 0 },
		"control in iss":  func(c *Claims) { c.Issuer = "9111\n" },
		"no issuer":       func(c *Claims) { c.Issuer = "" },
		"purpose too big": func(c *Claims) { c.Purpose = strings.Repeat("x", 300) },
	} {
		c := baseClaims()
		mod(&c)
		if _, err := Issue(key, c); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
	c := baseClaims()
	c.ID = ""
	tok, err := Issue(key, c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Inspect(tok)
	if err != nil || len(got.ID) != 32 {
		t.Fatalf("generated id: %+v %v", got, err)
	}
}

func TestScopeParsing(t *testing.T) {
	good := map[string]Scope{
		"score:default-v1":           {Kind: "score", Model: "default-v1"},
		"score:m1.2":                 {Kind: "score", Model: "m1.2"},
		"verify:tax.annual_tax_paid": {Kind: "verify", Provider: "tax", Field: "annual_tax_paid"},
		"query:social.headcount":     {Kind: "query", Provider: "social", Field: "headcount"},
	}
	for s, want := range good {
		got, err := ParseScope(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("%s: %+v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "score:", "score", "verify:tax", "verify:.x", "query:tax.", "verify:tax.a.b", "admin:all", "score:a b", "verify:tax.*", strings.Repeat("a", 200)} {
		if _, err := ParseScope(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestVerifierRejectsIncompleteRequest(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, nil)
	for _, r := range []Request{{Scopes: []string{"score:default-v1"}}, {Audience: "bank-a"}} {
		_, err := f.v.Verify(context.Background(), tok, r)
		if err == nil || ReasonOf(err) != "" {
			t.Errorf("request %+v: %v", r, err)
		}
	}
}

func TestConcurrentUsesNeverExceedMax(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, nil) // max 5
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, over := 0, 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.v.Verify(context.Background(), tok, req())
			mu.Lock()
			defer mu.Unlock()
			switch ReasonOf(err) {
			case "":
				if err != nil {
					t.Error(err)
				}
				ok++
			case ReasonOverUseCount:
				over++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok != 5 || over != 35 {
		t.Fatalf("ok=%d over=%d, want 5/35", ok, over)
	}
}

type failingRecorder struct{}

func (failingRecorder) RecordDecision(context.Context, Decision) error {
	return errors.New("log unavailable")
}

func TestRecorderFailureFailsClosed(t *testing.T) {
	f := newFixture(t)
	v, _ := NewVerifier(Config{Directory: f.dir, Revocations: f.rev, Uses: f.uses, Recorder: failingRecorder{}, Now: func() time.Time { return t0 }})
	g, err := v.Verify(context.Background(), f.issue(t, nil), req())
	if err == nil || g != nil || ReasonOf(err) != "" {
		t.Fatalf("grant released without a record: %v %v", g, err)
	}
}
