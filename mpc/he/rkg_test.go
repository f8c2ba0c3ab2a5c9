package he

import (
	"errors"
	"testing"
)

func TestRKGRejectsBadSharesAndOrder(t *testing.T) {
	p, err := ByName(ScoringSmallSetName)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := NewCRSSeed()
	a, b := NewKeyParty(p), NewKeyParty(p)
	sa, err := a.NewRKGSession(seed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Round2(nil); err == nil {
		t.Fatal("round 2 before round 1 accepted")
	}
	r1a, err := sa.Round1()
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := b.NewRKGSession(seed)
	r1b, _ := sb.Round1()
	agg, err := NewRKGAggregator(p, seed, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.AddRound2(r1a); err == nil {
		t.Fatal("round-2 share before the round-1 sum accepted")
	}
	if err := agg.AddRound1(r1a[:len(r1a)-8]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated share: %v", err)
	}
	other, _ := ByName(ScoringSetName)
	if _, err := other.UnmarshalRelinKey(r1a); err == nil {
		t.Fatal("share of another parameter set accepted as a key")
	}
	if err := agg.AddRound1(r1a); err != nil {
		t.Fatal(err)
	}
	if _, err := agg.Round1Sum(); err == nil {
		t.Fatal("round-1 sum with a share missing")
	}
	if err := agg.AddRound1(r1b); err != nil {
		t.Fatal(err)
	}
	sum, err := agg.Round1Sum()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*RKGSession{sa, sb} {
		r2, err := s.Round2(sum)
		if err != nil {
			t.Fatal(err)
		}
		if err := agg.AddRound2(r2); err != nil {
			t.Fatal(err)
		}
	}
	rlk, err := agg.RelinKey()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := rlk.MarshalBinary()
	if _, err := p.UnmarshalRelinKey(kb); err != nil {
		t.Fatal(err)
	}
	train, _ := Training()
	if _, err := NewRKGAggregator(train, seed, 2); err == nil {
		t.Fatal("relinearisation key for a set without special primes")
	}
}
