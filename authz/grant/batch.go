package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
)

// BatchItem is one grant check of a batch: the token and what it should
// authorize.
type BatchItem struct {
	Token   string
	Request Request
}

// UseRequest asks to record one use of a grant, if it is not revoked and
// fewer than Max uses are recorded.
type UseRequest struct {
	Issuer  string
	GrantID string
	Max     int64
}

// UseOutcome is the result of one UseRequest.
type UseOutcome struct {
	Revoked bool  // the grant is revoked: no use recorded
	Count   int64 // uses recorded after this request
	Used    bool  // this request's use was recorded
}

// BatchUseStore checks revocation and records uses for many grants in one
// transaction. Requests are applied in order, so the same grant twice in a
// batch gets two consecutive uses (or a refusal once Max is reached). Use
// counts must stay exact under concurrent batches and single Use calls.
type BatchUseStore interface {
	UseBatch(ctx context.Context, reqs []UseRequest) ([]UseOutcome, error)
}

// BatchDirectory returns the keys of many enterprises in one lookup;
// enterprises without a key are absent from the map.
type BatchDirectory interface {
	EnterpriseKeys(ctx context.Context, usccs []string) (map[string]ed25519.PublicKey, error)
}

// Batch is a batch of grant checks whose stateless part (token structure,
// signature, static claims, audience, subject, validity window, scopes) is
// done; what remains is the revocation check and the use count (Uses), which
// the caller runs in its own transaction, and then Finish.
type Batch struct {
	items   []batchEntry
	uses    []UseRequest
	useItem []int // item of each use request
}

type batchEntry struct {
	d      Decision
	claims *Claims
	sum    [32]byte
	err    error // a *Refusal, set when refused before the stateful checks
}

// PrepareBatch runs the stateless checks of every item, verifying the
// signatures of tokens not in the cache on all cores. An error is an
// internal failure (the batch must not be answered); refusals are per item.
func (v *Verifier) PrepareBatch(ctx context.Context, items []BatchItem) (*Batch, error) {
	b := &Batch{items: make([]batchEntry, len(items))}
	now := v.cfg.Now()
	// Cache lookups first (cheap), collecting the misses.
	var miss []int
	for i, it := range items {
		req := it.Request
		if req.Audience == "" || len(req.Scopes) == 0 {
			return nil, errors.New("verify grant: request must name the audience and at least one scope")
		}
		if req.Time.IsZero() {
			req.Time = now
		}
		e := &b.items[i]
		e.d = Decision{Time: req.Time, Request: req}
		if len(it.Token) > v.cfg.MaxTokenSize {
			e.err = refuse(ReasonOversized, "token is %d bytes, limit %d", len(it.Token), v.cfg.MaxTokenSize)
			continue
		}
		e.sum = sha256.Sum256([]byte(it.Token))
		e.d.TokenSHA256 = hex.EncodeToString(e.sum[:])
		if v.cache != nil {
			e.claims = v.cache.get(e.sum, req.Time)
		}
		if e.claims == nil {
			miss = append(miss, i)
		}
	}
	if len(miss) > 0 {
		if err := v.verifyMisses(ctx, items, b, miss); err != nil {
			return nil, err
		}
	}
	for i := range b.items {
		e := &b.items[i]
		if e.err != nil {
			continue
		}
		e.d.Claims, e.d.ClaimedIssuer = e.claims, e.claims.Issuer
		if err := v.checkClaims(e.claims, e.d.Request, e.d.Request.Time); err != nil {
			e.err = err
			continue
		}
		b.uses = append(b.uses, UseRequest{Issuer: e.claims.Issuer, GrantID: e.claims.ID, Max: e.claims.MaxUses})
		b.useItem = append(b.useItem, i)
	}
	return b, nil
}

// verifyMisses verifies the tokens not found in the cache with a worker
// pool (Ed25519 verification dominates), prefetching the directory keys of
// the enterprises the requests name in one lookup when the directory can.
func (v *Verifier) verifyMisses(ctx context.Context, items []BatchItem, b *Batch, miss []int) error {
	var known map[string]ed25519.PublicKey
	if bd, ok := v.cfg.Directory.(BatchDirectory); ok {
		seen := map[string]bool{}
		var subjects []string
		for _, i := range miss {
			if s := items[i].Request.Subject; s != "" && !seen[s] {
				seen[s] = true
				subjects = append(subjects, s)
			}
		}
		if len(subjects) > 0 {
			var err error
			if known, err = bd.EnterpriseKeys(ctx, subjects); err != nil {
				return fmt.Errorf("verify grants: key directory: %w", err)
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(miss))
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		next    int
		firstEr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(miss) || firstEr != nil {
					mu.Unlock()
					return
				}
				i := miss[next]
				next++
				mu.Unlock()
				e := &b.items[i]
				c, err := v.verifyStatic(ctx, items[i].Token, &e.d, known)
				if err != nil {
					var ref *Refusal
					if !errors.As(err, &ref) {
						mu.Lock()
						if firstEr == nil {
							firstEr = err
						}
						mu.Unlock()
						return
					}
					e.err = err
					continue
				}
				e.claims = c
				if v.cache != nil {
					v.cache.put(e.sum, c, e.d.Request.Time)
				}
			}
		}()
	}
	wg.Wait()
	return firstEr
}

// Uses lists the grants that passed the stateless checks: check their
// revocation and record their uses (in this order) with a BatchUseStore,
// then pass the outcomes to Finish.
func (b *Batch) Uses() []UseRequest { return b.uses }

// Finish completes the batch with the outcomes of Uses (same order and
// length). It returns, per item, the decision to record, and either the
// verified grant or the refusal (a *Refusal).
func (b *Batch) Finish(outcomes []UseOutcome) (decisions []Decision, grants []*Grant, refusals []error, err error) {
	if len(outcomes) != len(b.uses) {
		return nil, nil, nil, fmt.Errorf("verify grants: %d use outcomes for %d use requests", len(outcomes), len(b.uses))
	}
	for k, i := range b.useItem {
		e := &b.items[i]
		if r := applyUse(e.claims, outcomes[k], &e.d); r != nil {
			e.err = r
		}
	}
	decisions = make([]Decision, len(b.items))
	grants = make([]*Grant, len(b.items))
	refusals = make([]error, len(b.items))
	for i := range b.items {
		e := &b.items[i]
		d := e.d
		if e.err != nil {
			var ref *Refusal
			errors.As(e.err, &ref)
			d.Reason, d.Detail = ref.Reason, ref.Detail
			refusals[i] = e.err
		} else {
			d.Allowed = true
			grants[i] = &Grant{Claims: *e.claims, TokenSHA256: e.sum, Uses: e.d.Uses}
		}
		decisions[i] = d
	}
	return decisions, grants, refusals, nil
}

// Len is the number of items in the batch.
func (b *Batch) Len() int { return len(b.items) }

// VerifyBatch checks many grants as Verify does, with one revocation-and-use
// transaction when the store is a BatchUseStore that is also the
// revocation store (otherwise grant by grant). The decisions are given to
// the Recorder (if any) before it returns, as a DecisionBatchRecorder's one
// call when it is one. A caller without a Recorder must record the returned
// decisions itself before releasing anything.
func (v *Verifier) VerifyBatch(ctx context.Context, items []BatchItem) (decisions []Decision, grants []*Grant, refusals []error, err error) {
	b, err := v.PrepareBatch(ctx, items)
	if err != nil {
		return nil, nil, nil, err
	}
	reqs := b.Uses()
	var outs []UseOutcome
	if bs, ok := v.cfg.Uses.(BatchUseStore); ok && sameStore(v.cfg.Uses, v.cfg.Revocations) {
		if outs, err = bs.UseBatch(ctx, reqs); err != nil {
			return nil, nil, nil, fmt.Errorf("verify grants: %w", err)
		}
	} else {
		outs = make([]UseOutcome, len(reqs))
		for k, r := range reqs {
			if outs[k], err = v.use(ctx, r); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	if decisions, grants, refusals, err = b.Finish(outs); err != nil {
		return nil, nil, nil, err
	}
	if v.cfg.Recorder != nil {
		if br, ok := v.cfg.Recorder.(DecisionBatchRecorder); ok {
			err = br.RecordDecisions(ctx, decisions)
		} else {
			for _, d := range decisions {
				if err = v.cfg.Recorder.RecordDecision(ctx, d); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("verify grants: record decisions: %w", err)
		}
	}
	return decisions, grants, refusals, nil
}

// sameStore reports whether a and b are the same store value (without
// panicking on uncomparable types).
func sameStore(a, b any) bool {
	ta, tb := reflect.TypeOf(a), reflect.TypeOf(b)
	return ta == tb && ta != nil && ta.Comparable() && a == b
}

// DecisionBatchRecorder records a batch's decisions at once (one audit
// transaction); VerifyBatch prefers it to one RecordDecision per item.
type DecisionBatchRecorder interface {
	RecordDecisions(ctx context.Context, ds []Decision) error
}

// ForgetEnterprises drops cached verifications of grants issued by any of
// usccs in one pass over the cache (a directory sync replacing many keys).
func (v *Verifier) ForgetEnterprises(usccs map[string]bool) {
	if v.cache != nil && len(usccs) > 0 {
		v.cache.forgetIssuers(usccs)
	}
}
