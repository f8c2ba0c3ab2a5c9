package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritePairRoundTrip(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "ent")
	pub, priv, err := WritePair(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}
	gotPriv, err := LoadPrivate(prefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	gotPub, err := LoadPublic(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !gotPriv.Equal(priv) || !gotPub.Equal(pub) {
		t.Fatal("loaded keys differ from generated ones")
	}
	msg := []byte("grant")
	if !ed25519.Verify(gotPub, msg, ed25519.Sign(gotPriv, msg)) {
		t.Fatal("loaded pair does not sign/verify")
	}
	if _, _, err := WritePair(prefix, nil); err == nil {
		t.Fatal("WritePair overwrote an existing key")
	}
	again, err := LoadPrivate(prefix + ".key")
	if err != nil || !again.Equal(priv) {
		t.Fatal("existing private key was modified by the refused WritePair")
	}
}

func TestParsePublicBase64(t *testing.T) {
	pub, _, err := Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(pub),
		base64.RawURLEncoding.EncodeToString(pub) + "\n",
	} {
		got, err := ParsePublic([]byte(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if !got.Equal(pub) {
			t.Fatalf("%q: wrong key", s)
		}
	}
}

func TestParseRejects(t *testing.T) {
	pub, priv, _ := Generate(nil)
	pubPEM, _ := MarshalPublic(pub)
	privPEM, _ := MarshalPrivate(priv)
	cases := map[string]struct {
		data    []byte
		private bool
	}{
		"empty":              {nil, false},
		"short base64":       {[]byte(base64.StdEncoding.EncodeToString(pub[:31])), false},
		"private as public":  {privPEM, false},
		"public as private":  {pubPEM, true},
		"trailing junk":      {append(bytes.Clone(pubPEM), "junk"...), false},
		"corrupt der":        {[]byte(strings.Replace(string(pubPEM), "MCow", "MCox", 1)), false},
		"garbage private":    {[]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), true},
		"no pem private":     {[]byte("hello"), true},
		"wrong type private": {[]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"), true},
	}
	for name, c := range cases {
		var err error
		if c.private {
			_, err = ParsePrivate(c.data)
		} else {
			_, err = ParsePublic(c.data)
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFingerprintStable(t *testing.T) {
	pub := ed25519.PublicKey(bytes.Repeat([]byte{7}, 32))
	a, b := Fingerprint(pub), Fingerprint(bytes.Clone(pub))
	if a != b || !strings.HasPrefix(a, "SHA256:") || len(a) != len("SHA256:")+43 {
		t.Fatalf("fingerprint %q / %q", a, b)
	}
}
