package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIssueAndLoad(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if err := InitCA(ca, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := InitCA(ca, time.Hour); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", err)
	}
	if err := Issue(ca, filepath.Join(dir, "tax"), IssueRequest{Name: "tax", Role: RoleProvider, Hosts: []string{"tax.example", "10.1.2.3"}}); err != nil {
		t.Fatal(err)
	}
	p, err := Load(filepath.Join(dir, "tax"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Identity != (Identity{Name: "tax", Role: RoleProvider}) {
		t.Fatalf("identity %+v", p.Identity)
	}
	if len(p.Leaf.IPAddresses) != 3 || p.Leaf.DNSNames[2] != "tax.example" {
		t.Fatalf("SANs: %v %v", p.Leaf.DNSNames, p.Leaf.IPAddresses)
	}
	st, err := os.Stat(filepath.Join(dir, "tax", KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", st.Mode(), err)
	}
	for _, bad := range []IssueRequest{{Name: "Tax", Role: RoleProvider}, {Name: "x", Role: "wizard"}, {Name: "", Role: RoleBank}} {
		if err := Issue(ca, filepath.Join(dir, "bad"), bad); err == nil {
			t.Fatalf("issued %+v", bad)
		}
	}
}

func TestLoadRejectsForeignCA(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ca1", "ca2"} {
		if err := InitCA(filepath.Join(dir, n), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := Issue(filepath.Join(dir, "ca1"), filepath.Join(dir, "p"), IssueRequest{Name: "p", Role: RoleBank}); err != nil {
		t.Fatal(err)
	}
	// Replace the CA copy with the other CA: the certificate no longer chains.
	other, _ := os.ReadFile(filepath.Join(dir, "ca2", CACertFile))
	os.WriteFile(filepath.Join(dir, "p", CACertFile), other, 0o644)
	if _, err := Load(filepath.Join(dir, "p")); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Fatalf("load with foreign CA: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "veil pki issue") {
		t.Fatalf("missing dir: %v", err)
	}
	if err := Issue(filepath.Join(dir, "nope"), filepath.Join(dir, "q"), IssueRequest{Name: "q", Role: RoleBank}); err == nil || !strings.Contains(err.Error(), "veil pki init") {
		t.Fatalf("missing CA: %v", err)
	}
}
