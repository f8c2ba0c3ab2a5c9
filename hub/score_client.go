package hub

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"veil/modeling/score"
	"veil/modeling/scorecard"
	veilv1 "veil/proto/veil/v1"
)

// ScoreRow is one enterprise of a bank's request with its grant token.
type ScoreRow struct {
	Enterprise string
	Grant      string
}

// ScoreOptions configures ScoreRemote.
type ScoreOptions struct {
	Model       string
	Version     int
	Prescreen   bool
	Cutoff      float64 // pre-screen: PD cutoff
	Domain      float64 // pre-screen: 0 = default
	Chunk       int     // rows per call; 0 = one ciphertext's worth (16384)
	Concurrency int     // calls in flight; 0 = 2
	Progress    func(rowsDone int)
}

// ScoreOutcome is one row's result at the bank.
type ScoreOutcome struct {
	Enterprise string                  `json:"enterprise"`
	Score      *score.Score            `json:"score,omitempty"`
	Prescreen  *score.PrescreenOutcome `json:"prescreen,omitempty"`
	RefusedBy  string                  `json:"refused_by,omitempty"`
	Refused    string                  `json:"refused,omitempty"`
}

// ScoreSummary describes a finished ScoreRemote call.
type ScoreSummary struct {
	Model    string `json:"model"`
	Version  int    `json:"version"`
	ParamSet string `json:"param_set"`
	Scored   int    `json:"scored"`
	Refused  int    `json:"refused"`
	Calls    int    `json:"calls"`
}

// ScoreRemote scores rows for the bank through the platform, in chunks,
// and decrypts the results with the bank's key (which never leaves this
// process). A row refused anywhere comes back with the reason; the others
// are scored.
func ScoreRemote(ctx context.Context, conn grpc.ClientConnInterface, key *score.BankKey, rows []ScoreRow, opt ScoreOptions) ([]ScoreOutcome, *ScoreSummary, error) {
	if key == nil {
		return nil, nil, fmt.Errorf("score: no bank key")
	}
	chunk := opt.Chunk
	if chunk <= 0 {
		chunk = score.Slots(key.Params())
	}
	chunk = min(chunk, MaxScoreItems)
	conc := opt.Concurrency
	if conc <= 0 {
		conc = 2
	}
	client := veilv1.NewScoringClient(conn)
	out := make([]ScoreOutcome, len(rows))
	sum := &ScoreSummary{Model: opt.Model, Version: opt.Version}
	var mu sync.Mutex
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for lo := 0; lo < len(rows); lo += chunk {
		hi := min(lo+chunk, len(rows))
		g.Go(func() error {
			req := &veilv1.ScoreRequest{Model: opt.Model, Version: int64(opt.Version), Prescreen: opt.Prescreen, Cutoff: opt.Cutoff, Domain: opt.Domain}
			for _, r := range rows[lo:hi] {
				req.Items = append(req.Items, &veilv1.ScoreItem{Enterprise: r.Enterprise, Grant: r.Grant})
			}
			resp, err := client.Score(gctx, req)
			if err != nil {
				return err
			}
			if resp.GetParamSet() != key.Params().Name() {
				return fmt.Errorf("score: %w: model %s scores under %s but the bank key is for %s", score.ErrWrongParams, resp.GetModel(), resp.GetParamSet(), key.Params().Name())
			}
			card := scorecard.Scorecard{BasePoints: resp.GetBasePoints(), BaseOdds: resp.GetBaseOdds(), PDO: resp.GetPdo()}
			for i := lo; i < hi; i++ {
				out[i].Enterprise = rows[i].Enterprise
			}
			for _, rf := range resp.GetRefusals() {
				i := lo + int(rf.GetIndex())
				if i < lo || i >= hi {
					return fmt.Errorf("score: platform refused row %d outside the call", rf.GetIndex())
				}
				out[i].Refused, out[i].RefusedBy = rf.GetReason(), rf.GetParty()
			}
			for _, r := range resp.GetScored() {
				if r < 0 || int(r) >= hi-lo {
					return fmt.Errorf("score: platform scored row %d outside the call", r)
				}
			}
			n := len(resp.GetScored())
			if n > 0 {
				if opt.Prescreen {
					ps, err := key.DecryptPrescreen(gctx, resp.GetResults(), n)
					if err != nil {
						return err
					}
					for j, r := range resp.GetScored() {
						out[lo+int(r)].Prescreen = &ps[j]
					}
				} else {
					sc, err := key.DecryptScores(gctx, resp.GetResults(), n, card)
					if err != nil {
						return err
					}
					for j, r := range resp.GetScored() {
						out[lo+int(r)].Score = &sc[j]
					}
				}
			}
			mu.Lock()
			sum.Model, sum.Version, sum.ParamSet = resp.GetModel(), int(resp.GetVersion()), resp.GetParamSet()
			sum.Scored += n
			sum.Refused += len(resp.GetRefusals())
			sum.Calls++
			done += hi - lo
			d := done
			mu.Unlock()
			if opt.Progress != nil {
				opt.Progress(d)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return out, sum, nil
}

// RegisterBankKey registers the bank's scoring public key with the platform.
func RegisterBankKey(ctx context.Context, conn grpc.ClientConnInterface, key *score.BankKey) (*veilv1.RegisterBankKeyResponse, error) {
	pub, err := key.MarshalPublic()
	if err != nil {
		return nil, err
	}
	return veilv1.NewScoringClient(conn).RegisterBankKey(ctx, &veilv1.RegisterBankKeyRequest{PublicKey: pub})
}

// VerifyRemote asks a provider (through the platform) a signed yes/no
// question and checks the signature against the provider's published key.
func VerifyRemote(ctx context.Context, conn grpc.ClientConnInterface, req *veilv1.VerifyRequest) (*score.VerifyResult, error) {
	c := veilv1.NewScoringClient(conn)
	resp, err := c.Verify(ctx, req)
	if err != nil {
		return nil, err
	}
	var res score.VerifyResult
	if err := json.Unmarshal(resp.GetResultJson(), &res); err != nil {
		return nil, fmt.Errorf("verify: malformed result: %w", err)
	}
	k, err := c.ProviderKey(ctx, &veilv1.ProviderKeyRequest{Provider: req.GetProvider()})
	if err != nil {
		return nil, fmt.Errorf("verify: provider key: %w", err)
	}
	if err := res.Check(ed25519.PublicKey(k.GetPublicKey())); err != nil {
		return nil, err
	}
	return &res, nil
}
