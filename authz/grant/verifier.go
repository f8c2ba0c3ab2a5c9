package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultMaxTokenSize bounds a token's length; it is checked before any
// decoding. A grant with dozens of scopes is well under 2 KiB.
const DefaultMaxTokenSize = 8 << 10

// DefaultCacheSize is how many verified tokens a Verifier remembers by
// default (about 400 bytes each, so ~100 MB when full). It must exceed the
// grants a party sees in one cache TTL: the cache is LRU, and a batch of
// more distinct grants than it holds, repeated in order, would miss on
// every token.
const DefaultCacheSize = 1 << 18

// ErrUnknownEnterprise is what a Directory returns (possibly wrapped) for a
// USCC with no registered key.
var ErrUnknownEnterprise = errors.New("unknown enterprise")

// Directory gives the registered grant-signing key of an enterprise.
type Directory interface {
	EnterpriseKey(ctx context.Context, uscc string) (ed25519.PublicKey, error)
}

// RevocationStore records revoked grants, keyed by (issuer, grant ID).
type RevocationStore interface {
	Revoke(ctx context.Context, r Revocation) error
	IsRevoked(ctx context.Context, issuer, grantID string) (bool, error)
}

// UseCounter counts uses of a grant at one verifying party. Use must be
// atomic: record one more use only if fewer than max are recorded, and report
// the count after the call and whether the use was recorded.
type UseCounter interface {
	Use(ctx context.Context, issuer, grantID string, max int64) (count int64, ok bool, err error)
}

// DecisionRecorder receives every decision before Verify returns; if it
// fails, Verify fails (closed), so nothing is released unrecorded.
type DecisionRecorder interface {
	RecordDecision(ctx context.Context, d Decision) error
}

// Request describes what the caller wants the grant to authorize.
type Request struct {
	Audience string    // the calling party's ID (from its authenticated identity)
	Subject  string    // the enterprise the request is about; empty: not checked
	Scopes   []string  // every one must be granted, e.g. "score:default-v1"
	Time     time.Time // zero: now
	JobID    string    // passed through to the Decision for the audit log
}

// Grant is a verified grant as returned by Verify.
type Grant struct {
	Claims
	TokenSHA256 [32]byte
	Uses        int64 // uses recorded at this party, including this one
}

// Decision is one verification outcome, allow or deny.
type Decision struct {
	Time          time.Time
	Allowed       bool
	Reason        Reason // empty when allowed
	Detail        string
	Request       Request
	Claims        *Claims // verified claims; nil if the token never verified
	ClaimedIssuer string  // iss as written in the token, unverified (for refusals)
	TokenSHA256   string  // hex; empty for oversized tokens
	Uses          int64
}

// Config configures a Verifier. Directory, Revocations and Uses are required.
type Config struct {
	Directory    Directory
	Revocations  RevocationStore
	Uses         UseCounter
	Recorder     DecisionRecorder // optional
	Leeway       time.Duration    // clock skew allowed on iat/nbf/exp; 0 means 30s, negative means none
	MaxTokenSize int              // 0 means DefaultMaxTokenSize
	// CacheSize is how many verified tokens are remembered so the signature
	// and static claims are checked once per token; 0 means
	// DefaultCacheSize, negative disables the cache. Expiry, audience, scope, revocation and use count
	// are checked on every request regardless.
	CacheSize int
	// CacheTTL bounds how long a cached verification is trusted (so a key
	// replaced in the directory takes effect); 0 means 10 minutes.
	CacheTTL time.Duration
	Now      func() time.Time // 0: time.Now
}

// Verifier checks grants. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	leeway time.Duration
	cache  *verifiedCache
	parser *jwt.Parser
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Directory == nil || cfg.Revocations == nil || cfg.Uses == nil {
		return nil, errors.New("grant verifier: Directory, Revocations and Uses are required")
	}
	if cfg.MaxTokenSize == 0 {
		cfg.MaxTokenSize = DefaultMaxTokenSize
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	} else if leeway < 0 {
		leeway = 0
	}
	v := &Verifier{
		cfg:    cfg,
		leeway: leeway,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"EdDSA"}),
			jwt.WithStrictDecoding(),
			// Time and audience claims are checked by Verify itself on every
			// request, including cache hits, with refusal reasons of its own.
			jwt.WithoutClaimsValidation(),
		),
	}
	if cfg.CacheSize > 0 {
		v.cache = newVerifiedCache(cfg.CacheSize, cfg.CacheTTL)
	}
	return v, nil
}

// Verify checks that token authorizes req and, if it does, records one use.
// A refusal is a *Refusal; other errors are internal failures. The decision
// is given to the Recorder (if any) before Verify returns.
func (v *Verifier) Verify(ctx context.Context, token string, req Request) (*Grant, error) {
	if req.Audience == "" || len(req.Scopes) == 0 {
		return nil, errors.New("verify grant: request must name the audience and at least one scope")
	}
	now := req.Time
	if now.IsZero() {
		now = v.cfg.Now()
	}
	req.Time = now
	d := Decision{Time: now, Request: req}
	g, err := v.verify(ctx, token, req, now, &d)
	var ref *Refusal
	switch {
	case err == nil:
		d.Allowed = true
	case errors.As(err, &ref):
		d.Reason, d.Detail = ref.Reason, ref.Detail
	default:
		// An internal failure is not a decision on the grant; nothing to record.
		return nil, err
	}
	if v.cfg.Recorder != nil {
		if rerr := v.cfg.Recorder.RecordDecision(ctx, d); rerr != nil {
			return nil, fmt.Errorf("verify grant: record decision: %w", rerr)
		}
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (v *Verifier) verify(ctx context.Context, token string, req Request, now time.Time, d *Decision) (*Grant, error) {
	if len(token) > v.cfg.MaxTokenSize {
		return nil, refuse(ReasonOversized, "token is %d bytes, limit %d", len(token), v.cfg.MaxTokenSize)
	}
	sum := sha256.Sum256([]byte(token))
	d.TokenSHA256 = hex.EncodeToString(sum[:])

	var c *Claims
	if v.cache != nil {
		c = v.cache.get(sum, now)
	}
	if c == nil {
		var err error
		c, err = v.verifyStatic(ctx, token, d, nil)
		if err != nil {
			return nil, err
		}
		if v.cache != nil {
			v.cache.put(sum, c, now)
		}
	}
	d.Claims = c
	d.ClaimedIssuer = c.Issuer
	if err := v.checkClaims(c, req, now); err != nil {
		return nil, err
	}
	o, err := v.use(ctx, UseRequest{Issuer: c.Issuer, GrantID: c.ID, Max: c.MaxUses})
	if err != nil {
		return nil, err
	}
	if err := applyUse(c, o, d); err != nil {
		return nil, err
	}
	return &Grant{Claims: *c, TokenSHA256: sum, Uses: o.Count}, nil
}

// use checks the revocation of one grant and, if it is not revoked, records
// one use: the grant-by-grant form of BatchUseStore.UseBatch.
func (v *Verifier) use(ctx context.Context, r UseRequest) (UseOutcome, error) {
	revoked, err := v.cfg.Revocations.IsRevoked(ctx, r.Issuer, r.GrantID)
	if err != nil {
		return UseOutcome{}, fmt.Errorf("verify grant %s: revocation lookup: %w", r.GrantID, err)
	}
	if revoked {
		return UseOutcome{Revoked: true}, nil
	}
	n, ok, err := v.cfg.Uses.Use(ctx, r.Issuer, r.GrantID, r.Max)
	if err != nil {
		return UseOutcome{}, fmt.Errorf("verify grant %s: use counter: %w", r.GrantID, err)
	}
	return UseOutcome{Count: n, Used: ok}, nil
}

// applyUse records the use count of o in d and returns the refusal, if any,
// of grant c for that outcome.
func applyUse(c *Claims, o UseOutcome, d *Decision) *Refusal {
	if o.Revoked {
		return refuse(ReasonRevoked, "grant %s was revoked by %s", c.ID, c.Issuer)
	}
	d.Uses = o.Count
	if !o.Used {
		return refuse(ReasonOverUseCount, "grant %s allows %d uses, all used", c.ID, c.MaxUses)
	}
	return nil
}

// checkClaims checks the request-dependent claims of a grant whose
// signature and static claims verified: audience, subject, validity window
// and scopes. It runs on every request, cache hit or not.
func (v *Verifier) checkClaims(c *Claims, req Request, now time.Time) error {
	if subtle.ConstantTimeCompare([]byte(c.Audience), []byte(req.Audience)) != 1 {
		return refuse(ReasonWrongAudience, "grant is for %q, request from %q", c.Audience, req.Audience)
	}
	if req.Subject != "" && subtle.ConstantTimeCompare([]byte(c.Issuer), []byte(req.Subject)) != 1 {
		return refuse(ReasonWrongSubject, "grant is from %q, request is about %q", c.Issuer, req.Subject)
	}
	if now.Add(v.leeway).Before(c.NotBefore) {
		return refuse(ReasonNotYetValid, "valid from %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.Add(v.leeway).Before(c.IssuedAt) {
		return refuse(ReasonNotYetValid, "issued in the future (%s)", c.IssuedAt.UTC().Format(time.RFC3339))
	}
	if !now.Add(-v.leeway).Before(c.ExpiresAt) {
		return refuse(ReasonExpired, "expired at %s", c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	for _, want := range req.Scopes {
		if !hasScope(c.Scopes, want) {
			return refuse(ReasonOutOfScope, "scope %q not granted", want)
		}
	}
	return nil
}

func hasScope(granted []string, want string) bool {
	found := 0
	for _, s := range granted {
		// Constant time per comparison; scopes are not secret but this keeps
		// the check free of early exits that depend on the grant's content.
		found |= subtle.ConstantTimeCompare([]byte(s), []byte(want))
	}
	return found == 1
}

// allowedHeader lists the JOSE header fields a Veil token may carry. Fields
// that import keys (jwk, jku, x5u, x5c) or demand extensions (crit) are
// refused: the key always comes from the directory.
var allowedHeader = map[string]bool{"alg": true, "typ": true, "kid": true}

// checkHeader decodes the header segment itself so that the reason for a
// refusal (alg vs type vs structure) is exact, before golang-jwt parses.
func checkHeader(token, wantTyp string) *Refusal {
	if token == "" {
		return refuse(ReasonMalformed, "empty token")
	}
	if n := strings.Count(token, "."); n != 2 {
		return refuse(ReasonMalformed, "token has %d segments, want 3", n+1)
	}
	hseg, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.Strict().DecodeString(hseg)
	if err != nil {
		return refuse(ReasonMalformed, "header is not base64url: %v", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(raw, &hdr); err != nil || hdr == nil {
		return refuse(ReasonMalformed, "header is not a JSON object")
	}
	alg, ok := hdr["alg"].(string)
	if !ok {
		return refuse(ReasonAlgNotAllowed, "header has no alg")
	}
	if alg != "EdDSA" {
		return refuse(ReasonAlgNotAllowed, "alg %.20q, only EdDSA is accepted", alg)
	}
	for k := range hdr {
		if !allowedHeader[k] {
			return refuse(ReasonMalformed, "header field %.20q not allowed", k)
		}
	}
	if typ, _ := hdr["typ"].(string); typ != wantTyp {
		return refuse(ReasonMalformed, "token type %.40q, want %q", typ, wantTyp)
	}
	return nil
}

// verifyStatic checks a grant's structure, header, signature and static
// claims, noting the claimed issuer in d. known, when not nil, holds
// directory keys already fetched for this call (a batch prefetches them in
// one query); other issuers are looked up.
func (v *Verifier) verifyStatic(ctx context.Context, token string, d *Decision, known map[string]ed25519.PublicKey) (*Claims, error) {
	if r := checkHeader(token, GrantType); r != nil {
		return nil, r
	}
	var (
		w      wireClaims
		keyErr error
	)
	_, err := v.parser.ParseWithClaims(token, &w, func(t *jwt.Token) (any, error) {
		d.ClaimedIssuer = w.Issuer
		if k, ok := known[w.Issuer]; ok && w.Issuer != "" {
			return k, nil
		}
		var key ed25519.PublicKey
		key, keyErr = v.lookup(ctx, w.Issuer)
		if keyErr != nil {
			return nil, keyErr
		}
		return key, nil
	})
	if keyErr != nil {
		return nil, keyErr
	}
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return nil, refuse(ReasonBadSignature, "signature does not verify under %s's key", w.Issuer)
		default:
			return nil, refuse(ReasonMalformed, "%v", err)
		}
	}
	c, r := claimsFromWire(&w)
	if r != nil {
		return nil, r
	}
	return c, nil
}

func (v *Verifier) lookup(ctx context.Context, iss string) (ed25519.PublicKey, error) {
	if iss == "" {
		return nil, refuse(ReasonMalformed, "token has no iss")
	}
	key, err := v.cfg.Directory.EnterpriseKey(ctx, iss)
	if errors.Is(err, ErrUnknownEnterprise) {
		return nil, refuse(ReasonUnknownEnterprise, "no key registered for %.64q", iss)
	}
	if err != nil {
		return nil, fmt.Errorf("verify grant: key directory: %w", err)
	}
	if len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify grant: directory key for %q has %d bytes", iss, len(key))
	}
	return key, nil
}

// ForgetEnterprise drops cached verifications of grants issued by uscc; call
// it when that enterprise's key is replaced or withdrawn.
func (v *Verifier) ForgetEnterprise(uscc string) {
	v.ForgetEnterprises(map[string]bool{uscc: true})
}

// Inspect decodes a grant's claims WITHOUT verifying anything, for display
// (e.g. `veil grant show`). Never base a decision on its result.
func Inspect(token string) (*Claims, error) {
	if len(token) > DefaultMaxTokenSize {
		return nil, refuse(ReasonOversized, "token is %d bytes, limit %d", len(token), DefaultMaxTokenSize)
	}
	if r := checkHeader(token, GrantType); r != nil {
		return nil, r
	}
	var w wireClaims
	if _, _, err := jwt.NewParser(jwt.WithStrictDecoding()).ParseUnverified(token, &w); err != nil {
		return nil, refuse(ReasonMalformed, "%v", err)
	}
	c, r := claimsFromWire(&w)
	if r != nil {
		return nil, r
	}
	return c, nil
}
