package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

const (
	privatePEMType = "PRIVATE KEY"
	publicPEMType  = "PUBLIC KEY"
	// maxKeyFile bounds what is read from a key file: a PEM Ed25519 key is
	// about 120 bytes, so anything much larger is not a key.
	maxKeyFile = 16 << 10
)

// Generate makes a new Ed25519 key pair from r (crypto/rand.Reader if nil).
func Generate(r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return pub, priv, nil
}

// MarshalPrivate encodes priv as a PKCS #8 PEM block.
func MarshalPrivate(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("marshal private key: want %d bytes, got %d", ed25519.PrivateKeySize, len(priv))
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privatePEMType, Bytes: der}), nil
}

// MarshalPublic encodes pub as a PKIX PEM block.
func MarshalPublic(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("marshal public key: want %d bytes, got %d", ed25519.PublicKeySize, len(pub))
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicPEMType, Bytes: der}), nil
}

// ParsePrivate decodes a PKCS #8 PEM Ed25519 private key.
func ParsePrivate(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block found")
	}
	if block.Type != privatePEMType {
		return nil, fmt.Errorf("parse private key: PEM type %q, want %q", block.Type, privatePEMType)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("parse private key: trailing data after the PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parse private key: %T is not an Ed25519 key", k)
	}
	return priv, nil
}

// ParsePublic decodes an Ed25519 public key: a PKIX PEM block, or the bare
// base64 (standard or URL alphabet) of the 32 key bytes, which is how a key is
// pasted into a command line or a JSON document.
func ParsePublic(data []byte) (ed25519.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		s := strings.TrimSpace(string(data))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if raw, err := enc.Strict().DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
				return ed25519.PublicKey(raw), nil
			}
		}
		return nil, errors.New("parse public key: neither a PEM block nor the base64 of 32 key bytes")
	}
	if block.Type != publicPEMType {
		return nil, fmt.Errorf("parse public key: PEM type %q, want %q", block.Type, publicPEMType)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, errors.New("parse public key: trailing data after the PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("parse public key: %T is not an Ed25519 key", k)
	}
	return pub, nil
}

// LoadPrivate reads a private key file written by WritePair.
func LoadPrivate(path string) (ed25519.PrivateKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	priv, err := ParsePrivate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// LoadPublic reads a public key file (PEM or bare base64).
func LoadPublic(path string) (ed25519.PublicKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	pub, err := ParsePublic(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// WritePair generates a key pair and writes prefix+".key" (mode 0600) and
// prefix+".pub" (mode 0644). Existing files are never overwritten.
func WritePair(prefix string, r io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if prefix == "" {
		return nil, nil, errors.New("write key pair: empty output prefix")
	}
	pub, priv, err := Generate(r)
	if err != nil {
		return nil, nil, err
	}
	privPEM, err := MarshalPrivate(priv)
	if err != nil {
		return nil, nil, err
	}
	pubPEM, err := MarshalPublic(pub)
	if err != nil {
		return nil, nil, err
	}
	privPath, pubPath := prefix+".key", prefix+".pub"
	// Refuse before writing anything if the public file exists, so a failure
	// cannot leave a new private key beside an old public one.
	if _, err := os.Stat(pubPath); err == nil {
		return nil, nil, fmt.Errorf("write key pair: %s already exists", pubPath)
	}
	if err := writeExclusive(privPath, privPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeExclusive(pubPath, pubPEM, 0o644); err != nil {
		os.Remove(privPath)
		return nil, nil, err
	}
	return pub, priv, nil
}

// Fingerprint is "SHA256:" and the unpadded base64 of SHA-256(pub), the same
// shape OpenSSH prints, for comparing keys out of band.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("read key file %s: larger than %d bytes, not a key", path, maxKeyFile)
	}
	return data, nil
}
