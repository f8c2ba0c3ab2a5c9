package psi

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MsgKind says what a Message carries. The platform relay never needs to
// look at it; only the two parties of a session do.
type MsgKind uint8

// Message kinds. Values are part of the wire format: never renumber.
const (
	KindHello   MsgKind = 1 // session parameters and set size (payload: hello)
	KindPoints  MsgKind = 2 // stream of the sender's own blinded points, 32 B each
	KindReply   MsgKind = 3 // stream of the peer's points re-blinded by the sender, same order and chunking
	KindResult  MsgKind = 4 // stream of big-endian uint32 positions in the receiver's shuffled order
	KindAbort   MsgKind = 5 // the sender gave up; payload is a UTF-8 reason
	KindList    MsgKind = 6 // stream of a list server's encoded list, 32 B per entry
	KindDone    MsgKind = 7 // list check finished; payload: uint64 match count reported by the bank
	KindBaseOT  MsgKind = 8 // KKRT base-OT round (payload framed by the kkrt code)
	KindColumns MsgKind = 9 // KKRT OT-extension matrix, one row block per message
	KindTags    MsgKind = 10
	kindMax             = KindTags
)

func (k MsgKind) String() string {
	switch k {
	case KindHello:
		return "hello"
	case KindPoints:
		return "points"
	case KindReply:
		return "reply"
	case KindResult:
		return "result"
	case KindAbort:
		return "abort"
	case KindList:
		return "list"
	case KindDone:
		return "done"
	case KindBaseOT:
		return "base-ot"
	case KindColumns:
		return "columns"
	case KindTags:
		return "tags"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Wire-format limits. They bound what a decoder allocates, so that a
// malicious or corrupt frame cannot make a party allocate gigabytes.
const (
	wireVersion        = 1
	MaxSessionLen      = 128      // bytes of Message.Session
	MaxPayloadLen      = 16 << 20 // bytes of Message.Payload
	headerLen          = 1 + 1 + 1 + 4 + 2 + 4
	flagFinal     byte = 1
)

// Message is one frame of a PSI session. Streams (points, replies, results,
// KKRT matrices) are split into chunks numbered by Seq from 0; the last
// chunk of a stream has Final set. Every message names its session, so a
// party rejects frames that belong to another run.
type Message struct {
	Session string
	Kind    MsgKind
	Seq     uint32
	Final   bool
	Payload []byte
}

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("psi: malformed message")

// MarshalBinary encodes m as
//
//	version u8 | kind u8 | flags u8 | seq u32 | len(session) u16 | len(payload) u32 | session | payload
//
// with big-endian integers.
func (m *Message) MarshalBinary() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	out := make([]byte, headerLen+len(m.Session)+len(m.Payload))
	m.put(out)
	return out, nil
}

// AppendBinary appends the encoding of m to b.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	n := len(b)
	b = append(b, make([]byte, headerLen+len(m.Session)+len(m.Payload))...)
	m.put(b[n:])
	return b, nil
}

func (m *Message) check() error {
	if m.Kind == 0 || m.Kind > kindMax {
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, m.Kind)
	}
	if len(m.Session) > MaxSessionLen {
		return fmt.Errorf("%w: session id of %d bytes exceeds %d", ErrMalformed, len(m.Session), MaxSessionLen)
	}
	if len(m.Payload) > MaxPayloadLen {
		return fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrMalformed, len(m.Payload), MaxPayloadLen)
	}
	return nil
}

func (m *Message) put(out []byte) {
	out[0] = wireVersion
	out[1] = byte(m.Kind)
	if m.Final {
		out[2] = flagFinal
	}
	binary.BigEndian.PutUint32(out[3:], m.Seq)
	binary.BigEndian.PutUint16(out[7:], uint16(len(m.Session)))
	binary.BigEndian.PutUint32(out[9:], uint32(len(m.Payload)))
	copy(out[headerLen:], m.Session)
	copy(out[headerLen+len(m.Session):], m.Payload)
}

// UnmarshalBinary decodes data strictly: the version, kind and flags must
// be known, the lengths must be within limits and add up to exactly
// len(data). The payload is copied, so data may be reused afterwards.
func (m *Message) UnmarshalBinary(data []byte) error {
	if len(data) < headerLen {
		return fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrMalformed, len(data), headerLen)
	}
	if data[0] != wireVersion {
		return fmt.Errorf("%w: wire version %d, want %d", ErrMalformed, data[0], wireVersion)
	}
	kind := MsgKind(data[1])
	if kind == 0 || kind > kindMax {
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, data[1])
	}
	if data[2]&^flagFinal != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrMalformed, data[2])
	}
	sessLen := int(binary.BigEndian.Uint16(data[7:]))
	payLen := int(binary.BigEndian.Uint32(data[9:]))
	if sessLen > MaxSessionLen {
		return fmt.Errorf("%w: session id of %d bytes exceeds %d", ErrMalformed, sessLen, MaxSessionLen)
	}
	if payLen > MaxPayloadLen {
		return fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrMalformed, payLen, MaxPayloadLen)
	}
	if want := headerLen + sessLen + payLen; len(data) != want {
		return fmt.Errorf("%w: frame is %d bytes, header says %d", ErrMalformed, len(data), want)
	}
	m.Kind = kind
	m.Final = data[2]&flagFinal != 0
	m.Seq = binary.BigEndian.Uint32(data[3:])
	m.Session = string(data[headerLen : headerLen+sessLen])
	m.Payload = append([]byte(nil), data[headerLen+sessLen:]...)
	return nil
}
