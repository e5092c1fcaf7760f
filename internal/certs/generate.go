package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Lifetime is how long the certificates made here are valid.
const Lifetime = 365 * 24 * time.Hour

// renewBefore is how close to expiry a certificate in a directory is replaced.
const renewBefore = 24 * time.Hour

// Files are the paths of one member's PEM files in a directory made by [WriteDir].
type Files struct {
	Cert, Key, CA string
}

// FilesIn returns the paths [WriteDir] uses for the member name in dir.
func FilesIn(dir, name string) Files {
	return Files{
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
		CA:   filepath.Join(dir, "ca.pem"),
	}
}

// WriteDir makes dir hold a CA (ca.pem, ca-key.pem) and, for every name, a member
// certificate it signs (name.pem, name-key.pem): ECDSA P-256, valid for [Lifetime],
// for both TLS server and client use, with the SANs 127.0.0.1, ::1 and localhost.
// Files that are there, valid for another day and (members) signed by that CA are
// kept; the rest are written. Keys get mode 0600.
func WriteDir(dir string, names ...string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	ca, err := LoadAuthority(caCert, caKey)
	if err != nil {
		if ca, err = NewAuthority("Parley throwaway cluster CA"); err != nil {
			return err
		}
		if err := ca.Write(caCert, caKey); err != nil {
			return err
		}
	}
	for _, name := range names {
		f := FilesIn(dir, name)
		if m, err := Load(f.Cert, f.Key, f.CA); err == nil && Verify(m.Cert, ca.pool()) == nil && fresh(m.Cert.Leaf) {
			continue
		}
		cert, key, err := ca.Issue(name)
		if err != nil {
			return err
		}
		if err := writeFile(f.Key, key, 0o600); err != nil {
			return err
		}
		if err := writeFile(f.Cert, cert, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Authority is a CA that signs member certificates.
type Authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewAuthority makes a self-signed CA named name.
func NewAuthority(name string) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(name)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Authority{cert: cert, key: key}, nil
}

// LoadAuthority reads a CA written by [Authority.Write]; a CA that expires within a
// day is an error.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	kp, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	key, ok := kp.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !kp.Leaf.IsCA {
		return nil, fmt.Errorf("%s: not an ECDSA CA", certFile)
	}
	if !fresh(kp.Leaf) {
		return nil, fmt.Errorf("%s: expires %s", certFile, kp.Leaf.NotAfter)
	}
	return &Authority{cert: kp.Leaf, key: key}, nil
}

// CertPEM is the CA's certificate in PEM.
func (a *Authority) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})
}

// Write writes the CA's certificate and (mode 0600) key as PEM files.
func (a *Authority) Write(certFile, keyFile string) error {
	key, err := keyPEM(a.key)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, key, 0o600); err != nil {
		return err
	}
	return writeFile(certFile, a.CertPEM(), 0o644)
}

// Issue makes a member certificate named name, and its key, both in PEM.
func (a *Authority) Issue(name string) (cert, key []byte, err error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl, err := template(name)
	if err != nil {
		return nil, nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	tmpl.DNSNames = []string{"localhost"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &priv.PublicKey, a.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing certificate %s: %w", name, err)
	}
	if key, err = keyPEM(priv); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key, nil
}

func (a *Authority) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.cert)
	return p
}

// template is a certificate valid from an hour ago (for clock skew) for Lifetime.
func template(name string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Parley"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(Lifetime),
	}, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func fresh(c *x509.Certificate) bool {
	return c != nil && time.Until(c.NotAfter) > renewBefore
}

// writeFile replaces path with data, created with mode (an existing file's mode is
// not kept).
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, mode) // the umask may have narrowed it
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
