package certs

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustLoad(t *testing.T, dir, name string) Member {
	t.Helper()
	f := FilesIn(dir, name)
	m, err := Load(f.Cert, f.Key, f.CA)
	require.NoError(t, err)
	return m
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	require.NoError(t, WriteDir(dir, "node1", "node2"))
	for _, name := range []string{"ca-key.pem", "node1-key.pem", "node2-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), name)
	}
	m := mustLoad(t, dir, "node1")
	require.Equal(t, "node1", m.Cert.Leaf.Subject.CommonName)
	require.Equal(t, []string{"localhost"}, m.Cert.Leaf.DNSNames)
	require.True(t, m.Cert.Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)))
	require.WithinDuration(t, time.Now().Add(Lifetime), m.Cert.Leaf.NotAfter, time.Minute)

	t.Run("kept when valid", func(t *testing.T) {
		before, err := os.ReadFile(filepath.Join(dir, "node1.pem"))
		require.NoError(t, err)
		require.NoError(t, WriteDir(dir, "node1", "node3"))
		after, err := os.ReadFile(filepath.Join(dir, "node1.pem"))
		require.NoError(t, err)
		require.Equal(t, before, after)
		mustLoad(t, dir, "node3")
	})
	t.Run("a new CA reissues every member", func(t *testing.T) {
		require.NoError(t, os.Remove(filepath.Join(dir, "ca-key.pem")))
		require.NoError(t, WriteDir(dir, "node1"))
		mustLoad(t, dir, "node1")
		f := FilesIn(dir, "node2") // not reissued: signed by the old CA
		_, err := Load(f.Cert, f.Key, f.CA)
		require.ErrorContains(t, err, "not a member certificate of this CA")
	})
}

func TestLoadErrors(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	require.NoError(t, WriteDir(dir, "a", "b"))
	require.NoError(t, WriteDir(other, "x"))
	a, b, x := FilesIn(dir, "a"), FilesIn(dir, "b"), FilesIn(other, "x")
	tests := []struct {
		name          string
		cert, key, ca string
		want          string
	}{
		{"missing CA", a.Cert, a.Key, filepath.Join(dir, "nope.pem"), "reading CA"},
		{"CA file without PEM", a.Cert, a.Key, a.Key, "no PEM certificate"},
		{"missing cert", filepath.Join(dir, "nope.pem"), a.Key, a.CA, "loading"},
		{"key of another cert", a.Cert, b.Key, a.CA, "loading"},
		{"signed by another CA", x.Cert, x.Key, a.CA, "not a member certificate of this CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.cert, tt.key, tt.ca)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// A handshake between two members succeeds; a client of another CA is refused, and
// so is a server of another CA.
func TestHandshake(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	require.NoError(t, WriteDir(dir, "a", "b"))
	require.NoError(t, WriteDir(other, "x"))
	a, b, x := mustLoad(t, dir, "a"), mustLoad(t, dir, "b"), mustLoad(t, other, "x")
	tests := []struct {
		name           string
		server, client Member
		ok             bool
	}{
		{"members", a, b, true},
		// Each side trusts the other's CA, so only the named side's check refuses.
		{"client of another CA", a, Member{Cert: x.Cert, CAs: a.CAs}, false},
		{"server of another CA", Member{Cert: x.Cert, CAs: a.CAs}, a, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := net.Pipe()
			defer c.Close()
			defer s.Close()
			errc := make(chan error, 1)
			go func() {
				srv := tls.Server(s, tt.server.ServerConfig())
				err := srv.Handshake()
				if err == nil { // TLS 1.3: the client learns of a refused certificate on its first read
					_, err = srv.Write([]byte{1})
				}
				errc <- err
				s.Close()
			}()
			cl := tls.Client(c, tt.client.ClientConfig())
			_ = cl.SetDeadline(time.Now().Add(5 * time.Second))
			err := cl.Handshake()
			if err == nil {
				_, err = cl.Read(make([]byte, 1))
			}
			serr := <-errc
			if tt.ok {
				require.NoError(t, err)
				require.NoError(t, serr)
				require.Equal(t, uint16(tls.VersionTLS13), cl.ConnectionState().Version)
				return
			}
			require.Error(t, err)
			require.Error(t, serr)
		})
	}
}
