package node

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/gateway"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// Finding 8: with no key configured, a node generates one into its key file
// (mode 0600) and every later start, or other node of the host, reuses it; a
// configured key wins over the file; the database is not involved.
func TestNewSignerKeyFile(t *testing.T) {
	cfg := config.Default().Auth
	cfg.TokenSecretFile = filepath.Join(t.TempDir(), "keys", "token-secret")
	first, err := newSigner(cfg, config.ProviderLocal, quietLog)
	require.NoError(t, err)
	info, err := os.Stat(cfg.TokenSecretFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	second, err := newSigner(cfg, config.ProviderLocal, quietLog)
	require.NoError(t, err)
	tok, err := first.Issue("alice", "d1")
	require.NoError(t, err)
	_, err = second.Verify(tok)
	require.NoError(t, err, "the second start reuses the key")

	// Rotation through the file: the new key on the first line, the old on the second.
	old, err := os.ReadFile(cfg.TokenSecretFile)
	require.NoError(t, err)
	fresh := strings.Repeat("n", 40)
	require.NoError(t, os.WriteFile(cfg.TokenSecretFile, []byte(fresh+"\n"+string(old)), 0o600))
	rotated, err := newSigner(cfg, config.ProviderLocal, quietLog)
	require.NoError(t, err)
	_, err = rotated.Verify(tok)
	require.NoError(t, err, "tokens of the previous key still work")
	require.Len(t, rotated.KeyIDs(), 2)

	// A configured key: the file is neither read nor created.
	cfg.TokenSecret = strings.Repeat("c", 32)
	cfg.PreviousTokenSecret = fresh
	cfg.TokenSecretFile = filepath.Join(t.TempDir(), "unused")
	configured, err := newSigner(cfg, config.ProviderLocal, quietLog)
	require.NoError(t, err)
	_, err = os.Stat(cfg.TokenSecretFile)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = configured.Verify(tok)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "the file's keys are not the configured ones")
	byRotated, err := rotated.Issue("alice", "d1")
	require.NoError(t, err)
	_, err = configured.Verify(byRotated)
	require.NoError(t, err, "the previous key is accepted")
}

func TestNewSignerBadKeyFile(t *testing.T) {
	cfg := config.Default().Auth
	cfg.TokenSecretFile = filepath.Join(t.TempDir(), "token-secret")
	require.NoError(t, os.WriteFile(cfg.TokenSecretFile, []byte("short\n"), 0o600))
	_, err := newSigner(cfg, config.ProviderLocal, quietLog)
	require.ErrorContains(t, err, "auth.tokenSecretFile")
}

// memDevices keeps token generations in memory.
type memDevices struct {
	mu   sync.Mutex
	gens map[string]int64
}

func (m *memDevices) DeviceGeneration(_ context.Context, user, device string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gens[user+"/"+device], nil
}

func (m *memDevices) RevokeDevice(_ context.Context, user, device string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gens[user+"/"+device]++
	return m.gens[user+"/"+device], nil
}

// The WebSocket upgrade checks tokens as REST does: a logged-out device and
// claims that are no ids are refused (findings 8, 13).
func TestAuthenticator(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	signer, err := auth.NewSigner(secret, time.Hour)
	require.NoError(t, err)
	sessions := auth.NewSessions(signer, &memDevices{gens: map[string]int64{}}, auth.SessionsConfig{})
	authn := authenticator(sessions)
	ctx := context.Background()
	upgrade := func(token string) (gateway.Identity, error) {
		r := httptest.NewRequest("GET", "/v1/ws", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		return authn(r)
	}

	tok, err := sessions.Issue(ctx, "alice", "phone")
	require.NoError(t, err)
	id, err := upgrade(tok)
	require.NoError(t, err)
	require.Equal(t, gateway.Identity{User: "alice", Device: "phone"}, id)

	r := httptest.NewRequest("GET", "/v1/ws?token="+tok, nil)
	_, err = authn(r)
	require.NoError(t, err, "the upgrade takes ?token= (browsers cannot set headers)")

	require.NoError(t, sessions.Revoke(ctx, "alice", "phone"))
	_, err = upgrade(tok)
	require.ErrorIs(t, err, gateway.AuthError, "a logged-out device cannot connect")

	bad, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "../../x\x00y", "did": "d1", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	require.NoError(t, err)
	_, err = upgrade(bad)
	require.ErrorIs(t, err, gateway.AuthError)
}
