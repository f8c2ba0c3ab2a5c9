package psi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// plainIntersection is the reference: sorted unique non-empty IDs common to all sets.
func plainIntersection(sets ...[]string) []string {
	count := map[string]int{}
	for _, s := range sets {
		seen := map[string]bool{}
		for _, id := range s {
			if id != "" && !seen[id] {
				seen[id] = true
				count[id]++
			}
		}
	}
	var out []string
	for id, c := range count {
		if c == len(sets) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// uscc makes an 18-character ID that looks like a Unified Social Credit Code.
func uscc(i int) string { return fmt.Sprintf("91%016d", i) }

func randomSets(r *rand.Rand, sizes []int, common int) [][]string {
	sets := make([][]string, len(sizes))
	next := 0
	for k := range sizes {
		for i := 0; i < common && i < sizes[k]; i++ {
			sets[k] = append(sets[k], uscc(1_000_000+i))
		}
		for len(sets[k]) < sizes[k] {
			sets[k] = append(sets[k], uscc(next))
			next++
		}
		r.Shuffle(len(sets[k]), func(i, j int) { sets[k][i], sets[k][j] = sets[k][j], sets[k][i] })
	}
	return sets
}

// runAlign runs an in-process alignment: sets[0] leads, the rest follow.
func runAlign(t interface{ Helper() }, ctx context.Context, cfg Config, sets [][]string) ([]*Alignment, error) {
	t.Helper()
	peers := map[string]Conn{}
	res := make([]*Alignment, len(sets))
	errs := make([]error, len(sets))
	var wg sync.WaitGroup
	for k := 1; k < len(sets); k++ {
		a, b := Pipe()
		peers[fmt.Sprintf("p%d", k)] = a
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer b.Close()
			res[k], errs[k] = AlignFollower(ctx, sets[k], b, cfg)
		}()
	}
	res[0], errs[0] = AlignLeader(ctx, sets[0], peers, cfg)
	for _, c := range peers {
		c.(*PipeConn).Close()
	}
	wg.Wait()
	return res, errors.Join(errs...)
}

func checkAlign(t *testing.T, cfg Config, sets [][]string) []*Alignment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := runAlign(t, ctx, cfg, sets)
	if err != nil {
		t.Fatalf("align: %v", err)
	}
	want := plainIntersection(sets...)
	for k, r := range res {
		if !slices.Equal(r.IDs, want) && !(len(r.IDs) == 0 && len(want) == 0) {
			t.Fatalf("party %d got %d IDs %v, want %d %v", k, len(r.IDs), head(r.IDs), len(want), head(want))
		}
		if r.Size != len(want) {
			t.Fatalf("party %d Size %d, want %d", k, r.Size, len(want))
		}
	}
	return res
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestAlignTwoPartyCases(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name   string
		a, b   int
		common int
	}{
		{"both empty", 0, 0, 0},
		{"leader empty", 0, 5, 0},
		{"follower empty", 5, 0, 0},
		{"disjoint", 40, 30, 0},
		{"identical", 50, 50, 50},
		{"one element each, equal", 1, 1, 1},
		{"one element each, different", 1, 1, 0},
		{"subset", 20, 60, 20},
		{"random overlap", 90, 70, 33},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sets := randomSets(r, []int{c.a, c.b}, c.common)
			res := checkAlign(t, Config{Session: "t-" + c.name, ChunkSize: 7}, sets)
			if res[0].PeerSizes["p1"] != c.b || res[1].PeerSizes["leader"] != c.a {
				t.Fatalf("peer sizes %v / %v, want %d / %d", res[0].PeerSizes, res[1].PeerSizes, c.b, c.a)
			}
			if res[0].PairwiseSizes["p1"] != c.common {
				t.Fatalf("pairwise size %d, want %d", res[0].PairwiseSizes["p1"], c.common)
			}
		})
	}
}

func TestAlignThreeParties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sets := randomSets(r, []int{120, 100, 80}, 25)
	// Items shared by the leader and only one follower must not be in the result.
	sets[1] = append(sets[1], sets[0][0:0]...)
	sets[1] = append(sets[1], uscc(5_000_000), uscc(5_000_001))
	sets[0] = append(sets[0], uscc(5_000_000), uscc(5_000_001))
	sets[2] = append(sets[2], uscc(6_000_000))
	sets[1] = append(sets[1], uscc(6_000_000)) // followers share it, the leader does not
	res := checkAlign(t, Config{Session: "three", ChunkSize: 16}, sets)
	if res[0].PairwiseSizes["p1"] != 27 || res[0].PairwiseSizes["p2"] != 25 {
		t.Fatalf("pairwise sizes %v, want p1=27 p2=25", res[0].PairwiseSizes)
	}
	if len(res[0].IDs) != 25 {
		t.Fatalf("intersection %d, want 25", len(res[0].IDs))
	}
}

func TestDuplicatedAndEmptyIDs(t *testing.T) {
	a := []string{"A1", "", "A2", "A1", "C", "A1", ""}
	b := []string{"C", "C", "", "A2", "B9"}
	res := checkAlign(t, Config{Session: "dups"}, [][]string{a, b})
	if want := []string{"A2", "C"}; !slices.Equal(res[0].IDs, want) {
		t.Fatalf("got %v, want %v", res[0].IDs, want)
	}
	wantA := InputStats{Input: 7, Unique: 3, Empty: 2, Duplicates: 2}
	wantB := InputStats{Input: 5, Unique: 3, Empty: 1, Duplicates: 1}
	if res[0].Input != wantA || res[1].Input != wantB {
		t.Fatalf("input stats %+v / %+v, want %+v / %+v", res[0].Input, res[1].Input, wantA, wantB)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	a, _ := Pipe()
	for _, cfg := range []Config{
		{},
		{Session: strings.Repeat("s", MaxSessionLen+1)},
		{Session: "x", Protocol: "rsa"},
		{Session: "x", ChunkSize: maxChunk + 1},
	} {
		if _, err := AlignLeader(ctx, []string{"a"}, map[string]Conn{"p": a}, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := AlignLeader(ctx, []string{"a"}, nil, Config{Session: "x"}); err == nil {
		t.Error("no followers accepted")
	}
}

// recordingConn keeps a copy of every frame sent through it.
type recordingConn struct {
	Conn
	mu     sync.Mutex
	frames [][]byte
}

func (r *recordingConn) Send(ctx context.Context, m *Message) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.frames = append(r.frames, b)
	r.mu.Unlock()
	return r.Conn.Send(ctx, m)
}

// TestWireCarriesNoIDs records both directions of a run and searches the
// frames for the raw IDs (design invariant 1).
func TestWireCarriesNoIDs(t *testing.T) {
	for _, proto := range []Protocol{ProtocolECDH, ProtocolKKRT} {
		t.Run(string(proto), func(t *testing.T) {
			sets := randomSets(rand.New(rand.NewPCG(5, 6)), []int{60, 50}, 20)
			a, b := Pipe()
			ra, rb := &recordingConn{Conn: a}, &recordingConn{Conn: b}
			cfg := Config{Session: "wire", Protocol: proto, ChunkSize: 8}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var fres *Alignment
			var ferr error
			done := make(chan struct{})
			go func() { defer close(done); fres, ferr = AlignFollower(ctx, sets[1], rb, cfg) }()
			lres, lerr := AlignLeader(ctx, sets[0], map[string]Conn{"p": ra}, cfg)
			<-done
			if lerr != nil || ferr != nil {
				t.Fatalf("leader %v, follower %v", lerr, ferr)
			}
			if !slices.Equal(lres.IDs, fres.IDs) || len(lres.IDs) != 20 {
				t.Fatalf("results differ or wrong size: %d vs %d", len(lres.IDs), len(fres.IDs))
			}
			all := append(append([][]byte{}, ra.frames...), rb.frames...)
			for _, set := range sets {
				for _, id := range set {
					for _, f := range all {
						if bytes.Contains(f, []byte(id)) {
							t.Fatalf("frame contains ID %q", id)
						}
					}
				}
			}
		})
	}
}

func TestListCheck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := GenerateListKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewListServer(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	list := []string{uscc(1), uscc(2), uscc(3), uscc(4), uscc(2)}
	info, err := srv.SetList(ctx, "dishonest", list)
	if err != nil || !info.Encoded || info.Size != 4 || info.Input.Duplicates != 1 {
		t.Fatalf("SetList: %+v, %v", info, err)
	}
	again, err := srv.SetList(ctx, "dishonest", []string{uscc(4), uscc(3), uscc(2), uscc(1)})
	if err != nil || again.Encoded || again.Version != info.Version {
		t.Fatalf("unchanged list re-encoded: %+v, %v", again, err)
	}

	check := func(session string, ids []string) (*ListCheck, *ListServeStats, error) {
		a, b := Pipe()
		cfg := Config{Session: session, ChunkSize: 3}
		var st *ListServeStats
		var serr error
		done := make(chan struct{})
		go func() { defer close(done); defer b.Close(); st, serr = srv.Serve(ctx, b, cfg) }()
		res, err := CheckList(ctx, a, "dishonest", ids, cfg)
		a.Close()
		<-done
		return res, st, errors.Join(err, serr)
	}
	applicants := []string{uscc(9), uscc(3), uscc(1), uscc(7), uscc(3), uscc(8)}
	res, st, err := check("c1", applicants)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{uscc(1), uscc(3)}; !slices.Equal(res.Matches, want) {
		t.Fatalf("matches %v, want %v", res.Matches, want)
	}
	if st.Checked != 5 || st.ReportedMatches != 2 || res.ListSize != 4 || res.ListVersion != info.Version {
		t.Fatalf("stats %+v, result %+v", st, res)
	}

	// The list changes: a new version, and the check sees the new content.
	changed, err := srv.SetList(ctx, "dishonest", []string{uscc(7)})
	if err != nil || !changed.Encoded || changed.Version == info.Version {
		t.Fatalf("changed list: %+v, %v", changed, err)
	}
	res, _, err = check("c2", applicants)
	if err != nil || !slices.Equal(res.Matches, []string{uscc(7)}) {
		t.Fatalf("after change: %v, %v", res, err)
	}

	// The same list under a restarted server with the same key encodes identically.
	srv2, err := NewListServer(key, 1)
	if err != nil {
		t.Fatal(err)
	}
	info2, err := srv2.SetList(ctx, "dishonest", []string{uscc(7)})
	if err != nil || info2.Version != changed.Version {
		t.Fatalf("restarted server: %+v %v", info2, err)
	}
	if len(srv2.lists["dishonest"].points) != pointLen {
		t.Fatal("wrong encoding size")
	}
	if !bytes.Equal(srv2.lists["dishonest"].points, srv.lists["dishonest"].points) {
		t.Fatal("same key and list give different encodings")
	}

	// Unknown list: both sides fail, nobody hangs.
	a, b := Pipe()
	done := make(chan error, 1)
	go func() { _, err := srv.Serve(ctx, b, Config{Session: "c3"}); done <- err }()
	if _, err := CheckList(ctx, a, "nope", applicants, Config{Session: "c3"}); err == nil || !errors.Is(err, ErrPeerAborted) {
		t.Fatalf("bank error %v, want peer aborted", err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "unknown list") {
		t.Fatalf("server error %v", err)
	}
	if got := srv.Lists(); len(got) != 1 || got[0].Name != "dishonest" {
		t.Fatalf("Lists() = %+v", got)
	}
	if _, err := NewListServer(make([]byte, 31), 1); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := NewListServer(make([]byte, 32), 1); err == nil {
		t.Fatal("zero key accepted")
	}
}
