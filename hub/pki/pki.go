package pki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"veil/internal/fileutil"
)

// Role is what a party may do, carried in its certificate.
type Role string

// The roles a certificate can carry.
const (
	RoleProvider Role = "provider"
	RoleBank     Role = "bank"
	RoleAuditor  Role = "auditor"
	RolePlatform Role = "platform"
)

// Roles lists every valid role.
var Roles = []Role{RoleProvider, RoleBank, RoleAuditor, RolePlatform}

// ParseRole checks that s names a role.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want one of provider, bank, auditor, platform)", s)
}

// File names inside a CA or party directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	CertFile   = "party.crt"
	KeyFile    = "party.key"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName reports whether name is a usable party name: lower-case letters,
// digits, '.', '_' and '-', at most 63 characters.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid party name %q: use 1-63 lower-case letters, digits, '.', '_' or '-'", name)
	}
	return nil
}

// InitCA creates a new CA in dir. It refuses to overwrite an existing CA.
func InitCA(dir string, validity time.Duration) error {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return fmt.Errorf("init CA: %s already holds a CA key; refusing to overwrite it", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("init CA: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Veil platform CA", Organization: []string{"Veil"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return fmt.Errorf("init CA: create certificate: %w", err)
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), priv); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	if err := writePEM(filepath.Join(dir, CACertFile), "CERTIFICATE", der, 0o644); err != nil {
		return fmt.Errorf("init CA: %w", err)
	}
	return nil
}

// IssueRequest describes a party certificate to issue.
type IssueRequest struct {
	Name     string
	Role     Role
	Hosts    []string // extra DNS names or IPs the party's agent serves on; localhost is always included
	Validity time.Duration
}

// Issue signs a certificate for a party with the CA in caDir and writes
// party.crt, party.key and a copy of ca.crt to outDir.
func Issue(caDir, outDir string, req IssueRequest) error {
	if err := ValidName(req.Name); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if _, err := ParseRole(string(req.Role)); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	caCert, caKey, err := loadCA(caDir)
	if err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if req.Validity <= 0 {
		req.Validity = 365 * 24 * time.Hour
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("issue: generate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			CommonName:         req.Name,
			OrganizationalUnit: []string{string(req.Role)},
			Organization:       []string{"Veil"},
		},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(req.Validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{req.Name, "localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
	if err != nil {
		return fmt.Errorf("issue: sign certificate: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if err := writeKey(filepath.Join(outDir, KeyFile), priv); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if err := writePEM(filepath.Join(outDir, CertFile), "CERTIFICATE", der, 0o644); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	caPEM, err := os.ReadFile(filepath.Join(caDir, CACertFile))
	if err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if err := fileutil.WriteAtomic(filepath.Join(outDir, CACertFile), caPEM, 0o644); err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	return nil
}

// Identity is who a party is, as proven by its certificate.
type Identity struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// IdentityOf reads the identity from a verified certificate.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if len(cert.Subject.OrganizationalUnit) != 1 {
		return Identity{}, errors.New("certificate carries no single role")
	}
	role, err := ParseRole(cert.Subject.OrganizationalUnit[0])
	if err != nil {
		return Identity{}, fmt.Errorf("certificate: %w", err)
	}
	if err := ValidName(cert.Subject.CommonName); err != nil {
		return Identity{}, fmt.Errorf("certificate: %w", err)
	}
	return Identity{Name: cert.Subject.CommonName, Role: role}, nil
}

// Fingerprint is the hex SHA-256 of a certificate's DER bytes.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// Party is a loaded party directory: its key pair, certificate and the CA it trusts.
type Party struct {
	Identity Identity
	Cert     tls.Certificate
	Leaf     *x509.Certificate
	CAPool   *x509.CertPool
}

// Load reads party.crt, party.key and ca.crt from dir.
func Load(dir string) (*Party, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w (create one with `veil pki issue`)", dir, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	cert.Leaf = leaf
	caPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("load identity from %s: %s holds no certificate", dir, CACertFile)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("load identity from %s: certificate does not chain to %s: %w", dir, CACertFile, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("load identity from %s: %w", dir, err)
	}
	return &Party{Identity: id, Cert: cert, Leaf: leaf, CAPool: pool}, nil
}

// ServerTLS is the TLS configuration of a gRPC server run by this party: it
// requires and verifies a client certificate from the same CA.
func (p *Party) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.Cert},
		ClientCAs:    p.CAPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// ClientTLS is the TLS configuration for dialing another party. The server
// certificate must chain to the CA; when expect is non-nil it must also carry
// that identity (an empty Name or Role matches any). Host names are not
// checked: parties are pinned by the name and role in their certificate,
// which is what the registry records, whatever address they are reached at.
func (p *Party) ClientTLS(expect *Identity) *tls.Config {
	pool := p.CAPool
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{p.Cert},
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server presented no certificate")
			}
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("server certificate is not issued by this platform's CA: %w", err)
			}
			id, err := IdentityOf(leaf)
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if expect != nil {
				if expect.Name != "" && id.Name != expect.Name {
					return fmt.Errorf("server certificate is for party %q, expected %q", id.Name, expect.Name)
				}
				if expect.Role != "" && id.Role != expect.Role {
					return fmt.Errorf("server certificate has role %q, expected %q", id.Role, expect.Role)
				}
			}
			return nil
		},
	}
}

func loadCA(dir string) (*x509.Certificate, ed25519.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA certificate: %w (create a CA with `veil pki init`)", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: not a PEM certificate", filepath.Join(dir, CACertFile))
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("%s: not a PEM key", filepath.Join(dir, CAKeyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, errors.New("CA key is not Ed25519")
	}
	return cert, priv, nil
}

func writeKey(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return fileutil.WriteAtomic(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return n
}
