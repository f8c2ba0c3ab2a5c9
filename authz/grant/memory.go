package grant

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
)

// MemoryDirectory is an in-process Directory (for an agent that mirrors the
// platform's directory, or for tests of code that uses grants).
type MemoryDirectory struct {
	mu   sync.RWMutex
	keys map[string]ed25519.PublicKey
}

// NewMemoryDirectory returns an empty directory.
func NewMemoryDirectory() *MemoryDirectory {
	return &MemoryDirectory{keys: map[string]ed25519.PublicKey{}}
}

// Register sets the key of an enterprise.
func (m *MemoryDirectory) Register(uscc string, key ed25519.PublicKey) error {
	if uscc == "" || len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("register enterprise %q: need a USCC and a %d-byte Ed25519 key", uscc, ed25519.PublicKeySize)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[uscc] = append(ed25519.PublicKey(nil), key...)
	return nil
}

// EnterpriseKey implements Directory.
func (m *MemoryDirectory) EnterpriseKey(_ context.Context, uscc string) (ed25519.PublicKey, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.keys[uscc]
	if !ok {
		return nil, fmt.Errorf("enterprise %q: %w", uscc, ErrUnknownEnterprise)
	}
	return k, nil
}

type grantKey struct{ issuer, id string }

// MemoryRevocations is an in-process RevocationStore.
type MemoryRevocations struct {
	mu      sync.RWMutex
	revoked map[grantKey]Revocation
}

// NewMemoryRevocations returns an empty store.
func NewMemoryRevocations() *MemoryRevocations {
	return &MemoryRevocations{revoked: map[grantKey]Revocation{}}
}

// Revoke implements RevocationStore.
func (m *MemoryRevocations) Revoke(_ context.Context, r Revocation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := grantKey{r.Issuer, r.GrantID}
	if _, ok := m.revoked[k]; !ok {
		m.revoked[k] = r
	}
	return nil
}

// IsRevoked implements RevocationStore.
func (m *MemoryRevocations) IsRevoked(_ context.Context, issuer, grantID string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.revoked[grantKey{issuer, grantID}]
	return ok, nil
}

// MemoryUses is an in-process UseCounter.
type MemoryUses struct {
	mu   sync.Mutex
	uses map[grantKey]int64
}

// NewMemoryUses returns an empty counter.
func NewMemoryUses() *MemoryUses { return &MemoryUses{uses: map[grantKey]int64{}} }

// Use implements UseCounter.
func (m *MemoryUses) Use(_ context.Context, issuer, grantID string, max int64) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := grantKey{issuer, grantID}
	n := m.uses[k]
	if n >= max {
		return n, false, nil
	}
	n++
	m.uses[k] = n
	return n, true, nil
}
