package psi

import (
	"bytes"
	"errors"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	m := &Message{Session: "job-7", Kind: KindReply, Seq: 1<<32 - 1, Final: true, Payload: []byte{1, 2, 3}}
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Session != m.Session || got.Kind != m.Kind || got.Seq != m.Seq || got.Final != m.Final || !bytes.Equal(got.Payload, m.Payload) {
		t.Fatalf("round trip: %+v != %+v", got, m)
	}
	b2, _ := m.AppendBinary([]byte("xx"))
	if !bytes.Equal(b2[2:], b) {
		t.Fatal("AppendBinary differs from MarshalBinary")
	}
	for _, bad := range []*Message{
		{Kind: 0}, {Kind: kindMax + 1},
		{Kind: KindHello, Session: string(make([]byte, MaxSessionLen+1))},
		{Kind: KindHello, Payload: make([]byte, MaxPayloadLen+1)},
	} {
		if _, err := bad.MarshalBinary(); !errors.Is(err, ErrMalformed) {
			t.Errorf("marshal %v: err %v", bad.Kind, err)
		}
	}
	for name, frame := range map[string][]byte{
		"short":        b[:5],
		"truncated":    b[:len(b)-1],
		"trailing":     append(append([]byte{}, b...), 0),
		"version":      append([]byte{9}, b[1:]...),
		"kind":         append([]byte{1, 0}, b[2:]...),
		"flags":        append([]byte{1, 3, 2}, b[3:]...),
		"session size": append(append([]byte{}, b[:7]...), append([]byte{0xff, 0xff}, b[9:]...)...),
	} {
		if err := new(Message).UnmarshalBinary(frame); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzMessageUnmarshal(f *testing.F) {
	for _, m := range []*Message{
		{Session: "s", Kind: KindHello, Payload: (&hello{Protocol: ProtocolECDH, Role: roleLeader, Size: 3, Chunk: 4096}).marshal()},
		{Session: "job", Kind: KindPoints, Seq: 3, Final: true, Payload: make([]byte, 64)},
		{Kind: KindAbort, Payload: []byte("why")},
	} {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("re-encoding differs: %x vs %x", b, data)
		}
		// The payload decoders must not panic either.
		var h hello
		_ = h.unmarshal(m.Payload)
		s := &streamIn{kind: m.Kind, total: 3, itemLen: pointLen, chunk: 2}
		_, _, _ = s.accept(&m)
	})
}
