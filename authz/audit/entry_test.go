package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMarshalCanonical(t *testing.T) {
	e := Entry{
		Seq: 7, Time: time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.FixedZone("CST", 8*3600)),
		Kind: KindScoreJob, Actor: "bank-a<&>", Subject: "91110000MA01ABCD2X",
		Details: map[string]string{"z": "1", "a": "2", "model": "default-v1"},
	}
	got, err := Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"actor":"bank-a<&>","details":{"a":"2","model":"default-v1","z":"1"},"kind":"score_job","seq":7,"subject":"91110000MA01ABCD2X","time":"2026-03-01T01:00:00.123456Z"}`
	if string(got) != want {
		t.Fatalf("canonical form\n got %s\nwant %s", got, want)
	}
	back, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Marshal(back)
	if !bytes.Equal(again, got) || back.Seq != 7 || !back.Time.Equal(e.Time.Truncate(time.Microsecond)) {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestDecodeRejectsNonCanonical(t *testing.T) {
	good := `{"actor":"bank-a","kind":"score_job","seq":7,"time":"2026-03-01T01:00:00.123456Z"}`
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{
		"space after colon": strings.Replace(good, `"actor":`, `"actor": `, 1),
		"trailing newline":  good + "\n",
		"reordered keys":    `{"kind":"score_job","actor":"bank-a","seq":7,"time":"2026-03-01T01:00:00.123456Z"}`,
		"unknown field":     strings.Replace(good, `{`, `{"admin":true,`, 1),
		"upper-case key":    strings.Replace(good, `"seq"`, `"Seq"`, 1),
		"duplicate key":     strings.Replace(good, `"seq":7`, `"seq":6,"seq":7`, 1),
		"escaped char":      strings.Replace(good, `bank-a`, `bank\u002da`, 1),
		"exponent seq":      strings.Replace(good, `"seq":7`, `"seq":7e0`, 1),
		"negative seq":      strings.Replace(good, `"seq":7`, `"seq":-7`, 1),
		"other time layout": strings.Replace(good, `01:00:00.123456Z`, `01:00:00.123456+00:00`, 1),
		"no actor":          `{"kind":"score_job","seq":7,"time":"2026-03-01T01:00:00.123456Z"}`,
		"bad kind":          strings.Replace(good, `score_job`, `Score-Job`, 1),
		"bad decision":      strings.Replace(good, `"kind"`, `"decision":"maybe","kind"`, 1),
		"two objects":       good + good,
		"array":             `[` + good + `]`,
		"empty":             ``,
		"oversized":         strings.Replace(good, `bank-a`, strings.Repeat("x", MaxEntrySize), 1),
	} {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for i := range 6 {
		e := sampleEntry(i)
		e.Seq = uint64(i)
		e.Time = time.Date(2026, 3, 1, 9, 0, i, 0, time.UTC)
		e.Details = map[string]string{"n": "1", "x<y": "\u2028"}
		data, err := Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"seq":1e400}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes is canonical: encoding it again gives the same bytes.
		again, err := Marshal(e)
		if err != nil {
			t.Fatalf("decoded entry does not re-encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("decode accepted non-canonical bytes\n in %q\nout %q", data, again)
		}
	})
}
