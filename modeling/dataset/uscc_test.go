package dataset

import (
	"errors"
	"testing"
)

func TestUSCCPublishedCodesValidate(t *testing.T) {
	// Published codes of real firms, also used by convert.py's self-test.
	for _, code := range []string{"914403001922038216", "9144030071526726XG"} {
		if err := ValidUSCC(code); err != nil {
			t.Errorf("ValidUSCC(%s) = %v, want nil", code, err)
		}
	}
}

func TestUSCCFromSeedMatchesConvertPy(t *testing.T) {
	// The example keys of /work/shared/data/enterprise/README.md (row 1).
	cases := []struct {
		dataset, part int
		want          string
	}{
		{1, 1, "91990101100482908N"},
		{1, 3, "91990103100482908K"},
		{1, 5, "91990105100482908G"},
		{2, 0, "91990200100482908D"},
		{3, 0, "91990300100482908J"},
	}
	for _, c := range cases {
		got, err := USCCFromSeed(c.dataset, c.part, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("USCCFromSeed(%d, %d, 1) = %s, want %s", c.dataset, c.part, got, c.want)
		}
	}
	// Second row of polish_1year.csv.
	if got, _ := USCCFromSeed(1, 1, 2); got != "91990101100965619W" {
		t.Errorf("USCCFromSeed(1, 1, 2) = %s, want 91990101100965619W", got)
	}
	seen := map[string]bool{}
	for n := 1; n <= 20000; n++ {
		u, err := USCCFromSeed(2, 0, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidUSCC(u); err != nil {
			t.Fatalf("generated %s does not validate: %v", u, err)
		}
		if seen[u] {
			t.Fatalf("seed %d repeats a code", n)
		}
		seen[u] = true
	}
	if _, err := USCCFromSeed(100, 0, 1); err == nil {
		t.Error("dataset 100 accepted")
	}
}

func TestValidUSCCRejects(t *testing.T) {
	good := "91990101100482908N"
	bad := []string{
		"",
		good[:17],
		good + "0",
		"91990101100482908I", // I is not in the charset
		"9199010110048290ON", // O is not in the charset
		"91990101100482908n", // not normalised
	}
	for _, s := range bad {
		if ValidUSCC(s) == nil {
			t.Errorf("ValidUSCC(%q) accepted", s)
		}
	}
	// The check character detects every single-character substitution.
	for pos := 0; pos < USCCLength; pos++ {
		for k := 0; k < len(USCCCharset); k++ {
			c := USCCCharset[k]
			if c == good[pos] {
				continue
			}
			s := good[:pos] + string(c) + good[pos+1:]
			err := ValidUSCC(s)
			if err == nil {
				t.Fatalf("substitution at position %d accepted", pos+1)
			}
			if !errors.Is(err, ErrUSCCCheck) {
				t.Fatalf("substitution at position %d: error %v does not wrap ErrUSCCCheck", pos+1, err)
			}
		}
	}
}

func TestNormalizeID(t *testing.T) {
	if got := NormalizeID("  91990101100482908n\t"); got != "91990101100482908N" {
		t.Errorf("NormalizeID = %q", got)
	}
}
