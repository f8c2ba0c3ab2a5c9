package hub

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/authz/grant"
	"veil/hub/store"
	veilv1 "veil/proto/veil/v1"
)

// AgentAuthzFile is the agent's own grant store (enterprise keys mirrored
// from the platform, verified revocations, its own use counts) inside its
// data directory.
const AgentAuthzFile = "authz.db"

// agentAuthz is a provider agent's independent grant check.
type agentAuthz struct {
	veilv1.UnimplementedAgentAuthzServer

	a        *Agent
	db       *store.DB // nil when the agent has no data dir (in-memory stores)
	dir      *grant.SQLStore
	mem      *grant.MemoryDirectory
	verifier *grant.Verifier
}

// newAgentAuthz opens the agent's grant store: SQLite in its data dir, or
// memory when it has none (tests, throw-away agents).
func newAgentAuthz(ctx context.Context, a *Agent) (*agentAuthz, error) {
	z := &agentAuthz{a: a}
	cfg := grant.Config{}
	if a.cfg.DataDir != "" {
		db, err := store.OpenSQLite(ctx, filepath.Join(a.cfg.DataDir, AgentAuthzFile))
		if err != nil {
			return nil, fmt.Errorf("agent: grant store: %w", err)
		}
		s, err := grant.NewSQLStore(ctx, db)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("agent: %w", err)
		}
		z.db, z.dir = db, s
		cfg.Directory, cfg.Revocations, cfg.Uses = s, s, s
	} else {
		z.mem = grant.NewMemoryDirectory()
		cfg.Directory, cfg.Revocations, cfg.Uses = z.mem, grant.NewMemoryRevocations(), grant.NewMemoryUses()
	}
	v, err := grant.NewVerifier(cfg)
	if err != nil {
		z.close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	z.verifier = v
	return z, nil
}

func (z *agentAuthz) close() {
	if z.db != nil {
		z.db.Close()
	}
}

// Authorize is the provider's own check of a grant, independent of the
// platform's: its own copy of the enterprise keys, the revocations it
// verified itself, and its own use count. req.Scopes should name what this
// agent is about to release (e.g. "verify:tax.annual_tax_paid" or the
// model's "score:<model>"); req.Audience is the bank the platform says it
// serves, which the grant must name. An allowed use is appended to the
// agent's local usage record (usage.jsonl) before Authorize returns, and so
// is a refusal. A refusal is a PermissionDenied status whose message starts
// with the reason.
func (a *Agent) Authorize(ctx context.Context, token string, req grant.Request) (*grant.Grant, error) {
	gs, refs, err := a.AuthorizeBatch(ctx, []AuthorizeItem{{Token: token, Request: req}})
	if err != nil {
		return nil, err
	}
	if refs[0] != nil {
		return nil, refs[0]
	}
	return gs[0], nil
}

// AuthorizeBatch is Authorize for many grants at once: signatures not seen
// before are verified on all cores (then cached by token hash), revocations
// and use counts are checked and counted in ONE transaction of the agent's
// own store, and every decision (allowed use or refusal with its reason) is
// appended to usage.jsonl with ONE write before AuthorizeBatch returns.
// grants[i] is the verified grant of items[i] or nil, and refusals[i] its
// PermissionDenied status. If err is not nil nothing may be released (uses
// counted before a failure stay counted: fail closed).
func (a *Agent) AuthorizeBatch(ctx context.Context, items []AuthorizeItem) (grants []*grant.Grant, refusals []error, err error) {
	if len(items) == 0 {
		return nil, nil, nil
	}
	bi := make([]grant.BatchItem, len(items))
	for i, it := range items {
		bi[i] = grant.BatchItem{Token: it.Token, Request: it.Request}
	}
	ds, grants, refusals, err := a.authz.verifier.VerifyBatch(ctx, bi)
	if err != nil {
		return nil, nil, grantStatus(err)
	}
	recs := make([]usageRecord, len(ds))
	reasons := map[grant.Reason]int{}
	now := time.Now().UTC()
	for i, d := range ds {
		req := d.Request
		rec := usageRecord{Time: now, Job: req.JobID, Bank: req.Audience, Subject: req.Subject, Scope: strings.Join(req.Scopes, " ")}
		if d.Allowed {
			g := grants[i]
			rec.Kind, rec.Subject = "grant_use", g.Issuer
			rec.Detail = "grant " + g.ID + " use " + strconv.FormatInt(g.Uses, 10) + " of " + strconv.FormatInt(g.MaxUses, 10) + ", purpose " + g.Purpose
		} else {
			rec.Kind, rec.Detail = "grant_refused", string(d.Reason)
			reasons[d.Reason]++
			refusals[i] = grantStatus(refusals[i])
		}
		recs[i] = rec
	}
	if err := a.recordUses(recs); err != nil {
		return nil, nil, status.Errorf(codes.Internal, "usage record: %v", err)
	}
	if len(reasons) > 0 {
		a.log.Warn("grants refused", "refused", reasons, "bank", items[0].Request.Audience, "job", items[0].Request.JobID)
	}
	return grants, refusals, nil
}

func (z *agentAuthz) put(ctx context.Context, uscc string, key []byte) (bool, error) {
	if len(key) != ed25519.PublicKeySize {
		return false, status.Errorf(codes.InvalidArgument, "enterprise %s: key has %d bytes, want %d", uscc, len(key), ed25519.PublicKeySize)
	}
	var changed bool
	if z.dir != nil {
		var err error
		// The platform's directory is authoritative for key replacement; it
		// logs every registration in the audit log.
		if changed, err = z.dir.RegisterEnterprise(ctx, uscc, ed25519.PublicKey(key), true); err != nil {
			return false, status.Errorf(codes.Internal, "%v", err)
		}
	} else {
		if err := z.mem.Register(uscc, ed25519.PublicKey(key)); err != nil {
			return false, status.Errorf(codes.InvalidArgument, "%v", err)
		}
		changed = true
	}
	if changed {
		z.verifier.ForgetEnterprise(uscc)
	}
	return changed, nil
}

// PutEnterprise records an enterprise's key pushed by the platform.
func (z *agentAuthz) PutEnterprise(ctx context.Context, req *veilv1.AgentPutEnterpriseRequest) (*veilv1.AgentPutEnterpriseResponse, error) {
	changed, err := z.put(ctx, req.GetUscc(), req.GetPublicKey())
	if err != nil {
		return nil, err
	}
	if changed {
		z.a.log.Info("enterprise key received", "uscc", req.GetUscc())
	}
	return &veilv1.AgentPutEnterpriseResponse{Changed: changed}, nil
}

// Revoke records a revocation after checking the enterprise's signature
// itself: the platform only carries it.
func (z *agentAuthz) Revoke(ctx context.Context, req *veilv1.AgentRevokeRequest) (*veilv1.AgentRevokeResponse, error) {
	rev, err := z.verifier.Revoke(ctx, req.GetRevocation())
	if err != nil {
		return nil, grantStatus(err)
	}
	z.a.log.Info("grant revoked", "uscc", rev.Issuer, "grant", rev.GrantID)
	z.a.recordUse(usageRecord{Kind: "grant_revoked", Subject: rev.Issuer, Detail: "grant " + rev.GrantID})
	return &veilv1.AgentRevokeResponse{Uscc: rev.Issuer, GrantId: rev.GrantID}, nil
}

// Sync records the whole directory (one transaction), then every
// revocation it can verify.
func (z *agentAuthz) Sync(ctx context.Context, req *veilv1.AgentAuthzSyncRequest) (*veilv1.AgentAuthzSyncResponse, error) {
	out := &veilv1.AgentAuthzSyncResponse{}
	if z.dir != nil {
		es := make([]grant.Enterprise, 0, len(req.GetEnterprises()))
		for _, e := range req.GetEnterprises() {
			if len(e.GetPublicKey()) != ed25519.PublicKeySize {
				return nil, status.Errorf(codes.InvalidArgument, "enterprise %s: key has %d bytes, want %d", e.GetUscc(), len(e.GetPublicKey()), ed25519.PublicKeySize)
			}
			es = append(es, grant.Enterprise{USCC: e.GetUscc(), Key: ed25519.PublicKey(e.GetPublicKey())})
		}
		changed, err := z.dir.RegisterEnterprises(ctx, es)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "sync directory: %v", err)
		}
		forget := make(map[string]bool, len(changed))
		for _, u := range changed {
			forget[u] = true
		}
		z.verifier.ForgetEnterprises(forget)
		out.Enterprises = int64(len(es))
	} else {
		for _, e := range req.GetEnterprises() {
			if _, err := z.put(ctx, e.GetUscc(), e.GetPublicKey()); err != nil {
				return nil, err
			}
			out.Enterprises++
		}
	}
	for _, tok := range req.GetRevocations() {
		if _, err := z.verifier.Revoke(ctx, tok); err != nil {
			if grant.ReasonOf(err) == "" {
				return nil, status.Errorf(codes.Internal, "sync revocations: %v", err)
			}
			out.Rejected = append(out.Rejected, err.Error())
			continue
		}
		out.Revocations++
	}
	z.a.log.Info("grant directory synced", "enterprises", out.Enterprises, "revocations", out.Revocations, "rejected", len(out.Rejected))
	return out, nil
}
