package audit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendProveAndVerify(t *testing.T) {
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			k := newKeys(t)
			l := openLog(t, db, k, 16, time.Hour, newClock())
			fill(t, l, 100)
			size, err := l.Size(ctx)
			if err != nil || size != 100 {
				t.Fatalf("size %d %v", size, err)
			}
			cps, err := l.Checkpoints(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var sizes []uint64
			for _, cp := range cps {
				sizes = append(sizes, cp.Size)
			}
			// The first append signs (no checkpoint yet), then every 16.
			if fmt.Sprint(sizes) != "[1 17 33 49 65 81 97]" {
				t.Fatalf("checkpoint sizes %v", sizes)
			}
			r, err := l.VerifyStored(ctx, k.verifier, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !r.OK() || r.Entries != 100 || r.LatestCheckpoint != 97 || r.Unsigned != 3 || r.CheckpointsChecked != 7 {
				t.Fatalf("report %+v", r)
			}
			latest, err := l.Checkpoint(ctx) // on demand
			if err != nil || latest.Size != 100 {
				t.Fatalf("on-demand checkpoint: %+v %v", latest, err)
			}
			again, err := l.Checkpoint(ctx)
			if err != nil || !bytes.Equal(again.Note, latest.Note) {
				t.Fatalf("second on-demand checkpoint differs: %v", err)
			}

			// Inclusion proofs for every entry against the latest checkpoint.
			err = l.Entries(ctx, 0, 100, func(e RawEntry) error {
				p, err := l.InclusionProof(ctx, e.Seq, latest.Size)
				if err != nil {
					return err
				}
				got, err := VerifyInclusion(k.verifier, latest.Note, ProvenEntry{Seq: e.Seq, Data: e.Data, Proof: p})
				if err != nil {
					return err
				}
				if got.Seq != e.Seq {
					return fmt.Errorf("seq %d", got.Seq)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// Consistency between every stored checkpoint and the latest.
			for _, old := range cps {
				p, err := l.ConsistencyProof(ctx, old.Size, latest.Size)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyConsistency(k.verifier, old.Note, latest.Note, p); err != nil {
					t.Fatalf("consistency %d -> %d: %v", old.Size, latest.Size, err)
				}
				if len(p) > 0 {
					p[0] = bytes.Repeat([]byte{1}, 32)
					if err := VerifyConsistency(k.verifier, old.Note, latest.Note, p); err == nil {
						t.Fatalf("forged consistency proof %d -> %d accepted", old.Size, latest.Size)
					}
				}
			}
			if err := VerifyConsistency(k.verifier, latest.Note, cps[2].Note, nil); err == nil || !strings.Contains(err.Error(), "rolled back") {
				t.Fatalf("newer-to-older: %v", err)
			}
			if _, err := l.InclusionProof(ctx, 5, 101); err == nil {
				t.Fatal("proof beyond the log")
			}
		})
	}
}

func TestConcurrentAppendsDense(t *testing.T) {
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			k := newKeys(t)
			l := openLog(t, db, k, 50, time.Hour, newClock())
			const goroutines, each = 64, 8
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			seqs := make(chan uint64, goroutines*each)
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						e := sampleEntry(g*each + i)
						e.JobID = fmt.Sprintf("g%d-i%d", g, i)
						got, err := l.Append(ctx, e)
						if err != nil {
							errs <- err
							return
						}
						seqs <- got.Seq
					}
				}()
			}
			wg.Wait()
			close(errs)
			close(seqs)
			for err := range errs {
				t.Fatal(err)
			}
			seen := map[uint64]bool{}
			for s := range seqs {
				if seen[s] {
					t.Fatalf("seq %d handed out twice", s)
				}
				seen[s] = true
			}
			for s := range uint64(goroutines * each) {
				if !seen[s] {
					t.Fatalf("gap at seq %d", s)
				}
			}
			jobs := map[string]bool{}
			if err := l.Entries(ctx, 0, goroutines*each, func(e RawEntry) error {
				d, err := Decode(e.Data)
				if err != nil {
					return err
				}
				jobs[d.JobID] = true
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(jobs) != goroutines*each {
				t.Fatalf("%d distinct entries stored, want %d", len(jobs), goroutines*each)
			}
			r, err := l.VerifyStored(ctx, k.verifier, nil)
			if err != nil || !r.OK() || r.Entries != goroutines*each {
				t.Fatalf("verify: %+v %v", r, err)
			}
		})
	}
}

func TestAppendBatchAtomic(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	k := newKeys(t)
	l := openLog(t, db, k, 1000, time.Hour, newClock())
	batch := make([]Entry, 2500)
	for i := range batch {
		batch[i] = sampleEntry(i)
	}
	out, err := l.AppendBatch(ctx, batch)
	if err != nil || len(out) != 2500 || out[2499].Seq != 2499 {
		t.Fatalf("batch: %v", err)
	}
	bad := []Entry{sampleEntry(1), {Kind: "Bad Kind", Actor: "x"}}
	if _, err := l.AppendBatch(ctx, bad); err == nil {
		t.Fatal("invalid batch appended")
	}
	if n, _ := l.Size(ctx); n != 2500 {
		t.Fatalf("a failed batch changed the size to %d", n)
	}
	if _, err := l.Append(ctx, Entry{Kind: KindPSIJob}); err == nil {
		t.Fatal("entry without actor appended")
	}
	r, err := l.VerifyStored(ctx, k.verifier, nil)
	if err != nil || !r.OK() {
		t.Fatalf("%+v %v", r, err)
	}
	// A second Log on the same database (a restarted process) continues the tree.
	l2 := openLog(t, db, k, 1000, time.Hour, newClock())
	fill(t, l2, 3)
	if _, err := l2.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	r, err = l.VerifyStored(ctx, k.verifier, nil)
	if err != nil || !r.OK() || r.Entries != 2503 || r.Unsigned != 0 {
		t.Fatalf("after restart: %+v %v", r, err)
	}
}

func TestCheckpointPolicy(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	k := newKeys(t)
	c := newClock()
	l := openLog(t, db, k, 1000, 200*time.Millisecond, c)
	fill(t, l, 5) // first append signs at size 1
	cp, _ := l.LatestCheckpoint(ctx)
	if cp == nil || cp.Size != 1 {
		t.Fatalf("latest %+v", cp)
	}
	c.Advance(300 * time.Millisecond)
	fill(t, l, 1) // interval elapsed: this append signs
	if cp, _ = l.LatestCheckpoint(ctx); cp.Size != 6 {
		t.Fatalf("interval checkpoint at %d, want 6", cp.Size)
	}
	fill(t, l, 2)
	c.Advance(300 * time.Millisecond)
	// No append now: Run's ticker must sign the tail.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(runCtx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cp, err := l.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size == 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run did not sign the tail; latest %d", cp.Size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
	parsed, err := ParseCheckpoint(cp.Note, k.verifier)
	if err != nil || parsed.Size != cp.Size || parsed.Origin != origin {
		t.Fatalf("parse: %+v %v", parsed, err)
	}
	if !strings.HasPrefix(string(cp.Note), origin+"\n6\n") {
		t.Fatalf("note layout: %q", cp.Note)
	}
}

func TestQueriesAndExport(t *testing.T) {
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			k := newKeys(t)
			c := newClock()
			l := openLog(t, db, k, 10, time.Hour, c)
			fill(t, l, 30)
			mid := c.Now()
			fill(t, l, 30) // 60 entries, entries 30..59 after mid
			check := func(q Query, want func(i int, e Entry) bool) {
				t.Helper()
				recs, err := l.Query(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for i := range 60 {
					e := sampleEntry(i % 30)
					e.Seq = uint64(i)
					if want(i, e) {
						n++
					}
				}
				if len(recs) != n {
					t.Fatalf("query %+v: %d results, want %d", q, len(recs), n)
				}
				for _, r := range recs {
					if !want(int(r.Entry.Seq), r.Entry) {
						t.Fatalf("query %+v returned %+v", q, r.Entry)
					}
				}
			}
			check(Query{Subject: subjects[1]}, func(i int, e Entry) bool { return e.Subject == subjects[1] })
			check(Query{Actor: "bank-b"}, func(i int, e Entry) bool { return e.Actor == "bank-b" })
			check(Query{Provider: "social"}, func(i int, e Entry) bool { return (i%30)%4 == 0 })
			check(Query{Provider: "tax", Since: mid}, func(i int, e Entry) bool { return i >= 30 })
			check(Query{Kind: KindRequestDenied, Actor: "bank-a"}, func(i int, e Entry) bool { return (i%30)%5 == 0 && e.Actor == "bank-a" })
			check(Query{Provider: "customs"}, func(int, Entry) bool { return false })

			var buf bytes.Buffer
			n, err := l.ExportJSONL(ctx, &buf, Query{})
			if err != nil || n != 60 {
				t.Fatalf("export: %d %v", n, err)
			}
			lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
			cps, _ := l.Checkpoints(ctx)
			var notes [][]byte
			for _, cp := range cps {
				notes = append(notes, cp.Note)
			}
			if r := VerifyLog(k.verifier, lines, notes, nil); !r.OK() || r.Entries != 60 {
				t.Fatalf("exported log does not verify: %+v", r)
			}
		})
	}
}

func TestProveForEnterprise(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	k := newKeys(t)
	l := openLog(t, db, k, 1000, time.Hour, newClock())
	fill(t, l, 40)
	cp, mine, err := l.Prove(ctx, Query{Subject: subjects[2]})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 40 || len(mine) != 13 {
		t.Fatalf("checkpoint %d, %d entries", cp.Size, len(mine))
	}
	for _, pe := range mine {
		e, err := VerifyInclusion(k.verifier, cp.Note, pe)
		if err != nil {
			t.Fatal(err)
		}
		if e.Subject != subjects[2] {
			t.Fatalf("entry of %s in another's proofs", e.Subject)
		}
	}
	pe := mine[3]
	bad := pe
	bad.Data = bytes.Replace(pe.Data, []byte("bank-"), []byte("bank-x"), 1)
	if _, err := VerifyInclusion(k.verifier, cp.Note, bad); err == nil {
		t.Fatal("edited entry accepted")
	}
	bad = pe
	bad.Proof = append([][]byte(nil), pe.Proof...)
	bad.Proof[0] = bytes.Repeat([]byte{9}, 32)
	if _, err := VerifyInclusion(k.verifier, cp.Note, bad); err == nil {
		t.Fatal("forged proof accepted")
	}
	bad = pe
	bad.Seq = mine[4].Seq
	bad.Proof = mine[4].Proof
	if _, err := VerifyInclusion(k.verifier, cp.Note, bad); err == nil {
		t.Fatal("entry accepted at another position")
	}
	other := newKeys(t)
	if _, err := VerifyInclusion(other.verifier, cp.Note, pe); err == nil {
		t.Fatal("checkpoint accepted under another key")
	}
	forged := bytes.Replace(cp.Note, []byte("\n40\n"), []byte("\n41\n"), 1)
	if _, err := VerifyInclusion(k.verifier, forged, pe); err == nil {
		t.Fatal("edited checkpoint accepted")
	}
}
