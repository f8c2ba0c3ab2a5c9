package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the log's size and root hash, in the
// C2SP tlog-checkpoint layout inside a signed note:
//
//	<origin>
//	<size>
//	<base64 root hash>
//
//	— <origin> <base64 key hash + Ed25519 signature>
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Note   []byte // the full signed note text
}

// noteSigner implements note.Signer with a raw Ed25519 key, so the platform's
// key can live in an ordinary key file (authz/keys) rather than in the
// sumdb "PRIVATE+KEY+..." encoding.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(s.key, msg), nil
}

// NewNoteSigner returns a signed-note signer named name (the log origin)
// using an Ed25519 private key.
func NewNoteSigner(name string, key ed25519.PrivateKey) (note.Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("note signer: not an Ed25519 private key")
	}
	v, err := NewNoteVerifier(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &noteSigner{name: name, hash: v.KeyHash(), key: key}, nil
}

// VerifierKey returns the text form of the checkpoint verification key
// ("<name>+<hash>+<base64>"), which auditors pin.
func VerifierKey(name string, pub ed25519.PublicKey) (string, error) {
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return "", fmt.Errorf("note verifier key: %w", err)
	}
	return vkey, nil
}

// NewNoteVerifier returns the verifier matching NewNoteSigner(name, key).
// note.NewVerifier(vkey) gives the same from a VerifierKey string.
func NewNoteVerifier(name string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := VerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("note verifier: %w", err)
	}
	return v, nil
}

func checkpointBody(origin string, size uint64, root []byte) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root))
}

// signCheckpoint produces the signed note for (size, root).
func signCheckpoint(s note.Signer, size uint64, root []byte) (*Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: checkpointBody(s.Name(), size, root)}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint at size %d: %w", size, err)
	}
	return &Checkpoint{Origin: s.Name(), Size: size, Root: append([]byte(nil), root...), Note: msg}, nil
}

// ParseCheckpoint verifies a signed checkpoint note with v and parses it. The
// origin line must equal the verifier's name.
func ParseCheckpoint(text []byte, v note.Verifier) (*Checkpoint, error) {
	if len(text) > 16<<10 {
		return nil, errors.New("checkpoint: note larger than 16 KiB")
	}
	n, err := note.Open(text, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) != 3 {
		return nil, fmt.Errorf("checkpoint: %d body lines, want 3 (origin, size, root)", len(lines))
	}
	if lines[0] != v.Name() {
		return nil, fmt.Errorf("checkpoint: origin %.80q, want %q", lines[0], v.Name())
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("checkpoint: bad size line %.40q", lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("checkpoint: bad root hash line %.80q", lines[2])
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: root, Note: bytes.Clone(text)}, nil
}
