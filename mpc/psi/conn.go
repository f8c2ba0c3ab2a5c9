package psi

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Conn carries the Messages of one session between two parties, usually
// relayed by the platform. Send and Recv may be called concurrently with
// each other, but each of them by one goroutine at a time (the contract of
// a gRPC bidirectional stream). The PSI code serialises its own Sends.
type Conn interface {
	Send(ctx context.Context, m *Message) error
	Recv(ctx context.Context) (*Message, error)
}

// ErrClosed is returned (wrapped) by a PipeConn after either end closed it.
var ErrClosed = errors.New("psi: connection closed")

// PipeConn is one end of an in-process connection made by Pipe. Frames go
// through MarshalBinary/UnmarshalBinary, exactly as over the network, so
// the in-process runs exercise the wire format.
type PipeConn struct {
	in       <-chan []byte
	out      chan<- []byte
	closed   chan struct{} // closed when this end is closed
	peer     chan struct{} // closed when the other end is closed
	once     *sync.Once
	peerOnce *sync.Once
}

// pipeBuffer is how many frames may be in flight in each direction.
const pipeBuffer = 32

// Pipe returns two connected in-process Conns. Closing either end makes
// pending and later Recv calls on the other end fail with ErrClosed once
// the frames already sent have been read.
func Pipe() (*PipeConn, *PipeConn) {
	ab := make(chan []byte, pipeBuffer)
	ba := make(chan []byte, pipeBuffer)
	aClosed, bClosed := make(chan struct{}), make(chan struct{})
	aOnce, bOnce := new(sync.Once), new(sync.Once)
	a := &PipeConn{in: ba, out: ab, closed: aClosed, peer: bClosed, once: aOnce, peerOnce: bOnce}
	b := &PipeConn{in: ab, out: ba, closed: bClosed, peer: aClosed, once: bOnce, peerOnce: aOnce}
	return a, b
}

// Close closes this end. It is safe to call more than once.
func (p *PipeConn) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// Send encodes m and queues it for the other end.
func (p *PipeConn) Send(ctx context.Context, m *Message) error {
	frame, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("psi: pipe send: %w", err)
	}
	select {
	case <-p.closed:
		return fmt.Errorf("psi: pipe send: %w", ErrClosed)
	case <-p.peer:
		return fmt.Errorf("psi: pipe send: peer: %w", ErrClosed)
	default:
	}
	select {
	case p.out <- frame:
		return nil
	case <-p.closed:
		return fmt.Errorf("psi: pipe send: %w", ErrClosed)
	case <-p.peer:
		return fmt.Errorf("psi: pipe send: peer: %w", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("psi: pipe send: %w", ctx.Err())
	}
}

// Recv returns the next message from the other end.
func (p *PipeConn) Recv(ctx context.Context) (*Message, error) {
	var frame []byte
	select {
	case frame = <-p.in:
	case <-p.closed:
		return nil, fmt.Errorf("psi: pipe recv: %w", ErrClosed)
	case <-p.peer:
		// Deliver what the peer sent before it closed.
		select {
		case frame = <-p.in:
		default:
			return nil, fmt.Errorf("psi: pipe recv: peer: %w", ErrClosed)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("psi: pipe recv: %w", ctx.Err())
	}
	m := new(Message)
	if err := m.UnmarshalBinary(frame); err != nil {
		return nil, fmt.Errorf("psi: pipe recv: %w", err)
	}
	return m, nil
}
