package bench

import (
	"context"
	"testing"
	"time"
)

// TestScoreLoadNoLostAudit runs a small deployment in this process with 8
// concurrent bank clients for 2 s, plus a small batch and a few latency
// requests, and checks that no request failed and that every decision
// reached the platform's audit log and every provider's usage record.
func TestScoreLoadNoLostAudit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunScore(ctx, ScoreOptions{N: 300, TrainRows: 300, Repeat: 3, Clients: 8, Duration: 2 * time.Second, LoadRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.First == nil || res.First.Scored != 300 || res.Second.Scored != 300 {
		t.Fatalf("batches: %+v %+v", res.First, res.Second)
	}
	if res.LatencyP50Ms <= 0 || res.LatencyP99Ms < res.LatencyP50Ms {
		t.Fatalf("latency p50 %v p99 %v", res.LatencyP50Ms, res.LatencyP99Ms)
	}
	l := res.Load
	if l == nil || l.Requests == 0 {
		t.Fatalf("no load test ran: %+v", l)
	}
	if !l.OK || l.Errors != 0 || l.AuditLost != 0 || l.RowsRefused != 0 {
		t.Fatalf("load test: %+v", l)
	}
	if got := l.AuditAfter - l.AuditBefore; got != uint64(l.Requests)*3 {
		t.Fatalf("%d audit entries for %d requests of 2 rows (want rows + 1 each)", got, l.Requests)
	}
	if len(l.UsageRecorded) != 3 {
		t.Fatalf("usage records of %d providers", len(l.UsageRecorded))
	}
	for p, n := range l.UsageRecorded {
		if int64(n) != l.Requests*2 {
			t.Errorf("%s: %d usage records for %d requests of 2 rows", p, n, l.Requests)
		}
	}
}

// BenchmarkScoreInProcess scores 20000 enterprises twice with every party
// in this process (for CPU profiles: go test -bench ScoreInProcess
// -benchtime 1x -cpuprofile cpu.out ./bench).
func BenchmarkScoreInProcess(b *testing.B) {
	for b.Loop() {
		res, err := RunScore(context.Background(), ScoreOptions{N: 20000})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.First.PerSecond, "first/s")
		b.ReportMetric(res.Second.PerSecond, "second/s")
	}
}
