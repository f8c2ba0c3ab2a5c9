package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	exampledata "veil/examples/data"
)

var wordRE = regexp.MustCompile(`[-+.0-9A-Za-z_]+`)

// TestDemoLeaksNoValuesOrSecrets runs the whole demo with every server's
// debug log captured and checks (DESIGN.md invariant 1, and "no secrets in
// logs") that neither the logs nor the printed summary contain a raw
// feature value, an ID that is not common to all parties, a grant token or
// a private key.
func TestDemoLeaksNoValuesOrSecrets(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var out bytes.Buffer
	sum := &demoSummary{WorkDir: t.TempDir()}
	if err := runDemo(context.Background(), sum.WorkDir, log, &out, sum); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(sum)
	everything := logs.String() + out.String() + string(js)

	ids := map[string]int{}
	values := map[string]bool{}
	for _, p := range demoParties {
		b, err := fs.ReadFile(exampledata.Polish, p.file)
		if err != nil {
			t.Fatal(err)
		}
		r := csv.NewReader(bytes.NewReader(b))
		if _, err := r.Read(); err != nil {
			t.Fatal(err)
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ids[rec[0]]++
			for _, v := range rec[1:] {
				// Distinctive cells only: decimals with at least five
				// significant digits; short ones ("0", "1.5") and integers
				// (counts, durations) occur in any output by chance.
				if strings.Contains(v, ".") && len(strings.TrimLeft(strings.ReplaceAll(v, ".", ""), "-0")) >= 5 {
					values[v] = true
				}
			}
		}
	}
	if len(values) < 1000 {
		t.Fatalf("only %d distinctive values to look for", len(values))
	}
	// Compare whole words: a raw value such as 7.223 must not match inside
	// a timing such as 17.2231, nor digits inside a hex hash.
	for _, tok := range wordRE.FindAllString(everything, -1) {
		if values[tok] || values[strings.TrimPrefix(tok, "-")] {
			t.Errorf("raw value %q appears in the demo's logs or output", tok)
		}
	}
	private := 0
	for id, n := range ids {
		if n < len(demoParties) { // not held by every party: outside the intersection
			private++
			if strings.Contains(everything, id) {
				t.Errorf("ID %s outside the intersection appears in the logs or output", id)
			}
		}
	}
	if private == 0 {
		t.Fatal("no IDs outside the intersection to look for")
	}
	for _, secret := range []string{"PRIVATE KEY", "eyJhbGciOi", "eyJ0eXAiOi"} {
		if strings.Contains(everything, secret) {
			t.Errorf("%q (a key or a grant token) appears in the logs or output", secret)
		}
	}
	if logs.Len() == 0 {
		t.Fatal("no logs captured")
	}
}
