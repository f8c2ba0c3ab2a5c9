package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"veil/authz/audit"
	"veil/authz/grant"
	"veil/hub/pki"
	veilv1 "veil/proto/veil/v1"
)

// Client helpers for grants and the audit log: the CLI and the demo call
// these; each is one or a few RPCs plus the client-side verification.

// LoadCAPool reads a PEM file of CA certificates (the platform CA's
// ca.crt) into a pool.
func LoadCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// DialPlatformNoCert connects to the platform WITHOUT a client certificate,
// as an enterprise does: the platform's certificate is still checked
// against caPool and must carry the platform role. Only the
// PublicEnterprise methods (RevokeGrant, AuditMine, AuditLogKey) accept
// such a connection.
func DialPlatformNoCert(caPool *x509.CertPool, addr string) (*grpc.ClientConn, error) {
	cfg := (&pki.Party{CAPool: caPool}).ClientTLS(&pki.Identity{Role: pki.RolePlatform})
	cfg.Certificates = nil
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// RegisterEnterprise records an enterprise's grant key (operator).
func RegisterEnterprise(ctx context.Context, conn grpc.ClientConnInterface, uscc string, pub ed25519.PublicKey, replace bool) (*veilv1.AuthzRegisterEnterpriseResponse, error) {
	return veilv1.NewAuthzClient(conn).RegisterEnterprise(ctx, &veilv1.AuthzRegisterEnterpriseRequest{Uscc: uscc, PublicKey: pub, Replace: replace})
}

// RevokeGrant signs a revocation of grant jti with the enterprise's key and
// sends it (conn may be certificate-less, see DialPlatformNoCert).
func RevokeGrant(ctx context.Context, conn grpc.ClientConnInterface, key ed25519.PrivateKey, uscc, jti string) (*veilv1.AuthzRevokeGrantResponse, error) {
	tok, err := grant.SignRevocation(key, uscc, jti, time.Now())
	if err != nil {
		return nil, fmt.Errorf("sign revocation: %w", err)
	}
	return veilv1.NewAuthzClient(conn).RevokeGrant(ctx, &veilv1.AuthzRevokeGrantRequest{Revocation: tok})
}

// CheckGrant asks the platform whether it would accept token for scopes
// from the calling bank (a dry run: no use is consumed).
func CheckGrant(ctx context.Context, conn grpc.ClientConnInterface, token, subject string, scopes ...string) (*veilv1.AuthzCheckGrantResponse, error) {
	return veilv1.NewAuthzClient(conn).CheckGrant(ctx, &veilv1.AuthzCheckGrantRequest{Token: token, Subject: subject, Scopes: scopes})
}

// AuditLogKey fetches the platform's checkpoint verifier key. Pin it out of
// band: a fetched key proves nothing against the platform that sent it.
func AuditLogKey(ctx context.Context, conn grpc.ClientConnInterface) (string, error) {
	r, err := veilv1.NewAuthzClient(conn).AuditLogKey(ctx, &veilv1.AuthzAuditLogKeyRequest{})
	if err != nil {
		return "", err
	}
	return r.GetVerifierKey(), nil
}

// MineResult is an enterprise's verified view of its audit entries.
type MineResult struct {
	Checkpoint []byte              `json:"-"`
	Size       uint64              `json:"checkpoint_size"`
	Root       []byte              `json:"checkpoint_root"`
	LogKey     string              `json:"log_key"`
	Pinned     bool                `json:"log_key_pinned"`
	Entries    []MineEntry         `json:"entries"`
	Checked    int                 `json:"proofs_verified"`
	Problems   []string            `json:"problems,omitempty"`
	Proofs     []audit.ProvenEntry `json:"-"`
}

// MineEntry is one entry of `veil audit mine` with its proof status.
type MineEntry struct {
	audit.Entry `json:"-"`
	// Leaf is the entry as the log committed to it (canonical JSON), or a
	// JSON string of the bytes received when they are not JSON.
	Leaf    json.RawMessage `json:"entry"`
	ProofOK bool            `json:"proof_ok"`
}

// AuditMine asks for the audit entries about enterprise uscc (signing the
// request with its key) and verifies each inclusion proof locally against
// the returned checkpoint, whose signature is checked with logKey (the
// pinned verifier key; if empty it is fetched and Pinned is false). An
// entry whose proof fails is reported in Problems, never dropped.
func AuditMine(ctx context.Context, conn grpc.ClientConnInterface, key ed25519.PrivateKey, uscc, logKey string) (*MineResult, error) {
	res := &MineResult{LogKey: logKey, Pinned: logKey != ""}
	if logKey == "" {
		k, err := AuditLogKey(ctx, conn)
		if err != nil {
			return nil, fmt.Errorf("fetch log key: %w", err)
		}
		res.LogKey = k
	}
	v, err := note.NewVerifier(res.LogKey)
	if err != nil {
		return nil, fmt.Errorf("log key %q: %w", res.LogKey, err)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	now := time.Now().Unix()
	resp, err := veilv1.NewAuthzClient(conn).AuditMine(ctx, &veilv1.AuthzAuditMineRequest{
		Uscc: uscc, UnixTime: now, Nonce: nonce, Signature: ed25519.Sign(key, AuditMineMessage(uscc, now, nonce)),
	})
	if err != nil {
		return nil, err
	}
	res.Checkpoint = resp.GetCheckpoint()
	if len(resp.GetEntries()) == 0 && len(res.Checkpoint) == 0 {
		return res, nil
	}
	cp, err := audit.ParseCheckpoint(res.Checkpoint, v)
	if err != nil {
		return nil, fmt.Errorf("the platform's checkpoint does not verify with log key %s: %w", res.LogKey, err)
	}
	res.Size, res.Root = cp.Size, cp.Root
	for _, pe := range resp.GetEntries() {
		p := audit.ProvenEntry{Seq: pe.GetSeq(), Data: pe.GetData(), Proof: pe.GetProof()}
		e, err := audit.VerifyInclusion(v, res.Checkpoint, p)
		me := MineEntry{Entry: e, ProofOK: err == nil, Leaf: pe.GetData()}
		if !json.Valid(me.Leaf) {
			me.Leaf, _ = json.Marshal(string(pe.GetData()))
		}
		if err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n")
			first = strings.TrimSuffix(strings.TrimPrefix(first, fmt.Sprintf("entry %d: ", pe.GetSeq())), ":")
			res.Problems = append(res.Problems, fmt.Sprintf("entry %d: %s (the entry or the log was altered)", pe.GetSeq(), first))
			if d, derr := audit.Decode(pe.GetData()); derr == nil {
				me.Entry = d
			} else {
				me.Entry.Seq = pe.GetSeq()
			}
		} else {
			res.Checked++
			if e.Subject != uscc {
				res.Problems = append(res.Problems, fmt.Sprintf("entry %d is about %q, not %s", e.Seq, e.Subject, uscc))
			}
		}
		res.Entries = append(res.Entries, me)
		res.Proofs = append(res.Proofs, p)
	}
	return res, nil
}

// AuditVerification is the result of VerifyAuditLog.
type AuditVerification struct {
	*audit.Report
	Origin  string `json:"origin"`
	LogKey  string `json:"log_key"`
	Pinned  bool   `json:"log_key_pinned"`
	Head    uint64 `json:"head_size"` // entries the platform says it has
	Sign    bool   `json:"checkpoint_signed_now"`
	Checked uint64 `json:"-"`
}

// VerifyAuditLog fetches every checkpoint and streams every entry (with the
// leaf hash stored beside it), and verifies the whole log client-side with
// audit.NewLogVerifier: checkpoint signatures (with logKey, fetched if
// empty), the recomputed tree, sequence numbers and consistency with saved
// (a checkpoint note kept from an earlier run; nil if none). With signNow
// the platform is first asked to sign a checkpoint covering the whole log.
func VerifyAuditLog(ctx context.Context, conn grpc.ClientConnInterface, logKey string, saved []byte, signNow bool) (*AuditVerification, error) {
	out := &AuditVerification{LogKey: logKey, Pinned: logKey != "", Sign: signNow}
	client := veilv1.NewAuthzClient(conn)
	if logKey == "" {
		k, err := AuditLogKey(ctx, conn)
		if err != nil {
			return nil, fmt.Errorf("fetch log key: %w", err)
		}
		out.LogKey = k
	}
	v, err := note.NewVerifier(out.LogKey)
	if err != nil {
		return nil, fmt.Errorf("log key %q: %w", out.LogKey, err)
	}
	if signNow {
		if _, err := client.SignCheckpoint(ctx, &veilv1.AuthzSignCheckpointRequest{}); err != nil {
			return nil, err
		}
	}
	cps, err := client.AuditCheckpoints(ctx, &veilv1.AuthzAuditCheckpointsRequest{})
	if err != nil {
		return nil, err
	}
	out.Origin, out.Head = cps.GetOrigin(), cps.GetSize()
	lv := audit.NewLogVerifier(v, cps.GetCheckpoints(), saved)
	stream, err := client.AuditEntries(ctx, &veilv1.AuthzAuditEntriesRequest{To: cps.GetSize()})
	if err != nil {
		return nil, err
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		for _, e := range b.GetEntries() {
			lv.AddStored(e.GetData(), e.GetStoredLeafHash())
		}
	}
	out.Report = lv.Finish()
	if out.Report.Entries != out.Head {
		out.Report.Problems = append(out.Report.Problems, audit.Problem{Index: -1, Check: audit.CheckSequence, Detail: fmt.Sprintf(
			"the log head records %d entries but %d were returned: entries were deleted", out.Head, out.Report.Entries)})
	}
	return out, nil
}

// AuditStream calls fn for every entry a query or export stream returns.
func AuditStream(ctx context.Context, conn grpc.ClientConnInterface, q *veilv1.AuthzAuditQueryRequest, fn func(seq uint64, data []byte) error) error {
	client := veilv1.NewAuthzClient(conn)
	type receiver interface {
		Recv() (*veilv1.AuthzAuditEntryBatch, error)
	}
	var stream receiver
	var err error
	if q == nil {
		stream, err = client.AuditEntries(ctx, &veilv1.AuthzAuditEntriesRequest{})
	} else {
		stream, err = client.AuditQuery(ctx, q)
	}
	if err != nil {
		return err
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range b.GetEntries() {
			if err := fn(e.GetSeq(), e.GetData()); err != nil {
				return err
			}
		}
	}
}
