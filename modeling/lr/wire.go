package lr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A tiny length-prefixed binary codec for protocol messages. Every message
// starts with a one-byte type tag; readers bound every length by the bytes
// that remain, so garbage input yields an error, never a panic or a huge
// allocation.

var errShort = errors.New("truncated message")

type writer struct{ b []byte }

func (w *writer) u8(v byte)     { w.b = append(w.b, v) }
func (w *writer) u64(v uint64)  { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) i64(v int)     { w.u64(uint64(int64(v))) }
func (w *writer) f64(v float64) { w.u64(math.Float64bits(v)) }
func (w *writer) bytes(v []byte) {
	w.u64(uint64(len(v)))
	w.b = append(w.b, v...)
}
func (w *writer) str(s string) { w.bytes([]byte(s)) }
func (w *writer) list(vs [][]byte) {
	w.u64(uint64(len(vs)))
	for _, v := range vs {
		w.bytes(v)
	}
}
func (w *writer) ints(vs []int) {
	w.u64(uint64(len(vs)))
	for _, v := range vs {
		w.i64(v)
	}
}
func (w *writer) strs(vs []string) {
	w.u64(uint64(len(vs)))
	for _, v := range vs {
		w.str(v)
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
func (r *reader) u8() byte {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}
func (r *reader) u64() uint64 {
	v := r.take(8)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}
func (r *reader) i64() int {
	v := int64(r.u64())
	if v < math.MinInt32*int64(1<<20) || v > math.MaxInt32*int64(1<<20) {
		r.fail("integer out of range")
	}
	return int(v)
}
func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }
func (r *reader) bytes() []byte {
	n := r.u64()
	v := r.take(n)
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}
func (r *reader) str() string { return string(r.bytes()) }

// count reads a list length, each element needing at least minSize bytes.
func (r *reader) count(minSize uint64) int {
	n := r.u64()
	if r.err == nil && n > uint64(len(r.b))/minSize {
		r.err = errShort
		return 0
	}
	return int(n)
}
func (r *reader) list() [][]byte {
	n := r.count(8)
	out := make([][]byte, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.bytes())
	}
	return out
}
func (r *reader) ints() []int {
	n := r.count(8)
	out := make([]int, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.i64())
	}
	return out
}
func (r *reader) strs() []string {
	n := r.count(8)
	out := make([]string, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		out = append(out, r.str())
	}
	return out
}
func (r *reader) fail(msg string) {
	if r.err == nil {
		r.err = errors.New(msg)
	}
}

// done reports an error if decoding failed or bytes remain.
func (r *reader) done(what string) error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("lr: decode %s: %w", what, r.err)
	}
	return nil
}

func openMsg(data []byte, tag byte, what string) (*reader, error) {
	if len(data) == 0 || data[0] != tag {
		return nil, fmt.Errorf("lr: decode %s: wrong or missing message tag", what)
	}
	return &reader{b: data[1:]}, nil
}
