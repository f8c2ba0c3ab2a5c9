package grant

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Revocation is an enterprise's signed statement that one of its grants is
// revoked.
type Revocation struct {
	Issuer    string    // the enterprise's USCC
	GrantID   string    // jti of the revoked grant
	RevokedAt time.Time // when the enterprise signed it
	Token     string    // the signed statement, kept as evidence
}

type wireRevocation struct {
	jwt.RegisteredClaims
	GrantID string `json:"grant_id"`
}

// SignRevocation signs a revocation of grant jti by enterprise uscc.
func SignRevocation(key ed25519.PrivateKey, uscc, jti string, at time.Time) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("sign revocation: not an Ed25519 private key")
	}
	if uscc == "" || len(uscc) > maxPartyLen || !isPrintable(uscc) {
		return "", errors.New("sign revocation: missing or bad USCC")
	}
	if jti == "" || len(jti) > maxIDLen || !isPrintable(jti) {
		return "", errors.New("sign revocation: missing or bad grant ID")
	}
	if at.IsZero() {
		at = time.Now()
	}
	w := wireRevocation{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:   uscc,
			Subject:  uscc,
			IssuedAt: jwt.NewNumericDate(at),
		},
		GrantID: jti,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, w)
	tok.Header["typ"] = RevocationType
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign revocation: %w", err)
	}
	return s, nil
}

// VerifyRevocation checks a signed revocation against the directory. A bad
// statement is a *Refusal, as for grants.
func (v *Verifier) VerifyRevocation(ctx context.Context, token string) (*Revocation, error) {
	if len(token) > v.cfg.MaxTokenSize {
		return nil, refuse(ReasonOversized, "revocation is %d bytes, limit %d", len(token), v.cfg.MaxTokenSize)
	}
	if r := checkHeader(token, RevocationType); r != nil {
		return nil, r
	}
	var (
		w      wireRevocation
		keyErr error
	)
	_, err := v.parser.ParseWithClaims(token, &w, func(t *jwt.Token) (any, error) {
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
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return nil, refuse(ReasonBadSignature, "revocation signature does not verify under %s's key", w.Issuer)
		}
		return nil, refuse(ReasonMalformed, "%v", err)
	}
	switch {
	case w.Subject != w.Issuer:
		return nil, refuse(ReasonMalformed, "revocation sub %q differs from iss %q", w.Subject, w.Issuer)
	case w.GrantID == "":
		return nil, refuse(ReasonMissingJTI, "revocation names no grant")
	case len(w.GrantID) > maxIDLen || !isPrintable(w.GrantID):
		return nil, refuse(ReasonMalformed, "bad grant_id")
	case w.IssuedAt == nil:
		return nil, refuse(ReasonMalformed, "revocation has no iat")
	case w.IssuedAt.After(v.cfg.Now().Add(v.leeway)):
		return nil, refuse(ReasonNotYetValid, "revocation dated in the future")
	}
	return &Revocation{Issuer: w.Issuer, GrantID: w.GrantID, RevokedAt: w.IssuedAt.Time, Token: token}, nil
}

// Revoke verifies a signed revocation and records it in the revocation
// store. Revoking twice is not an error.
func (v *Verifier) Revoke(ctx context.Context, token string) (*Revocation, error) {
	r, err := v.VerifyRevocation(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := v.cfg.Revocations.Revoke(ctx, *r); err != nil {
		return nil, fmt.Errorf("revoke grant %s of %s: %w", r.GrantID, r.Issuer, err)
	}
	return r, nil
}
