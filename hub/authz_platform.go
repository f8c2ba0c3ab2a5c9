package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"veil/authz/audit"
	"veil/authz/grant"
	"veil/authz/keys"
	"veil/hub/pki"
	"veil/hub/store"
	"veil/modeling/dataset"
	veilv1 "veil/proto/veil/v1"
)

// Audit entry kinds written by the hub in addition to audit's own.
const (
	// KindGrantChecked records a dry-run check (`veil grant check`): the
	// decision is logged like any other, but no use is consumed.
	KindGrantChecked audit.Kind = "grant_checked"
	// KindRevocationRefused records a revocation whose signature or claims
	// did not verify.
	KindRevocationRefused audit.Kind = "revocation_refused"
)

// NoteKeyFile is the platform's checkpoint-signing key (Ed25519, PKCS #8
// PEM, mode 0600) inside the platform data directory; NoteKeyFile minus
// ".key" plus ".pub" holds its public half.
const NoteKeyFile = "audit-note.key"

// AuditMineMaxSkew bounds how far an AuditMine request's time may be from
// the platform's clock; nonces are remembered for twice as long.
const AuditMineMaxSkew = 5 * time.Minute

// platformAuthz is the platform's grant checking and audit log.
type platformAuthz struct {
	veilv1.UnimplementedAuthzServer

	p           *Platform
	name        string // the platform's party name
	log         *audit.Log
	grants      *grant.SQLStore
	verifier    *grant.Verifier // counts uses; logs request_allowed / request_denied
	checker     *grant.Verifier // dry run for CheckGrant: peeks at the use count
	verifierKey string          // note verifier key auditors pin
	nonces      *nonceCache
}

// seqHolder lets a recorder report the seq of the entry it appended to the
// handler that triggered it.
type seqHolderKey struct{}

type seqHolder struct{ seq uint64 }

// recorder writes grant decisions to the audit log.
type recorder struct {
	log       *audit.Log
	checkedBy string
	kind      audit.Kind // overrides the entry kind when set (dry-run checks)
}

func (r recorder) RecordDecision(ctx context.Context, d grant.Decision) error {
	e := audit.EntryFromDecision(d, r.checkedBy)
	if r.kind != "" {
		e.Kind = r.kind
		e.Details["check_only"] = "true"
	}
	// Commit even if the caller hung up: a decision is always logged.
	got, err := r.log.Append(context.WithoutCancel(ctx), e)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if h, ok := ctx.Value(seqHolderKey{}).(*seqHolder); ok {
		h.seq = got.Seq
	}
	return nil
}

// peekUses is a UseCounter that reports the current count without recording
// a use, so a dry-run check consumes nothing.
type peekUses struct{ s *grant.SQLStore }

func (u peekUses) Use(ctx context.Context, issuer, grantID string, max int64) (int64, bool, error) {
	n, err := u.s.UseCount(ctx, issuer, grantID)
	if err != nil {
		return 0, false, err
	}
	return n, n < max, nil
}

// newPlatformAuthz opens the audit log and the grant store on the platform
// database and registers the Authz service.
func newPlatformAuthz(ctx context.Context, p *Platform) (*platformAuthz, error) {
	name := p.cfg.Identity.Identity.Name
	priv, err := loadOrCreateNoteKey(p.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	origin := "veil-audit/" + name
	signer, err := audit.NewNoteSigner(origin, priv)
	if err != nil {
		return nil, fmt.Errorf("audit note signer: %w", err)
	}
	vkey, err := audit.VerifierKey(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("audit verifier key: %w", err)
	}
	lg, err := audit.Open(ctx, p.db, audit.Config{Signer: signer, CheckpointEvery: p.cfg.CheckpointEvery, CheckpointInterval: p.cfg.CheckpointInterval})
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	gs, err := grant.NewSQLStore(ctx, p.db)
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	v, err := grant.NewVerifier(grant.Config{Directory: gs, Revocations: gs, Uses: gs, Recorder: recorder{log: lg, checkedBy: name}})
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	chk, err := grant.NewVerifier(grant.Config{Directory: gs, Revocations: gs, Uses: peekUses{gs}, Recorder: recorder{log: lg, checkedBy: name, kind: KindGrantChecked}})
	if err != nil {
		return nil, fmt.Errorf("platform: %w", err)
	}
	return &platformAuthz{p: p, name: name, log: lg, grants: gs, verifier: v, checker: chk, verifierKey: vkey, nonces: newNonceCache(100_000)}, nil
}

// loadOrCreateNoteKey reads the checkpoint key from the data directory,
// creating it (mode 0600) on first start.
func loadOrCreateNoteKey(dataDir string) (ed25519.PrivateKey, error) {
	if dataDir == "" {
		return nil, errors.New("platform: set --data-dir: it holds the audit log's checkpoint-signing key (also with --db)")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("platform: data dir: %w", err)
	}
	path := filepath.Join(dataDir, NoteKeyFile)
	if st, err := os.Stat(path); err == nil {
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("platform: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
		}
		k, err := keys.LoadPrivate(path)
		if err != nil {
			return nil, fmt.Errorf("platform: audit checkpoint key: %w", err)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("platform: audit checkpoint key: %w", err)
	}
	_, priv, err := keys.WritePair(strings.TrimSuffix(path, ".key"), nil)
	if err != nil {
		return nil, fmt.Errorf("platform: create audit checkpoint key: %w", err)
	}
	return priv, nil
}

// start runs the timed checkpoints until ctx ends; the returned function
// waits for the loop to stop (call it before closing the database).
func (z *platformAuthz) start(ctx context.Context) (wait func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := z.log.Run(ctx); err != nil && ctx.Err() == nil {
			z.p.log.Error("audit checkpoints stopped", "error", err)
		}
	}()
	return func() { cancel(); <-done }
}

// Authorize checks a grant at the platform for req. The decision (allow or
// deny, with the reason) is committed to the audit log before Authorize
// returns. An empty req.Audience is the authenticated caller. A refusal is
// a gRPC PermissionDenied status whose message starts with the reason
// ("revoked: ..."); see GrantRefusal for the client side.
func (p *Platform) Authorize(ctx context.Context, token string, req grant.Request) (*grant.Grant, error) {
	gs, refs, err := p.AuthorizeBatch(ctx, []AuthorizeItem{{Token: token, Request: req}})
	if err != nil {
		return nil, err
	}
	if refs[0] != nil {
		return nil, refs[0]
	}
	return gs[0], nil
}

// AuthorizeItem is one grant check of a batch.
type AuthorizeItem struct {
	Token   string
	Request grant.Request
}

// AuthorizeBatch checks many grants (batch scoring) as Authorize does:
// signatures of tokens not seen before are verified on all cores (then
// cached by token hash), and the stateful part runs in ONE database
// transaction: the audit log's sequence numbers are reserved (its write
// lock), the grants' revocations are looked up and their use counts
// incremented with a few multi-row statements, and every decision (allow or
// deny, with the reason) is appended to the audit log; all of it commits
// together before AuthorizeBatch returns. grants[i] is the verified grant of
// items[i] or nil, and refusals[i] its PermissionDenied status ("<reason>:
// ..."). If err is not nil (an internal failure, e.g. the audit log could
// not be written) nothing was committed, no use was counted, and no result
// may be released. An empty Request.Audience is the authenticated caller.
func (p *Platform) AuthorizeBatch(ctx context.Context, items []AuthorizeItem) (grants []*grant.Grant, refusals []error, err error) {
	caller, hasCaller := CallerFrom(ctx)
	bi := make([]grant.BatchItem, len(items))
	for i, it := range items {
		bi[i] = grant.BatchItem{Token: it.Token, Request: it.Request}
		if bi[i].Request.Audience == "" && hasCaller {
			bi[i].Request.Audience = caller.Name
		}
	}
	if len(items) == 0 {
		return nil, nil, nil
	}
	b, err := p.authz.verifier.PrepareBatch(ctx, bi)
	if err != nil {
		return nil, nil, grantStatus(err)
	}
	// Commit even if the caller hung up: decisions are always logged.
	_, err = p.authz.log.AppendBatchFunc(context.WithoutCancel(ctx), b.Len(), func(ctx context.Context, tx *sql.Tx) ([]audit.Entry, error) {
		outs, err := p.authz.grants.UseBatchTx(ctx, tx, b.Uses())
		if err != nil {
			return nil, err
		}
		ds, gs, refs, err := b.Finish(outs)
		if err != nil {
			return nil, err
		}
		entries := make([]audit.Entry, len(ds))
		for i, d := range ds {
			entries[i] = audit.EntryFromDecision(d, p.authz.name)
		}
		grants, refusals = gs, refs
		return entries, nil
	})
	if err != nil {
		return nil, nil, status.Errorf(codes.Internal, "grant check: %v", err)
	}
	for i, r := range refusals {
		if r != nil {
			refusals[i] = grantStatus(r)
		}
	}
	return grants, refusals, nil
}

// AuditAppend commits one entry to the platform's audit log (Time is filled
// in if zero; Actor defaults to the platform) and returns it with its Seq.
func (p *Platform) AuditAppend(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	if e.Actor == "" {
		e.Actor = p.authz.name
	}
	got, err := p.authz.log.Append(ctx, e)
	if err != nil {
		return audit.Entry{}, status.Errorf(codes.Internal, "audit log append: %v", err)
	}
	return got, nil
}

// RegisterEnterprise records an enterprise's grant key in-process, exactly
// as the operator's RPC does (logged, then pushed to every agent).
func (p *Platform) RegisterEnterprise(ctx context.Context, uscc string, pub ed25519.PublicKey, replace bool) (*veilv1.AuthzRegisterEnterpriseResponse, error) {
	return p.authz.RegisterEnterprise(ctx, &veilv1.AuthzRegisterEnterpriseRequest{Uscc: uscc, PublicKey: pub, Replace: replace})
}

// AuditLog is the platform's audit log (for tests and the demo).
func (p *Platform) AuditLog() *audit.Log { return p.authz.log }

// AuditVerifierKey is the note verifier key of the platform's checkpoints,
// the value auditors and enterprises pin (`veil audit log-key`).
func (p *Platform) AuditVerifierKey() string { return p.authz.verifierKey }

// grantStatus maps a grant verification error to a gRPC status.
func grantStatus(err error) error {
	var r *grant.Refusal
	if errors.As(err, &r) {
		if r.Detail == "" {
			return status.Error(codes.PermissionDenied, string(r.Reason))
		}
		return status.Error(codes.PermissionDenied, string(r.Reason)+": "+r.Detail)
	}
	return status.Errorf(codes.Internal, "grant check failed: %v", err)
}

// GrantRefusal extracts the refusal reason from an error returned by
// Authorize (also after it crossed gRPC): ok is false if err is not a grant
// refusal.
func GrantRefusal(err error) (reason grant.Reason, detail string, ok bool) {
	if r := grant.ReasonOf(err); r != "" {
		var ref *grant.Refusal
		errors.As(err, &ref)
		return r, ref.Detail, true
	}
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.PermissionDenied {
		return "", "", false
	}
	msg := st.Message()
	// A handler may prefix its own context ("score: revoked: ..."): find
	// the first known reason at the start of a ": "-separated part.
	for rest := msg; rest != ""; {
		head, tail, _ := strings.Cut(rest, ": ")
		if isReason(head) {
			return grant.Reason(head), tail, true
		}
		rest = tail
	}
	return "", "", false
}

func isReason(s string) bool {
	switch grant.Reason(s) {
	case grant.ReasonMalformed, grant.ReasonOversized, grant.ReasonAlgNotAllowed, grant.ReasonBadSignature,
		grant.ReasonUnknownEnterprise, grant.ReasonMissingJTI, grant.ReasonExpired, grant.ReasonNotYetValid,
		grant.ReasonWrongAudience, grant.ReasonWrongSubject, grant.ReasonOutOfScope, grant.ReasonRevoked,
		grant.ReasonOverUseCount:
		return true
	}
	return false
}

// onJob writes a psi_job / list_check / train_job entry when a job starts
// and when it finishes (Platform.OnJob).
func (z *platformAuthz) onJob(ctx context.Context, kind, jobID string, parties []string, phase string, result any) error {
	e := audit.Entry{Kind: audit.Kind(kind), Actor: z.name, JobID: jobID, Details: map[string]string{"parties": strings.Join(parties, ","), "phase": phase}}
	if c, ok := CallerFrom(ctx); ok {
		e.Actor = c.Name
	}
	for _, name := range parties {
		if party, err := z.p.registry.GetParty(ctx, name); err == nil && party.Role == string(pki.RoleProvider) {
			e.Providers = append(e.Providers, name)
		}
	}
	// Copy the result's scalar fields (sizes, counts, model names: never
	// data values, which no job result carries) into the details.
	if b, err := json.Marshal(result); err == nil {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			for k, v := range m {
				switch x := v.(type) {
				case string:
					switch k {
					case "subject", "uscc":
						e.Subject = x
					case "job_id":
					default:
						e.Details[k] = x
					}
				case float64:
					e.Details[k] = strconv.FormatFloat(x, 'f', -1, 64)
				case bool:
					e.Details[k] = strconv.FormatBool(x)
				}
			}
		}
	}
	if _, err := z.log.Append(context.WithoutCancel(ctx), e); err != nil {
		z.p.log.Error("audit log: job entry not written", "job", jobID, "kind", kind, "phase", phase, "error", err)
		return err
	}
	return nil
}

// --- Authz service -----------------------------------------------------------

func enterpriseProto(e grant.Enterprise) *veilv1.AuthzEnterprise {
	return &veilv1.AuthzEnterprise{Uscc: e.USCC, PublicKey: e.Key, Fingerprint: keys.Fingerprint(e.Key), RegisteredUnix: e.RegisteredAt.Unix()}
}

// RegisterEnterprise records an enterprise's grant-signing key, logs it
// (before it takes effect) and pushes it to every agent.
func (z *platformAuthz) RegisterEnterprise(ctx context.Context, req *veilv1.AuthzRegisterEnterpriseRequest) (*veilv1.AuthzRegisterEnterpriseResponse, error) {
	uscc := dataset.NormalizeID(req.GetUscc())
	if err := dataset.ValidUSCC(uscc); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "register enterprise: %v", err)
	}
	if len(req.GetPublicKey()) != ed25519.PublicKeySize {
		return nil, status.Errorf(codes.InvalidArgument, "register enterprise: public key has %d bytes, want %d (Ed25519)", len(req.GetPublicKey()), ed25519.PublicKeySize)
	}
	key := ed25519.PublicKey(req.GetPublicKey())
	caller, ok := CallerFrom(ctx)
	if !ok {
		caller.Name = z.name // called in-process, not through the Guard
	}
	out := &veilv1.AuthzRegisterEnterpriseResponse{}
	old, err := z.grants.EnterpriseKey(ctx, uscc)
	switch {
	case err != nil && !errors.Is(err, grant.ErrUnknownEnterprise):
		return nil, status.Errorf(codes.Internal, "register enterprise: %v", err)
	case err == nil && old.Equal(key):
		// Already registered: nothing to log, but re-push to the agents.
	case err == nil && !req.GetReplace():
		return nil, status.Errorf(codes.AlreadyExists, "register enterprise %s: already registered with key %s; pass --replace to replace it", uscc, keys.Fingerprint(old))
	default:
		// Log first: a key that is in effect is always in the log.
		e := audit.Entry{Kind: audit.KindEnterpriseRegistered, Actor: caller.Name, Subject: uscc,
			Details: map[string]string{"fingerprint": keys.Fingerprint(key)}}
		if err == nil {
			e.Details["replaced_fingerprint"] = keys.Fingerprint(old)
		}
		got, aerr := z.log.Append(ctx, e)
		if aerr != nil {
			return nil, status.Errorf(codes.Internal, "register enterprise: audit log: %v", aerr)
		}
		out.AuditSeq = got.Seq
		if _, err := z.grants.RegisterEnterprise(ctx, uscc, key, true); err != nil {
			return nil, status.Errorf(codes.Internal, "register enterprise: %v", err)
		}
		z.verifier.ForgetEnterprise(uscc)
		z.checker.ForgetEnterprise(uscc)
		out.Changed = true
	}
	out.Enterprise = enterpriseProto(grant.Enterprise{USCC: uscc, Key: key, RegisteredAt: time.Now()})
	out.AgentsNotified, out.AgentsFailed = z.pushToAgents(ctx, func(ctx context.Context, c veilv1.AgentAuthzClient) error {
		_, err := c.PutEnterprise(ctx, &veilv1.AgentPutEnterpriseRequest{Uscc: uscc, PublicKey: key})
		return err
	})
	z.p.log.Info("enterprise registered", "uscc", uscc, "fingerprint", keys.Fingerprint(key), "changed", out.Changed, "by", caller.Name, "agents_failed", len(out.AgentsFailed))
	return out, nil
}

// ListEnterprises returns the key directory.
func (z *platformAuthz) ListEnterprises(ctx context.Context, _ *veilv1.AuthzListEnterprisesRequest) (*veilv1.AuthzListEnterprisesResponse, error) {
	es, err := z.grants.ListEnterprises(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	out := &veilv1.AuthzListEnterprisesResponse{}
	for _, e := range es {
		out.Enterprises = append(out.Enterprises, enterpriseProto(e))
	}
	return out, nil
}

// RevokeGrant takes an enterprise-signed revocation (no certificate needed:
// the signature is the authentication), logs it, stores it and forwards the
// signed statement to every agent, which verifies it itself.
func (z *platformAuthz) RevokeGrant(ctx context.Context, req *veilv1.AuthzRevokeGrantRequest) (*veilv1.AuthzRevokeGrantResponse, error) {
	token := req.GetRevocation()
	sum := sha256.Sum256([]byte(token))
	rev, err := z.verifier.VerifyRevocation(ctx, token)
	if err != nil {
		if r := grant.ReasonOf(err); r != "" {
			e := audit.Entry{Kind: KindRevocationRefused, Actor: "enterprise", Decision: audit.Deny, Reason: string(r),
				Details: map[string]string{"token_sha256": hex.EncodeToString(sum[:])}}
			if _, aerr := z.log.Append(context.WithoutCancel(ctx), e); aerr != nil {
				return nil, status.Errorf(codes.Internal, "revoke: audit log: %v", aerr)
			}
		}
		return nil, grantStatus(err)
	}
	out := &veilv1.AuthzRevokeGrantResponse{Uscc: rev.Issuer, GrantId: rev.GrantID, RevokedUnix: rev.RevokedAt.Unix()}
	already, err := z.grants.IsRevoked(ctx, rev.Issuer, rev.GrantID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "revoke: %v", err)
	}
	out.AlreadyRevoked = already
	if !already {
		e := audit.Entry{Kind: audit.KindGrantRevoked, Actor: rev.Issuer, Subject: rev.Issuer, GrantID: rev.GrantID,
			Details: map[string]string{"revoked_at": rev.RevokedAt.UTC().Format(time.RFC3339), "token_sha256": hex.EncodeToString(sum[:])}}
		got, err := z.log.Append(context.WithoutCancel(ctx), e)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "revoke: audit log: %v", err)
		}
		out.AuditSeq = got.Seq
		if err := z.grants.Revoke(context.WithoutCancel(ctx), *rev); err != nil {
			return nil, status.Errorf(codes.Internal, "revoke: %v", err)
		}
	}
	out.AgentsNotified, out.AgentsFailed = z.pushToAgents(ctx, func(ctx context.Context, c veilv1.AgentAuthzClient) error {
		_, err := c.Revoke(ctx, &veilv1.AgentRevokeRequest{Revocation: token})
		return err
	})
	z.p.log.Info("grant revoked", "uscc", rev.Issuer, "grant", rev.GrantID, "first", !already, "agents_failed", len(out.AgentsFailed))
	return out, nil
}

// AuditMineMessage is what an enterprise signs to ask for its audit entries.
func AuditMineMessage(uscc string, unixTime int64, nonce []byte) []byte {
	return fmt.Appendf(nil, "veil audit-mine v1\n%s\n%d\n%x\n", uscc, unixTime, nonce)
}

// AuditMine returns the entries about the signing enterprise, each with an
// inclusion proof against one signed checkpoint.
func (z *platformAuthz) AuditMine(ctx context.Context, req *veilv1.AuthzAuditMineRequest) (*veilv1.AuthzAuditMineResponse, error) {
	uscc := req.GetUscc()
	if err := dataset.ValidUSCC(uscc); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "audit mine: %v", err)
	}
	if len(req.GetNonce()) != 16 || len(req.GetSignature()) != ed25519.SignatureSize {
		return nil, status.Error(codes.InvalidArgument, "audit mine: want a 16-byte nonce and a 64-byte Ed25519 signature")
	}
	now := time.Now()
	at := time.Unix(req.GetUnixTime(), 0)
	if d := now.Sub(at); d > AuditMineMaxSkew || d < -AuditMineMaxSkew {
		return nil, status.Errorf(codes.PermissionDenied, "stale: request signed at %s, platform time %s (allowed skew %s)", at.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), AuditMineMaxSkew)
	}
	key, err := z.grants.EnterpriseKey(ctx, uscc)
	if errors.Is(err, grant.ErrUnknownEnterprise) {
		return nil, status.Errorf(codes.PermissionDenied, "%s: enterprise %s has no registered key", grant.ReasonUnknownEnterprise, uscc)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "audit mine: %v", err)
	}
	if !ed25519.Verify(key, AuditMineMessage(uscc, req.GetUnixTime(), req.GetNonce()), req.GetSignature()) {
		return nil, status.Errorf(codes.PermissionDenied, "%s: audit mine request is not signed by the key registered for %s", grant.ReasonBadSignature, uscc)
	}
	if err := z.nonces.use(uscc+"/"+hex.EncodeToString(req.GetNonce()), now, 2*AuditMineMaxSkew); err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "audit mine: %v", err)
	}
	cp, entries, err := z.log.Prove(ctx, audit.Query{Subject: uscc})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "audit mine: %v", err)
	}
	out := &veilv1.AuthzAuditMineResponse{}
	if cp != nil {
		out.Checkpoint = cp.Note
	}
	for _, pe := range entries {
		out.Entries = append(out.Entries, &veilv1.AuthzProvenEntry{Seq: pe.Seq, Data: pe.Data, Proof: pe.Proof})
	}
	z.p.log.Info("audit mine", "uscc", uscc, "entries", len(entries))
	return out, nil
}

// AuditLogKey returns the checkpoint verification key (public).
func (z *platformAuthz) AuditLogKey(context.Context, *veilv1.AuthzAuditLogKeyRequest) (*veilv1.AuthzAuditLogKeyResponse, error) {
	return &veilv1.AuthzAuditLogKeyResponse{Origin: z.log.Origin(), VerifierKey: z.verifierKey}, nil
}

// CheckGrant tells a bank whether the platform would accept its grant for
// the given scopes, and why not. The check is logged (grant_checked) but
// consumes no use.
func (z *platformAuthz) CheckGrant(ctx context.Context, req *veilv1.AuthzCheckGrantRequest) (*veilv1.AuthzCheckGrantResponse, error) {
	caller, _ := CallerFrom(ctx)
	if len(req.GetScopes()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "check grant: name at least one scope (e.g. score:default-v1)")
	}
	for _, s := range req.GetScopes() {
		if _, err := grant.ParseScope(s); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "check grant: %v", err)
		}
	}
	h := &seqHolder{}
	ctx = context.WithValue(ctx, seqHolderKey{}, h)
	g, err := z.checker.Verify(ctx, req.GetToken(), grant.Request{Audience: caller.Name, Subject: req.GetSubject(), Scopes: req.GetScopes()})
	out := &veilv1.AuthzCheckGrantResponse{}
	if err != nil {
		var r *grant.Refusal
		if !errors.As(err, &r) {
			return nil, status.Errorf(codes.Internal, "check grant: %v", err)
		}
		out.Reason, out.Detail, out.AuditSeq = string(r.Reason), r.Detail, h.seq
		if c, ierr := grant.Inspect(req.GetToken()); ierr == nil {
			out.GrantId, out.MaxUses = c.ID, c.MaxUses
		}
		return out, nil
	}
	out.Allowed, out.Subject, out.GrantId, out.Uses, out.MaxUses, out.ExpiresUnix, out.AuditSeq =
		true, g.Issuer, g.ID, g.Uses, g.MaxUses, g.ExpiresAt.Unix(), h.seq
	return out, nil
}

// AuditCheckpoints returns the log size and every checkpoint.
func (z *platformAuthz) AuditCheckpoints(ctx context.Context, _ *veilv1.AuthzAuditCheckpointsRequest) (*veilv1.AuthzAuditCheckpointsResponse, error) {
	size, err := z.log.Size(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	cps, err := z.log.Checkpoints(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	out := &veilv1.AuthzAuditCheckpointsResponse{Origin: z.log.Origin(), Size: size}
	for _, cp := range cps {
		out.Checkpoints = append(out.Checkpoints, cp.Note)
	}
	return out, nil
}

// auditBatch is how many entries go in one stream message.
const auditBatch = 500

// AuditEntries streams the stored entries with their stored leaf hashes.
func (z *platformAuthz) AuditEntries(req *veilv1.AuthzAuditEntriesRequest, stream veilv1.Authz_AuditEntriesServer) error {
	ctx := stream.Context()
	to := req.GetTo()
	if to == 0 {
		size, err := z.log.Size(ctx)
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		to = size
	}
	var batch []audit.RawEntry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		first, last := batch[0].Seq, batch[len(batch)-1].Seq
		var hashes [][]byte
		if last >= first {
			var err error
			if hashes, err = z.log.StoredLeafHashes(ctx, first, last+1); err != nil {
				return status.Errorf(codes.Internal, "%v", err)
			}
		}
		msg := &veilv1.AuthzAuditEntryBatch{}
		for _, e := range batch {
			ae := &veilv1.AuthzAuditEntry{Seq: e.Seq, Data: e.Data}
			if e.Seq >= first && e.Seq-first < uint64(len(hashes)) {
				ae.StoredLeafHash = hashes[e.Seq-first]
			}
			msg.Entries = append(msg.Entries, ae)
		}
		batch = batch[:0]
		return stream.Send(msg)
	}
	err := z.log.Entries(ctx, req.GetFrom(), to, func(e audit.RawEntry) error {
		batch = append(batch, e)
		if len(batch) == auditBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.Internal, "%v", err)
	}
	return nil
}

// AuditQuery streams the entries matching a filter. A provider may only ask
// about its own data.
func (z *platformAuthz) AuditQuery(req *veilv1.AuthzAuditQueryRequest, stream veilv1.Authz_AuditQueryServer) error {
	ctx := stream.Context()
	caller, _ := CallerFrom(ctx)
	if caller.Role == pki.RoleProvider && req.GetProvider() != caller.Name {
		return status.Errorf(codes.PermissionDenied, "a provider may only query its own data (--provider %s)", caller.Name)
	}
	q := audit.Query{Subject: req.GetSubject(), Actor: req.GetParty(), Provider: req.GetProvider(), Kind: audit.Kind(req.GetKind()), Limit: auditBatch}
	if req.GetSinceUnix() != 0 {
		q.Since = time.Unix(req.GetSinceUnix(), 0)
	}
	if req.GetUntilUnix() != 0 {
		q.Until = time.Unix(req.GetUntilUnix(), 0)
	}
	for {
		recs, err := z.log.Query(ctx, q)
		if err != nil {
			return status.Errorf(codes.DataLoss, "audit query: %v", err)
		}
		if len(recs) == 0 {
			return nil
		}
		msg := &veilv1.AuthzAuditEntryBatch{}
		for _, r := range recs {
			msg.Entries = append(msg.Entries, &veilv1.AuthzAuditEntry{Seq: r.Entry.Seq, Data: r.Data})
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		if len(recs) < auditBatch {
			return nil
		}
		q.FromSeq = recs[len(recs)-1].Entry.Seq + 1
	}
}

// SignCheckpoint signs a checkpoint of the current log now.
func (z *platformAuthz) SignCheckpoint(ctx context.Context, _ *veilv1.AuthzSignCheckpointRequest) (*veilv1.AuthzSignCheckpointResponse, error) {
	cp, err := z.log.Checkpoint(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	if cp == nil {
		return &veilv1.AuthzSignCheckpointResponse{}, nil
	}
	return &veilv1.AuthzSignCheckpointResponse{Checkpoint: cp.Note, Size: cp.Size}, nil
}

// --- pushing the directory and revocations to agents --------------------------

// pushToAgents calls fn on every registered agent concurrently and reports
// which were reached.
func (z *platformAuthz) pushToAgents(ctx context.Context, fn func(context.Context, veilv1.AgentAuthzClient) error) (notified, failed []string) {
	parties, err := z.p.registry.ListParties(ctx)
	if err != nil {
		return nil, []string{"registry: " + err.Error()}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, party := range parties {
		if party.Address == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := z.pushTo(ctx, party, fn)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, party.Name+": "+err.Error())
				z.p.log.Warn("agent not updated with grant directory", "agent", party.Name, "error", err)
			} else {
				notified = append(notified, party.Name)
			}
		}()
	}
	wg.Wait()
	sort.Strings(notified)
	sort.Strings(failed)
	return notified, failed
}

func (z *platformAuthz) pushTo(ctx context.Context, party store.Party, fn func(context.Context, veilv1.AgentAuthzClient) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn, _, err := z.p.AgentConn(ctx, party.Name)
	if err != nil {
		return err
	}
	if err := fn(ctx, veilv1.NewAgentAuthzClient(conn)); err != nil {
		return errors.New(status.Convert(err).Message())
	}
	return nil
}

// syncAgent sends the whole directory and every revocation to one agent
// (when it is registered or re-registered).
func (z *platformAuthz) syncAgent(ctx context.Context, party store.Party) error {
	if party.Address == "" {
		return nil
	}
	req, err := z.syncRequest(ctx)
	if err != nil {
		return err
	}
	return z.sendSync(ctx, party, req)
}

// syncRequest reads the whole directory and every revocation.
func (z *platformAuthz) syncRequest(ctx context.Context) (*veilv1.AgentAuthzSyncRequest, error) {
	es, err := z.grants.ListEnterprises(ctx)
	if err != nil {
		return nil, err
	}
	revs, err := z.grants.ListRevocations(ctx)
	if err != nil {
		return nil, err
	}
	req := &veilv1.AgentAuthzSyncRequest{}
	for _, e := range es {
		req.Enterprises = append(req.Enterprises, &veilv1.AgentPutEnterpriseRequest{Uscc: e.USCC, PublicKey: e.Key})
	}
	for _, r := range revs {
		req.Revocations = append(req.Revocations, r.Token)
	}
	return req, nil
}

// sendSync sends a sync request to one agent.
func (z *platformAuthz) sendSync(ctx context.Context, party store.Party, req *veilv1.AgentAuthzSyncRequest) error {
	var resp *veilv1.AgentAuthzSyncResponse
	err := z.pushTo(ctx, party, func(ctx context.Context, c veilv1.AgentAuthzClient) error {
		var err error
		resp, err = c.Sync(ctx, req)
		return err
	})
	if err != nil {
		z.p.log.Warn("agent not synced with grant directory", "agent", party.Name, "error", err)
		return fmt.Errorf("sync grant directory to %s: %w", party.Name, err)
	}
	if len(resp.GetRejected()) > 0 {
		z.p.log.Warn("agent rejected revocations", "agent", party.Name, "rejected", resp.GetRejected())
	}
	return nil
}

// --- replay protection ---------------------------------------------------------

// nonceCache remembers recently used nonces until they expire.
type nonceCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // nonce -> expiry
}

func newNonceCache(max int) *nonceCache { return &nonceCache{max: max, seen: map[string]time.Time{}} }

func (c *nonceCache) use(key string, now time.Time, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.seen[key]; ok && now.Before(exp) {
		return errors.New("replayed: this request (nonce) was already used")
	}
	if len(c.seen) >= c.max {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return errors.New("too many recent requests; try again in a few minutes")
		}
	}
	c.seen[key] = now.Add(ttl)
	return nil
}

// ImportEnterprises registers many enterprises' grant keys at once (bulk
// onboarding, benchmarks): the registrations of new or changed keys are
// appended to the audit log in one transaction first (a key in effect is
// always in the log), then stored in one transaction, and the directory is
// pushed to every registered agent with one Sync each. Keys are replaced
// without asking (an operator's bulk action). It returns how many keys were
// new or changed. It also works on a platform that is not serving yet (the
// agents registered later get the directory when they are added).
func (p *Platform) ImportEnterprises(ctx context.Context, es []grant.Enterprise) (int, error) {
	z := p.authz
	usccs := make([]string, 0, len(es))
	for i := range es {
		es[i].USCC = dataset.NormalizeID(es[i].USCC)
		if err := dataset.ValidUSCC(es[i].USCC); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "import enterprises: row %d: %v", i, err)
		}
		if len(es[i].Key) != ed25519.PublicKeySize {
			return 0, status.Errorf(codes.InvalidArgument, "import enterprises: %s: key has %d bytes, want %d", es[i].USCC, len(es[i].Key), ed25519.PublicKeySize)
		}
		usccs = append(usccs, es[i].USCC)
	}
	old, err := z.grants.EnterpriseKeys(ctx, usccs)
	if err != nil {
		return 0, status.Errorf(codes.Internal, "import enterprises: %v", err)
	}
	caller, ok := CallerFrom(ctx)
	if !ok {
		caller.Name = z.name
	}
	var entries []audit.Entry
	var changed []grant.Enterprise
	for _, e := range es {
		o, had := old[e.USCC]
		if had && o.Equal(e.Key) {
			continue
		}
		entry := audit.Entry{Kind: audit.KindEnterpriseRegistered, Actor: caller.Name, Subject: e.USCC,
			Details: map[string]string{"fingerprint": keys.Fingerprint(e.Key), "bulk": "true"}}
		if had {
			entry.Details["replaced_fingerprint"] = keys.Fingerprint(o)
		}
		entries = append(entries, entry)
		changed = append(changed, e)
		old[e.USCC] = e.Key // a USCC listed twice is logged once per change
	}
	if len(changed) == 0 {
		return 0, nil
	}
	if _, err := z.log.AppendBatch(ctx, entries); err != nil {
		return 0, status.Errorf(codes.Internal, "import enterprises: audit log: %v", err)
	}
	if _, err := z.grants.RegisterEnterprises(ctx, changed); err != nil {
		return 0, status.Errorf(codes.Internal, "import enterprises: %v", err)
	}
	forget := make(map[string]bool, len(changed))
	for _, e := range changed {
		forget[e.USCC] = true
	}
	z.verifier.ForgetEnterprises(forget)
	z.checker.ForgetEnterprises(forget)
	parties, err := p.registry.ListParties(ctx)
	if err != nil {
		return len(changed), status.Errorf(codes.Internal, "import enterprises: registry: %v", err)
	}
	var req *veilv1.AgentAuthzSyncRequest // read once, sent to every agent
	for _, party := range parties {
		if party.Address == "" {
			continue
		}
		if req == nil {
			if req, err = z.syncRequest(ctx); err != nil {
				return len(changed), status.Errorf(codes.Unavailable, "import enterprises: %v", err)
			}
		}
		if err := z.sendSync(ctx, party, req); err != nil {
			return len(changed), status.Errorf(codes.Unavailable, "import enterprises: %v", err)
		}
	}
	p.log.Info("enterprises imported", "count", len(es), "changed", len(changed), "by", caller.Name)
	return len(changed), nil
}
