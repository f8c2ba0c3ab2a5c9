package score

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Op is a comparison of a verification request.
type Op string

// Comparisons.
const (
	OpGE Op = "ge"
	OpGT Op = "gt"
	OpLE Op = "le"
	OpLT Op = "lt"
	OpEQ Op = "eq"
	OpNE Op = "ne"
)

// ParseOp checks an operator name.
func ParseOp(s string) (Op, error) {
	switch op := Op(s); op {
	case OpGE, OpGT, OpLE, OpLT, OpEQ, OpNE:
		return op, nil
	}
	return "", fmt.Errorf("score: unknown comparison %q (use ge, gt, le, lt, eq or ne)", s)
}

// Compare returns whether value op ref holds.
func (op Op) Compare(value, ref float64) (bool, error) {
	if math.IsNaN(value) || math.IsNaN(ref) {
		return false, errors.New("score: cannot compare NaN")
	}
	switch op {
	case OpGE:
		return value >= ref, nil
	case OpGT:
		return value > ref, nil
	case OpLE:
		return value <= ref, nil
	case OpLT:
		return value < ref, nil
	case OpEQ:
		return value == ref, nil
	case OpNE:
		return value != ref, nil
	}
	return false, fmt.Errorf("score: unknown comparison %q", string(op))
}

// VerifyStatement is what a provider attests to: "enterprise's field op
// value is Answer", for the bank named by the grant, at Time.
type VerifyStatement struct {
	Provider   string    `json:"provider"`
	Enterprise string    `json:"enterprise"`
	Field      string    `json:"field"`
	Op         Op        `json:"op"`
	Value      float64   `json:"value"`
	Answer     bool      `json:"answer"`
	Bank       string    `json:"bank"`
	GrantID    string    `json:"grant_id"`
	Time       time.Time `json:"time"`
}

// VerifyResult is a signed VerifyStatement. It can be checked offline with
// only the provider's Ed25519 public key (included here for convenience; a
// checker must compare it with the key it trusts, e.g. by fingerprint).
type VerifyResult struct {
	Statement VerifyStatement `json:"statement"`
	PublicKey string          `json:"public_key"` // base64 Ed25519 public key of the provider
	KeyID     string          `json:"key_id"`     // hex SHA-256 prefix of the public key
	Signature string          `json:"signature"`  // base64 Ed25519 signature over SignedBytes
	Algorithm string          `json:"algorithm"`  // "ed25519"
	Context   string          `json:"context"`    // domain separator, "veil verify result v1"
}

const verifyContext = "veil verify result v1"

// SignedBytes is the exact message a provider signs: the domain separator,
// a newline and the statement's JSON (Go's encoding is deterministic for a
// struct).
func (s VerifyStatement) SignedBytes() ([]byte, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("score: encode statement: %w", err)
	}
	return append([]byte(verifyContext+"\n"), body...), nil
}

// KeyID returns a short identifier of an Ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// SignVerify signs a statement with the provider's key.
func SignVerify(key ed25519.PrivateKey, st VerifyStatement) (*VerifyResult, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("score: sign: not an Ed25519 private key")
	}
	msg, err := st.SignedBytes()
	if err != nil {
		return nil, err
	}
	pub := key.Public().(ed25519.PublicKey)
	return &VerifyResult{
		Statement: st, PublicKey: base64.StdEncoding.EncodeToString(pub), KeyID: KeyID(pub),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg)), Algorithm: "ed25519", Context: verifyContext,
	}, nil
}

// ErrBadSignature is wrapped by Check's errors about a signature that does
// not verify or a key that is not the trusted one.
var ErrBadSignature = errors.New("verification result signature is not valid")

// Check verifies the signature. trusted is the provider's public key as the
// checker knows it; nil means the key included in the result (then only the
// integrity is proven, and the caller must check KeyID against a trusted
// fingerprint).
func (r *VerifyResult) Check(trusted ed25519.PublicKey) error {
	if r.Algorithm != "ed25519" || r.Context != verifyContext {
		return fmt.Errorf("score: %w: unsupported algorithm %q / context %q", ErrBadSignature, r.Algorithm, r.Context)
	}
	included, err := base64.StdEncoding.DecodeString(r.PublicKey)
	if err != nil || len(included) != ed25519.PublicKeySize {
		return fmt.Errorf("score: %w: the included public key is not a base64 Ed25519 key", ErrBadSignature)
	}
	key := ed25519.PublicKey(included)
	if trusted != nil {
		if len(trusted) != ed25519.PublicKeySize {
			return fmt.Errorf("score: trusted key is not an Ed25519 public key")
		}
		if !trusted.Equal(key) {
			return fmt.Errorf("score: %w: signed by key %s, not the provider's key %s", ErrBadSignature, KeyID(key), KeyID(trusted))
		}
		key = trusted
	}
	if KeyID(key) != r.KeyID {
		return fmt.Errorf("score: %w: key ID %s does not match the key %s", ErrBadSignature, r.KeyID, KeyID(key))
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("score: %w: signature is not base64 Ed25519", ErrBadSignature)
	}
	msg, err := r.Statement.SignedBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(key, msg, sig) {
		return fmt.Errorf("score: %w: the statement was altered or signed by another key", ErrBadSignature)
	}
	return nil
}

// SigningKeyFile is the name of a provider's verification signing key in
// its data directory.
const SigningKeyFile = "verify-ed25519.key"

// LoadOrCreateSigningKey reads the provider's Ed25519 signing key from
// dir/SigningKeyFile, creating it (mode 0600) on first use. The private key
// never leaves the provider; the public key is published via the platform.
func LoadOrCreateSigningKey(dir string) (ed25519.PrivateKey, error) {
	if dir == "" {
		return nil, errors.New("score: signing key: no data directory")
	}
	path := filepath.Join(dir, SigningKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		seed, derr := hex.DecodeString(string(bytes.TrimRight(b, "\n\r ")))
		if derr != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("score: signing key %s: not a hex Ed25519 seed", path)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("score: signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("score: signing key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("score: signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // created concurrently: use that one
			return LoadOrCreateSigningKey(dir)
		}
		return nil, fmt.Errorf("score: signing key: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(priv.Seed()) + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("score: signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("score: signing key: %w", err)
	}
	return priv, nil
}
