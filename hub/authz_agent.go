package hub

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"

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
	g, err := a.authz.verifier.Verify(ctx, token, req)
	rec := usageRecord{Job: req.JobID, Bank: req.Audience, Subject: req.Subject, Scope: strings.Join(req.Scopes, " ")}
	if err != nil {
		if r := grant.ReasonOf(err); r != "" {
			rec.Kind, rec.Detail = "grant_refused", string(r)
			a.recordUse(rec)
			a.log.Warn("grant refused", "reason", r, "bank", req.Audience, "scopes", req.Scopes, "job", req.JobID)
		}
		return nil, grantStatus(err)
	}
	rec.Kind, rec.Subject = "grant_use", g.Issuer
	rec.Detail = fmt.Sprintf("grant %s use %d of %d, purpose %s", g.ID, g.Uses, g.MaxUses, g.Purpose)
	a.recordUse(rec)
	return g, nil
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

// Sync records the whole directory, then every revocation it can verify.
func (z *agentAuthz) Sync(ctx context.Context, req *veilv1.AgentAuthzSyncRequest) (*veilv1.AgentAuthzSyncResponse, error) {
	out := &veilv1.AgentAuthzSyncResponse{}
	for _, e := range req.GetEnterprises() {
		if _, err := z.put(ctx, e.GetUscc(), e.GetPublicKey()); err != nil {
			return nil, err
		}
		out.Enterprises++
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
