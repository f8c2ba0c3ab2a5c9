package exampledata

import (
	"io/fs"
	"strings"
	"testing"
)

func TestPolishEmbedded(t *testing.T) {
	for _, name := range []string{"bank", "tax", "social", "utility"} {
		b, err := fs.ReadFile(Polish, "polish/"+name+".csv")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "uscc,") {
			t.Errorf("%s.csv starts with %.20q", name, b)
		}
	}
}
