// Package certs holds the certificate side of the members' mutual TLS: loading a
// member's certificate, key and CA ([Load]), the TLS policy of the remote transport
// ([Member.ServerConfig], [Member.ClientConfig]), and throwaway certificates for a
// local cluster ([WriteDir], used by cmd/parley-certs and the tests).
//
// Trust model: a peer is a member when it holds a certificate signed by the
// cluster's CA. Names are not checked: members dial whatever address the membership
// provider advertises, and every member may already send any message to any actor,
// so binding certificates to addresses would add operations work and no protection.
// The CA must therefore sign member certificates of this cluster only.
//
// Everything here is safe for concurrent use; a [Member] is read-only once loaded.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Member is a node's certificate (with its key) and the pool of the cluster's CA.
type Member struct {
	Cert tls.Certificate
	CAs  *x509.CertPool
}

// Load reads a member's PEM files and checks that the certificate is one the other
// members accept ([Verify]).
func Load(certFile, keyFile, caFile string) (Member, error) {
	cas, err := LoadCA(caFile)
	if err != nil {
		return Member{}, err
	}
	cert, err := LoadKeyPair(certFile, keyFile)
	if err != nil {
		return Member{}, err
	}
	if err := Verify(cert, cas); err != nil {
		return Member{}, fmt.Errorf("%s: %w", certFile, err)
	}
	return Member{Cert: cert, CAs: cas}, nil
}

// LoadKeyPair reads a PEM certificate (chain) and its PEM key, with the leaf parsed.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// LoadCA reads a PEM file of one or more CA certificates.
func LoadCA(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// ErrNoCertificate means a key pair without a certificate.
var ErrNoCertificate = errors.New("certs: no certificate")

// Verify checks that cert chains to cas and may be used both to serve and to dial
// (a member is both): the checks the other members make in the handshake.
func Verify(cert tls.Certificate, cas *x509.CertPool) error {
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := verifyChain(cert.Certificate, cas, usage); err != nil {
			return fmt.Errorf("not a member certificate of this CA: %w", err)
		}
	}
	return nil
}

// verifyChain checks that the DER chain raw (leaf first) leads to cas and that the
// leaf may be used for usage.
func verifyChain(raw [][]byte, cas *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(raw) == 0 {
		return ErrNoCertificate
	}
	chain := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parsing certificate %d of the chain: %w", i, err)
		}
		chain[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: cas, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// ServerConfig is the TLS configuration of the remote port: TLS 1.3, and a client
// certificate signed by the CA is required.
func (m Member) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    m.CAs,
	}
}

// ClientConfig is the TLS configuration for dialling another member: TLS 1.3, this
// member's certificate, and the server's certificate verified against the CA only
// (not against the dialled name; see the package comment).
func (m Member) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.Cert},
		// The standard verification also matches the dialled host name; the chain
		// is verified against the CA in VerifyPeerCertificate instead.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: m.verifyServer,
	}
}

func (m Member) verifyServer(raw [][]byte, _ [][]*x509.Certificate) error {
	return verifyChain(raw, m.CAs, x509.ExtKeyUsageServerAuth)
}
