package psi

import (
	"context"
	"fmt"
	"testing"
)

func benchSets(n int) [][]string {
	a, b := make([]string, n), make([]string, n)
	for i := range n {
		a[i] = uscc(i)
		b[i] = uscc(i + n/2)
	}
	return [][]string{a, b}
}

func benchmarkAlign(b *testing.B, proto Protocol, n int) {
	sets := benchSets(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := runAlign(b, context.Background(), Config{Session: fmt.Sprintf("bench-%d", i), Protocol: proto}, sets)
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Size != n-n/2 {
			b.Fatalf("intersection %d, want %d", res[0].Size, n-n/2)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/item")
}

// Both parties in this process: the figures are for the two together.
func BenchmarkAlignECDH10k(b *testing.B)  { benchmarkAlign(b, ProtocolECDH, 10_000) }
func BenchmarkAlignKKRT100k(b *testing.B) { benchmarkAlign(b, ProtocolKKRT, 100_000) }

func BenchmarkMessageUnmarshal(b *testing.B) {
	frame, _ := (&Message{Session: "bench", Kind: KindPoints, Payload: make([]byte, 32*defaultChunk)}).MarshalBinary()
	b.SetBytes(int64(len(frame)))
	for i := 0; i < b.N; i++ {
		var m Message
		if err := m.UnmarshalBinary(frame); err != nil {
			b.Fatal(err)
		}
	}
}
