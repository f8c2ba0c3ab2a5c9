package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/circl/group"

	"veil/mpc/psi"
)

// PSIOptions configures RunPSI.
type PSIOptions struct {
	N        int          `json:"n"`        // items per party (default 100000)
	Protocol psi.Protocol `json:"protocol"` // "ecdh" (default) or "kkrt"
	// SkipFloor skips the ECDH floor measurement (it takes as long as the
	// run itself).
	SkipFloor bool `json:"skip_floor"`
}

// PSIResult is the outcome of one two-party n x n alignment with 50 %
// overlap, both parties in this process over psi.Pipe.
type PSIResult struct {
	N            int     `json:"n"`
	Protocol     string  `json:"protocol"`
	Intersection int     `json:"intersection"`
	Seconds      float64 `json:"seconds"`
	// FloorSeconds (ECDH only) is the time of the bare cryptography of the
	// same run, on all cores: for each item on each side one
	// HashToElement and two scalar multiplications.
	FloorSeconds float64 `json:"floor_seconds,omitempty"`
	Ratio        float64 `json:"ratio,omitempty"` // Seconds / FloorSeconds
	// CPUSeconds and FloorCPUSeconds are the process's user+system CPU
	// time for the run and the floor; CPURatio is their ratio. On a shared
	// machine they are steadier than wall-clock time.
	CPUSeconds      float64 `json:"cpu_seconds"`
	FloorCPUSeconds float64 `json:"floor_cpu_seconds,omitempty"`
	CPURatio        float64 `json:"cpu_ratio,omitempty"`
	// PeakHeapSysBytes is the largest runtime.MemStats.HeapSys sampled
	// during the run; PeakRSSBytes is the process's VmHWM (whole process,
	// both parties together).
	PeakHeapSysBytes uint64 `json:"peak_heap_sys_bytes"`
	PeakRSSBytes     uint64 `json:"peak_rss_bytes,omitempty"`
	Workers          int    `json:"workers"`
	GoMaxProcs       int    `json:"gomaxprocs"`
}

// psiIDs returns the two parties' IDs: n each, the first n/2 shared.
func psiIDs(n int) (leader, follower []string) {
	leader = make([]string, n)
	follower = make([]string, n)
	for i := range n {
		leader[i] = fmt.Sprintf("91%016d", i)
		if i < n/2 {
			follower[i] = leader[i]
		} else {
			follower[i] = fmt.Sprintf("92%016d", i)
		}
	}
	return leader, follower
}

// RunPSI runs the alignment and, for ECDH, the floor.
func RunPSI(ctx context.Context, opt PSIOptions) (*PSIResult, error) {
	if opt.N == 0 {
		opt.N = 100_000
	}
	if opt.N < 0 {
		return nil, fmt.Errorf("bench psi: n = %d", opt.N)
	}
	if opt.Protocol == "" {
		opt.Protocol = psi.ProtocolECDH
	}
	leaderIDs, followerIDs := psiIDs(opt.N)
	res := &PSIResult{N: opt.N, Protocol: string(opt.Protocol), GoMaxProcs: runtime.GOMAXPROCS(0), Workers: runtime.GOMAXPROCS(0)}
	cfg := psi.Config{Session: fmt.Sprintf("bench-%d-%d", opt.N, time.Now().UnixNano()), Protocol: opt.Protocol}

	stop := psiSampleHeap(&res.PeakHeapSysBytes)
	a, b := psi.Pipe()
	start, cpu0 := time.Now(), selfCPU()
	var wg sync.WaitGroup
	var ferr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer b.Close()
		_, ferr = psi.AlignFollower(ctx, followerIDs, b, cfg)
	}()
	al, lerr := psi.AlignLeader(ctx, leaderIDs, map[string]psi.Conn{"follower": a}, cfg)
	a.Close()
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = selfCPU() - cpu0
	stop()
	if err := errors.Join(lerr, ferr); err != nil {
		return nil, fmt.Errorf("bench psi: %w", err)
	}
	res.Intersection = al.Size
	if al.Size != opt.N/2 {
		return nil, fmt.Errorf("bench psi: intersection %d, want %d", al.Size, opt.N/2)
	}
	if opt.Protocol == psi.ProtocolECDH && !opt.SkipFloor {
		cpu0 := selfCPU()
		floor, err := PSIFloor(ctx, opt.N, runtime.GOMAXPROCS(0))
		if err != nil {
			return nil, err
		}
		res.FloorSeconds = floor
		res.FloorCPUSeconds = selfCPU() - cpu0
		res.Ratio = res.Seconds / floor
		res.CPURatio = res.CPUSeconds / res.FloorCPUSeconds
	}
	res.PeakRSSBytes = peakRSS()
	return res, nil
}

// PSIFloor times, on workers goroutines, what an n x n ECDH-PSI cannot
// avoid: for each of the 2n items one RFC 9380 HashToElement and two
// variable-base scalar multiplications.
func PSIFloor(ctx context.Context, n, workers int) (float64, error) {
	g := group.Ristretto255
	dst := []byte("VEIL-PSI-BENCH-FLOOR")
	s := g.RandomNonZeroScalar(nil)
	var next atomic.Int64
	const batch = 1024
	total := int64(2 * n)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, f := g.NewElement(), g.NewElement()
			var buf [18]byte
			for ctx.Err() == nil {
				lo := next.Add(batch) - batch
				if lo >= total {
					return
				}
				for i := lo; i < min(lo+batch, total); i++ {
					b := strconv.AppendInt(buf[:0], i, 10)
					h := g.HashToElement(b, dst)
					e.Mul(h, s)
					f.Mul(e, s)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("bench psi floor: %w", err)
	}
	return time.Since(start).Seconds(), nil
}

// psiSampleHeap records the largest HeapSys seen every 50 ms until stop.
func psiSampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapSys)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
