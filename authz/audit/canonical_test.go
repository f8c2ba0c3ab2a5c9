package audit

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// TestFastEncoderMatchesGeneric checks that the hand-written canonical
// encoder gives exactly the bytes of the encoding/json reference for random
// entries full of characters that need escaping.
func TestFastEncoderMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "9", " ", "\"", "\\", "<", ">", "&", "\b", "\f", "\n", "\r", "\t", "\x00", "\x01", "\x1f", "\x7f",
		"é", "中", "\u2028", "\u2029", "\u2027", "\U0001F600", "\ufffd", "/", "'", "%"}
	str := func(maxLen int) string {
		var b []byte
		for range r.IntN(maxLen + 1) {
			b = append(b, alphabet[r.IntN(len(alphabet))]...)
		}
		return string(b)
	}
	list := func() []string {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+r.IntN(3))
		for i := range out {
			out[i] = "p" + str(4)
		}
		return out
	}
	for i := range 3000 {
		e := Entry{Seq: r.Uint64() >> r.IntN(64), Time: time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("X", 3600*r.IntN(12))),
			Kind: KindRequestAllowed, Actor: "a" + str(6), Subject: str(5), Providers: list(), Scopes: list(), Purpose: str(5),
			Reason: str(3), GrantID: str(4), JobID: str(4)}
		if r.IntN(3) > 0 {
			e.Decision = []string{"", Allow, Deny}[r.IntN(3)]
		}
		if r.IntN(2) == 0 {
			e.Details = map[string]string{}
			for range r.IntN(5) {
				e.Details[str(4)] = str(6)
			}
		}
		fast, err := Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := marshalViaGeneric(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fast, ref) {
			t.Fatalf("entry %d:\n fast %s\n ref  %s", i, fast, ref)
		}
		if _, err := Decode(fast); err != nil {
			t.Fatalf("entry %d: decode: %v", i, err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	e := Entry{Seq: 123456, Time: time.Now(), Kind: KindRequestAllowed, Actor: "bank-a", Subject: "91110000MA01ABCD2X",
		Scopes: []string{"score:default-v1"}, Purpose: "loan", Decision: Allow, GrantID: "0123456789abcdef0123", JobID: "0123456789abcdef01234567",
		Details: map[string]string{"checked_by": "platform", "token_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "uses": "1"}}
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			_, _ = Marshal(e)
		}
	})
	b.Run("generic", func(b *testing.B) {
		for b.Loop() {
			_, _ = marshalViaGeneric(e)
		}
	})
}
