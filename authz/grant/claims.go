package grant

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token types (the JOSE "typ" header). Distinct types stop a revocation from
// being replayed as a grant and vice versa.
const (
	GrantType      = "veil-grant+jwt"
	RevocationType = "veil-revocation+jwt"
)

// Limits on claim sizes; a grant is a small document and anything larger is
// refused as malformed rather than stored or logged.
const (
	maxIDLen      = 128
	maxPartyLen   = 128
	maxPurposeLen = 256
	maxScopes     = 64
	maxScopeLen   = 160
)

// Claims is the content of a grant.
type Claims struct {
	Issuer    string    // the enterprise's USCC; also the subject (sub)
	Audience  string    // the bank's party ID
	ID        string    // jti, unique per issuer
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf
	ExpiresAt time.Time // exp
	Purpose   string    // e.g. "loan-application"
	Scopes    []string  // "score:<model>", "verify:<provider>.<field>", "query:<provider>.<field>"
	MaxUses   int64     // uses allowed at each verifying party, >= 1
}

// Subject is the enterprise the grant is about; always equal to the issuer.
func (c *Claims) Subject() string { return c.Issuer }

// Providers lists the providers named by the verify: and query: scopes, in
// scope order without duplicates.
func (c *Claims) Providers() []string { return ScopeProviders(c.Scopes) }

// ScopeProviders lists the providers named by the verify: and query: scopes
// among scopes, in order without duplicates; scopes that do not parse are
// skipped.
func ScopeProviders(scopes []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil || sc.Provider == "" || seen[sc.Provider] {
			continue
		}
		seen[sc.Provider] = true
		out = append(out, sc.Provider)
	}
	return out
}

// wireClaims is the JSON form.
type wireClaims struct {
	jwt.RegisteredClaims
	Purpose string   `json:"purpose,omitempty"`
	Scope   []string `json:"scope"`
	MaxUses int64    `json:"max_uses"`
}

// Scope is a parsed scope string.
type Scope struct {
	Kind     string // "score", "verify" or "query"
	Model    string // for score
	Provider string // for verify and query
	Field    string // for verify and query
}

func (s Scope) String() string {
	if s.Kind == "score" {
		return "score:" + s.Model
	}
	return s.Kind + ":" + s.Provider + "." + s.Field
}

// ParseScope parses and validates a scope string.
func ParseScope(s string) (Scope, error) {
	if len(s) == 0 || len(s) > maxScopeLen {
		return Scope{}, fmt.Errorf("scope %.40q: length %d not in 1..%d", s, len(s), maxScopeLen)
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Scope{}, fmt.Errorf("scope %q: want kind:target", s)
	}
	switch kind {
	case "score":
		if !isName(rest, true) {
			return Scope{}, fmt.Errorf("scope %q: bad model name", s)
		}
		return Scope{Kind: kind, Model: rest}, nil
	case "verify", "query":
		prov, field, ok := strings.Cut(rest, ".")
		if !ok || !isName(prov, false) || !isName(field, false) {
			return Scope{}, fmt.Errorf("scope %q: want %s:<provider>.<field>", s, kind)
		}
		return Scope{Kind: kind, Provider: prov, Field: field}, nil
	}
	return Scope{}, fmt.Errorf("scope %q: unknown kind %q (want score, verify or query)", s, kind)
}

// isName accepts [A-Za-z0-9_-]+, plus '.' when dots is set (model names
// like default-v1.2).
func isName(s string, dots bool) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		case r == '.' && dots:
		default:
			return false
		}
	}
	return true
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// checkClaims validates the static content of a grant. It returns a refusal
// because Verify uses it on received tokens; Issue reports it as an error.
func checkClaims(c *Claims) *Refusal {
	switch {
	case c.Issuer == "" || len(c.Issuer) > maxPartyLen || !isPrintable(c.Issuer):
		return refuse(ReasonMalformed, "missing or bad iss")
	case c.ID == "":
		return refuse(ReasonMissingJTI, "grant has no jti")
	case len(c.ID) > maxIDLen || !isPrintable(c.ID):
		return refuse(ReasonMalformed, "bad jti")
	case c.Audience == "" || len(c.Audience) > maxPartyLen || !isPrintable(c.Audience):
		return refuse(ReasonMalformed, "missing or bad aud")
	case len(c.Purpose) > maxPurposeLen || !isPrintable(c.Purpose):
		return refuse(ReasonMalformed, "bad purpose")
	case c.IssuedAt.IsZero():
		return refuse(ReasonMalformed, "missing iat")
	case c.ExpiresAt.IsZero():
		return refuse(ReasonMalformed, "missing exp")
	case !c.ExpiresAt.After(c.NotBefore):
		return refuse(ReasonMalformed, "exp %s not after nbf %s", c.ExpiresAt.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339))
	case c.MaxUses < 1:
		return refuse(ReasonMalformed, "max_uses %d, want >= 1", c.MaxUses)
	case len(c.Scopes) == 0 || len(c.Scopes) > maxScopes:
		return refuse(ReasonMalformed, "%d scopes, want 1..%d", len(c.Scopes), maxScopes)
	}
	for _, s := range c.Scopes {
		if _, err := ParseScope(s); err != nil {
			return refuse(ReasonMalformed, "%v", err)
		}
	}
	return nil
}

// NewID returns a random 128-bit grant ID in hex.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("grant id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Issue signs a grant with the enterprise's key. Zero IssuedAt means now,
// zero NotBefore means IssuedAt, empty ID gets a random one. Times are
// truncated to whole seconds (the JWT NumericDate precision).
func Issue(key ed25519.PrivateKey, c Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("issue grant: signing key is not an Ed25519 private key")
	}
	if c.ID == "" {
		id, err := NewID()
		if err != nil {
			return "", fmt.Errorf("issue grant: %w", err)
		}
		c.ID = id
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = c.IssuedAt
	}
	c.IssuedAt = c.IssuedAt.Truncate(time.Second)
	c.NotBefore = c.NotBefore.Truncate(time.Second)
	c.ExpiresAt = c.ExpiresAt.Truncate(time.Second)
	if r := checkClaims(&c); r != nil {
		return "", fmt.Errorf("issue grant: %s", r.Detail)
	}
	w := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Issuer,
			Audience:  jwt.ClaimStrings{c.Audience},
			ID:        c.ID,
			IssuedAt:  jwt.NewNumericDate(c.IssuedAt),
			NotBefore: jwt.NewNumericDate(c.NotBefore),
			ExpiresAt: jwt.NewNumericDate(c.ExpiresAt),
		},
		Purpose: c.Purpose,
		Scope:   c.Scopes,
		MaxUses: c.MaxUses,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, w)
	tok.Header["typ"] = GrantType
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("issue grant: sign: %w", err)
	}
	return s, nil
}

// claimsFromWire converts decoded JSON claims, refusing what the grant format
// does not allow (several audiences, iss != sub).
func claimsFromWire(w *wireClaims) (*Claims, *Refusal) {
	if w.Subject != w.Issuer {
		return nil, refuse(ReasonMalformed, "sub %q differs from iss %q", w.Subject, w.Issuer)
	}
	if len(w.Audience) != 1 {
		return nil, refuse(ReasonMalformed, "grant names %d audiences, want exactly 1", len(w.Audience))
	}
	c := &Claims{
		Issuer:   w.Issuer,
		Audience: w.Audience[0],
		ID:       w.ID,
		Purpose:  w.Purpose,
		Scopes:   w.Scope,
		MaxUses:  w.MaxUses,
	}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.Time
	}
	if w.ExpiresAt != nil {
		c.ExpiresAt = w.ExpiresAt.Time
	}
	c.NotBefore = c.IssuedAt
	if w.NotBefore != nil {
		c.NotBefore = w.NotBefore.Time
	}
	if r := checkClaims(c); r != nil {
		return nil, r
	}
	return c, nil
}
