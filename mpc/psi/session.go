package psi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unicode/utf8"
)

// Protocol names a two-party PSI protocol.
type Protocol string

// Supported protocols.
const (
	ProtocolECDH Protocol = "ecdh" // ristretto255 ECDH-PSI (default)
	ProtocolKKRT Protocol = "kkrt" // KKRT16 OT-extension PSI, semi-honest
	protocolList Protocol = "list" // unbalanced list check (ECDH-OPRF)
)

// Config holds the parameters every party of a run must agree on, plus
// local tuning knobs.
type Config struct {
	// Session identifies the run; all parties use the same value and it must
	// be fresh for every run (e.g. the job ID). It is the hash-to-group
	// domain separation tag suffix and is checked on every message.
	Session string
	// Protocol is ProtocolECDH (the default when empty) or ProtocolKKRT.
	Protocol Protocol
	// ChunkSize is the number of items per streamed message (default 4096).
	ChunkSize int
	// Workers is the number of goroutines for the cryptography
	// (default runtime.GOMAXPROCS(0)).
	Workers int
}

const (
	defaultChunk = 4096
	maxChunk     = 1 << 16 // 64Ki points = 2 MiB per frame
	maxSetSize   = 1 << 31 // positions are uint32 on the wire
)

func (c Config) normalized() (Config, error) {
	if c.Session == "" {
		return c, errors.New("psi: config: empty session id")
	}
	if len(c.Session) > MaxSessionLen || !utf8.ValidString(c.Session) {
		return c, fmt.Errorf("psi: config: session id must be valid UTF-8 of at most %d bytes", MaxSessionLen)
	}
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolECDH
	case ProtocolECDH, ProtocolKKRT:
	default:
		return c, fmt.Errorf("psi: config: unknown protocol %q (want %q or %q)", c.Protocol, ProtocolECDH, ProtocolKKRT)
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = defaultChunk
	}
	if c.ChunkSize < 1 || c.ChunkSize > maxChunk {
		return c, fmt.Errorf("psi: config: chunk size %d outside [1, %d]", c.ChunkSize, maxChunk)
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	return c, nil
}

// dst is the RFC 9380 domain separation tag of a session.
func sessionDST(session string) []byte {
	return []byte("VEIL-PSI-V1-ristretto255_XMD:SHA-512_R255MAP_RO_" + session)
}

// roles on the wire
const (
	roleLeader   byte = 1
	roleFollower byte = 2
	roleBank     byte = 3
	roleLister   byte = 4
)

// hello opens every two-party session.
type hello struct {
	Protocol Protocol
	Role     byte
	Size     uint64 // number of (unique) items of the sender
	Chunk    uint32
	Name     string // list name (list checks)
	Version  string // list version (list checks)
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, 32+len(h.Protocol)+len(h.Name)+len(h.Version))
	b = appendString8(b, string(h.Protocol))
	b = append(b, h.Role)
	b = binary.BigEndian.AppendUint64(b, h.Size)
	b = binary.BigEndian.AppendUint32(b, h.Chunk)
	b = appendString8(b, h.Name)
	b = appendString8(b, h.Version)
	return b
}

func appendString8(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func readString8(b []byte) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, fmt.Errorf("%w: truncated hello string", ErrMalformed)
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], nil
}

func (h *hello) unmarshal(b []byte) error {
	p, rest, err := readString8(b)
	if err != nil {
		return err
	}
	if len(rest) < 1+8+4 {
		return fmt.Errorf("%w: truncated hello", ErrMalformed)
	}
	h.Protocol = Protocol(p)
	h.Role = rest[0]
	h.Size = binary.BigEndian.Uint64(rest[1:])
	h.Chunk = binary.BigEndian.Uint32(rest[9:])
	rest = rest[13:]
	if h.Name, rest, err = readString8(rest); err != nil {
		return err
	}
	if h.Version, rest, err = readString8(rest); err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after hello", ErrMalformed, len(rest))
	}
	if h.Size > maxSetSize {
		return fmt.Errorf("%w: set size %d exceeds %d", ErrMalformed, h.Size, maxSetSize)
	}
	if h.Chunk < 1 || h.Chunk > maxChunk {
		return fmt.Errorf("%w: chunk size %d outside [1, %d]", ErrMalformed, h.Chunk, maxChunk)
	}
	return nil
}

// link wraps a Conn for one session: it serialises Sends, stamps the
// session id, and rejects foreign or abort messages on Recv.
type link struct {
	conn    Conn
	session string
	mu      sync.Mutex
}

func newLink(c Conn, session string) *link { return &link{conn: c, session: session} }

func (l *link) send(ctx context.Context, kind MsgKind, seq uint32, final bool, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.conn.Send(ctx, &Message{Session: l.session, Kind: kind, Seq: seq, Final: final, Payload: payload})
	if err != nil {
		return fmt.Errorf("send %s #%d: %w", kind, seq, err)
	}
	return nil
}

// ErrPeerAborted is wrapped by the error returned when the peer sent an abort.
var ErrPeerAborted = errors.New("psi: peer aborted")

func (l *link) recv(ctx context.Context) (*Message, error) {
	m, err := l.conn.Recv(ctx)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("receive: %w: nil message", ErrMalformed)
	}
	if m.Session != l.session {
		return nil, fmt.Errorf("receive: message for session %q in session %q", m.Session, l.session)
	}
	if m.Kind == KindAbort {
		reason := m.Payload
		if len(reason) > 512 {
			reason = reason[:512]
		}
		return nil, fmt.Errorf("%w: %q", ErrPeerAborted, reason)
	}
	return m, nil
}

// recvKind receives one message and checks its kind and sequence number.
func (l *link) recvKind(ctx context.Context, kind MsgKind, seq uint32) (*Message, error) {
	m, err := l.recv(ctx)
	if err != nil {
		return nil, err
	}
	if m.Kind != kind {
		return nil, fmt.Errorf("receive: got %s message, want %s", m.Kind, kind)
	}
	if m.Seq != seq {
		return nil, fmt.Errorf("receive: %s message #%d out of order, want #%d", kind, m.Seq, seq)
	}
	return m, nil
}

// abort tells the peer that this party gives up, so that it does not wait
// forever. Best effort: the error that caused it is what is returned.
func (l *link) abort(ctx context.Context, cause error) {
	if cause == nil || errors.Is(cause, ErrPeerAborted) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_ = l.send(ctx, KindAbort, 0, true, []byte(cause.Error()))
}

// exchangeHello sends ours and receives and checks the peer's.
func (l *link) exchangeHello(ctx context.Context, ours hello, wantRole byte) (hello, error) {
	var peer hello
	if err := l.send(ctx, KindHello, 0, true, ours.marshal()); err != nil {
		return peer, err
	}
	m, err := l.recvKind(ctx, KindHello, 0)
	if err != nil {
		return peer, err
	}
	if err := peer.unmarshal(m.Payload); err != nil {
		return peer, fmt.Errorf("peer hello: %w", err)
	}
	if peer.Protocol != ours.Protocol {
		return peer, fmt.Errorf("peer runs protocol %q, we run %q", peer.Protocol, ours.Protocol)
	}
	if peer.Role != wantRole {
		return peer, fmt.Errorf("peer has role %d, want %d", peer.Role, wantRole)
	}
	if peer.Chunk != ours.Chunk {
		return peer, fmt.Errorf("peer chunk size %d differs from ours %d", peer.Chunk, ours.Chunk)
	}
	return peer, nil
}
