package psi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeLeader drives the leader end of a pipe by hand against a real follower.
func fakeLeader(t *testing.T, script func(ctx context.Context, l *link, a *PipeConn)) error {
	t.Helper()
	return fakeLeaderProto(t, ProtocolECDH, script)
}

func fakeLeaderProto(t *testing.T, proto Protocol, script func(ctx context.Context, l *link, a *PipeConn)) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := AlignFollower(ctx, []string{"X1", "X2", "X3"}, b, Config{Session: "bad", ChunkSize: 2, Protocol: proto})
		done <- err
	}()
	script(ctx, newLink(a, "bad"), a)
	select {
	case err := <-done:
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("follower hung until the deadline: %v", err)
		}
		return err
	case <-ctx.Done():
		t.Fatal("follower did not return")
	}
	return nil
}

func leaderHello(size uint64) []byte {
	return (&hello{Protocol: ProtocolECDH, Role: roleLeader, Size: size, Chunk: 2}).marshal()
}

func TestFollowerRejectsMalformedInput(t *testing.T) {
	valid := func() []byte { // a valid point: the hash of something
		b, _ := r255.HashToElement([]byte("x"), []byte("d")).MarshalBinaryCompress()
		return b
	}
	cases := []struct {
		name   string
		script func(ctx context.Context, l *link, a *PipeConn)
		want   error
		substr string
	}{
		{"non-canonical point", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(1))
			l.send(ctx, KindPoints, 0, true, bytes.Repeat([]byte{0xff}, 32))
		}, ErrBadPoint, ""},
		{"identity point", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(1))
			l.send(ctx, KindPoints, 0, true, make([]byte, 32))
		}, ErrBadPoint, "identity"},
		{"truncated point", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(1))
			l.send(ctx, KindPoints, 0, true, valid()[:31])
		}, ErrMalformed, ""},
		{"too many points", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(1))
			l.send(ctx, KindPoints, 0, true, append(valid(), valid()...))
		}, ErrMalformed, ""},
		{"missing final flag", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(1))
			l.send(ctx, KindPoints, 0, false, valid())
		}, ErrMalformed, "final"},
		{"out of order", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(4))
			l.send(ctx, KindPoints, 1, false, append(valid(), valid()...))
		}, nil, "out of order"},
		{"stream closed early", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, leaderHello(5))
			l.send(ctx, KindPoints, 0, false, append(valid(), valid()...))
			a.Close()
		}, ErrClosed, ""},
		{"closed before hello", func(ctx context.Context, l *link, a *PipeConn) { a.Close() }, ErrClosed, ""},
		{"garbage hello", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, []byte{200, 1, 2})
		}, ErrMalformed, ""},
		{"protocol mismatch", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, (&hello{Protocol: ProtocolKKRT, Role: roleLeader, Size: 1, Chunk: 2}).marshal())
		}, nil, "protocol"},
		{"wrong role", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, (&hello{Protocol: ProtocolECDH, Role: roleFollower, Size: 1, Chunk: 2}).marshal())
		}, nil, "role"},
		{"other session", func(ctx context.Context, l *link, a *PipeConn) {
			newLink(a, "other").send(ctx, KindHello, 0, true, leaderHello(1))
		}, nil, "session"},
		{"peer abort", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindAbort, 0, true, []byte("disk full"))
		}, ErrPeerAborted, "disk full"},
		{"result out of range", func(ctx context.Context, l *link, a *PipeConn) {
			runFakeExchange(ctx, t, l)
			l.send(ctx, KindResult, 0, true, binary.BigEndian.AppendUint32(nil, 3))
		}, ErrMalformed, "outside"},
		{"result not increasing", func(ctx context.Context, l *link, a *PipeConn) {
			runFakeExchange(ctx, t, l)
			l.send(ctx, KindResult, 0, true, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2), 1))
		}, ErrMalformed, "increasing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := fakeLeader(t, c.script)
			if err == nil {
				t.Fatal("follower accepted bad input")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("error %q does not mention %q", err, c.substr)
			}
		})
	}
}

// runFakeExchange plays a well-formed leader with one item up to the result.
func runFakeExchange(ctx context.Context, t *testing.T, l *link) {
	l.send(ctx, KindHello, 0, true, leaderHello(1))
	p, _ := r255.HashToElement([]byte("L"), sessionDST("bad")).MarshalBinaryCompress()
	l.send(ctx, KindPoints, 0, true, p)
	got := map[MsgKind]int{}
	for got[KindReply] < 1 || got[KindPoints] < 2 {
		m, err := l.recv(ctx)
		if err != nil {
			t.Errorf("fake leader: %v", err)
			return
		}
		got[m.Kind]++
	}
}

func TestLeaderRejectsBadFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := Pipe()
	go func() {
		l := newLink(b, "s")
		l.send(ctx, KindHello, 0, true, (&hello{Protocol: ProtocolECDH, Role: roleFollower, Size: 2, Chunk: 4096}).marshal())
		p, _ := r255.HashToElement([]byte("y"), sessionDST("s")).MarshalBinaryCompress()
		l.send(ctx, KindPoints, 0, true, append(p, p...)) // the same point twice
	}()
	_, err := AlignLeader(ctx, []string{"a", "b"}, map[string]Conn{"p": a}, Config{Session: "s"})
	if !errors.Is(err, ErrBadPoint) || !strings.Contains(err.Error(), "repeats") {
		t.Fatalf("error %v, want repeated point", err)
	}

	// A follower that disappears mid-run gives an error, not a hang.
	a, b = Pipe()
	go func() {
		l := newLink(b, "s")
		l.send(ctx, KindHello, 0, true, (&hello{Protocol: ProtocolECDH, Role: roleFollower, Size: 10, Chunk: 4096}).marshal())
		b.Close()
	}()
	_, err = AlignLeader(ctx, []string{"a", "b"}, map[string]Conn{"p": a}, Config{Session: "s"})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("error %v, want closed", err)
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a, b := Pipe()
	errc := make(chan error, 1)
	go func() { _, err := AlignFollower(ctx, []string{"a"}, b, Config{Session: "c"}); errc <- err }()
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := AlignLeader(ctx, []string{"a"}, map[string]Conn{"p": &silentConn{a}}, Config{Session: "c"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("leader error %v, want canceled", err)
	}
	if err := <-errc; err == nil {
		t.Fatal("follower succeeded without a leader")
	}
}

// silentConn never delivers anything (a stuck relay).
type silentConn struct{ *PipeConn }

func (s *silentConn) Recv(ctx context.Context) (*Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestKKRTFollowerRejectsMalformedInput(t *testing.T) {
	kh := (&hello{Protocol: ProtocolKKRT, Role: roleLeader, Size: 10, Chunk: 2}).marshal()
	baseOT := func(m uint32, pointByte byte) []byte {
		b := make([]byte, otALen)
		binary.BigEndian.PutUint32(b, m)
		p, _ := r255.HashToElement([]byte("A"), []byte("d")).MarshalBinaryCompress()
		for i := range kkrtWidth {
			copy(b[otParamsLen+i*pointLen:], p)
		}
		if pointByte != 0 {
			b[otParamsLen+5*pointLen] = pointByte
		}
		return b
	}
	cases := []struct {
		name   string
		script func(ctx context.Context, l *link, a *PipeConn)
		want   error
		substr string
	}{
		{"short base OT", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, kh)
			l.send(ctx, KindBaseOT, 0, true, baseOT(uint32(kkrtBins(10)), 0)[:100])
		}, ErrMalformed, ""},
		{"wrong bin count", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, kh)
			l.send(ctx, KindBaseOT, 0, true, baseOT(1<<30, 0))
		}, ErrMalformed, "bins"},
		{"bad base OT point", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, kh)
			l.send(ctx, KindBaseOT, 0, true, baseOT(uint32(kkrtBins(10)), 0xff))
		}, ErrBadPoint, "base OT 5"},
		{"closed during base OT", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, kh)
			l.send(ctx, KindBaseOT, 0, true, baseOT(uint32(kkrtBins(10)), 0))
			l.recv(ctx)
			a.Close()
		}, ErrClosed, ""},
		{"garbage OT ciphertexts", func(ctx context.Context, l *link, a *PipeConn) {
			l.send(ctx, KindHello, 0, true, kh)
			l.send(ctx, KindBaseOT, 0, true, baseOT(uint32(kkrtBins(10)), 0))
			l.recv(ctx)
			l.send(ctx, KindBaseOT, 1, true, make([]byte, otELen))
		}, ErrMalformed, "decrypt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := fakeLeaderProto(t, ProtocolKKRT, c.script)
			if err == nil {
				t.Fatal("follower accepted bad input")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("error %q does not mention %q", err, c.substr)
			}
		})
	}
}
