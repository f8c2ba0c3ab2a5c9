package hub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"veil/mpc/psi"
	veilv1 "veil/proto/veil/v1"
)

// frameStream is what both ends of a PSI gRPC stream look like.
type frameStream interface {
	Send(*veilv1.PSIFrame) error
	Recv() (*veilv1.PSIFrame, error)
}

// lockedStream serialises Sends on a gRPC stream, which allows only one
// sender at a time.
type lockedStream struct {
	mu sync.Mutex
	s  frameStream
}

func (l *lockedStream) send(f *veilv1.PSIFrame) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Send(f)
}

// streamConn is a psi.Conn over a stream of PSIFrames. peer tags outgoing
// frames (on the leader's stream) and incoming frames come from in.
type streamConn struct {
	out  *lockedStream
	peer string
	in   <-chan *veilv1.PSIFrame
	errp func() error // why in was closed
}

func (c *streamConn) Send(ctx context.Context, m *psi.Message) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return c.out.send(&veilv1.PSIFrame{Peer: c.peer, Body: &veilv1.PSIFrame_Message{Message: b}})
}

func (c *streamConn) Recv(ctx context.Context) (*psi.Message, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case f, ok := <-c.in:
		if !ok {
			if err := c.errp(); err != nil {
				return nil, fmt.Errorf("psi stream: %w", err)
			}
			return nil, fmt.Errorf("psi stream: %w", io.ErrUnexpectedEOF)
		}
		m := new(psi.Message)
		if err := m.UnmarshalBinary(f.GetMessage()); err != nil {
			return nil, err
		}
		return m, nil
	}
}

// demux reads frames from s and hands message frames to the channel of
// their peer ("" when untagged). It stops at the end of the stream or on an
// error, closing every channel.
type demux struct {
	mu    sync.Mutex
	err   error
	chans map[string]chan *veilv1.PSIFrame
	done  chan *veilv1.PSIFrame // PSIDone frames, tagged with their peer
}

func newDemux(peers []string) *demux {
	d := &demux{chans: map[string]chan *veilv1.PSIFrame{}, done: make(chan *veilv1.PSIFrame, len(peers)+1)}
	for _, p := range peers {
		d.chans[p] = make(chan *veilv1.PSIFrame, 64)
	}
	return d
}

func (d *demux) run(ctx context.Context, s frameStream) {
	defer func() {
		for _, c := range d.chans {
			close(c)
		}
		close(d.done)
	}()
	for {
		f, err := s.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				d.setErr(err)
			}
			return
		}
		switch f.Body.(type) {
		case *veilv1.PSIFrame_Message:
			c, ok := d.chans[f.GetPeer()]
			if !ok {
				d.setErr(fmt.Errorf("frame for unknown peer %q", f.GetPeer()))
				return
			}
			select {
			case c <- f:
			case <-ctx.Done():
				d.setErr(ctx.Err())
				return
			}
		case *veilv1.PSIFrame_Done:
			d.done <- f
		default:
			d.setErr(fmt.Errorf("unexpected frame %T", f.Body))
			return
		}
	}
}

func (d *demux) setErr(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
}

func (d *demux) error() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *demux) conn(out *lockedStream, peer string) *streamConn {
	return &streamConn{out: out, peer: peer, in: d.chans[peer], errp: d.error}
}
