package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memDevices keeps generations in a map and counts the reads.
type memDevices struct {
	mu    sync.Mutex
	gens  map[string]int64
	reads int
	fail  error
}

func (m *memDevices) DeviceGeneration(_ context.Context, user, device string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return m.gens[user+"/"+device], m.fail
}

func (m *memDevices) RevokeDevice(_ context.Context, user, device string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gens[user+"/"+device]++
	return m.gens[user+"/"+device], m.fail
}

func (m *memDevices) readCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reads
}

// Finding 8: a logout revokes the device's tokens; generations are cached for
// the TTL, so verifying costs no read each time.
func TestSessionsRevoke(t *testing.T) {
	clk := &clock{t: epoch}
	signer := mustSigner(t, testSecret, clk)
	devs := &memDevices{gens: map[string]int64{}}
	s := NewSessions(signer, devs, SessionsConfig{CacheTTL: 10 * time.Second, Now: clk.now})
	ctx := context.Background()

	phone, err := s.Issue(ctx, "alice", "phone")
	require.NoError(t, err)
	laptop, err := s.Issue(ctx, "alice", "laptop")
	require.NoError(t, err)
	reads := devs.readCount()
	for range 100 {
		_, err := s.Verify(ctx, phone)
		require.NoError(t, err)
	}
	require.Equal(t, reads, devs.readCount(), "verifying within the TTL reads nothing")
	clk.set(epoch.Add(10 * time.Second))
	_, err = s.Verify(ctx, phone)
	require.NoError(t, err)
	require.Equal(t, reads+1, devs.readCount(), "after the TTL the generation is read again")

	require.NoError(t, s.Revoke(ctx, "alice", "phone"))
	_, err = s.Verify(ctx, phone)
	require.ErrorIs(t, err, ErrInvalidToken, "logged out on this node: refused at once")
	_, err = s.Verify(ctx, laptop)
	require.NoError(t, err, "the user's other devices stay in")

	again, err := s.Issue(ctx, "alice", "phone")
	require.NoError(t, err)
	c, err := s.Verify(ctx, again)
	require.NoError(t, err, "a new login on the device works")
	require.EqualValues(t, 1, c.Generation)
}

// A logout on another node is seen here once the cached generation expires.
func TestSessionsStaleness(t *testing.T) {
	clk := &clock{t: epoch}
	signer := mustSigner(t, testSecret, clk)
	devs := &memDevices{gens: map[string]int64{}}
	here := NewSessions(signer, devs, SessionsConfig{CacheTTL: 5 * time.Second, Now: clk.now})
	there := NewSessions(signer, devs, SessionsConfig{CacheTTL: 5 * time.Second, Now: clk.now})
	ctx := context.Background()
	tok, err := here.Issue(ctx, "bob", "d1")
	require.NoError(t, err)
	_, err = here.Verify(ctx, tok)
	require.NoError(t, err)

	require.NoError(t, there.Revoke(ctx, "bob", "d1"))
	clk.set(epoch.Add(4 * time.Second))
	_, err = here.Verify(ctx, tok)
	require.NoError(t, err, "within the TTL the other node's logout is not seen yet")
	clk.set(epoch.Add(5 * time.Second))
	_, err = here.Verify(ctx, tok)
	require.ErrorIs(t, err, ErrInvalidToken, "after the TTL it is")

	// A login on the other node after the logout: its token is newer than what
	// is cached here, which is read again rather than refused.
	clk.set(epoch.Add(6 * time.Second))
	newer, err := there.Issue(ctx, "bob", "d1")
	require.NoError(t, err)
	require.NoError(t, there.Revoke(ctx, "bob", "d1"))
	newest, err := there.Issue(ctx, "bob", "d1")
	require.NoError(t, err)
	_, err = here.Verify(ctx, newest)
	require.NoError(t, err)
	_, err = here.Verify(ctx, newer)
	require.ErrorIs(t, err, ErrInvalidToken)
}

func TestSessionsBoundsCache(t *testing.T) {
	devs := &memDevices{gens: map[string]int64{}}
	s := NewSessions(mustSigner(t, testSecret, &clock{t: epoch}), devs, SessionsConfig{CacheEntries: 2,
		Now: func() time.Time { return epoch }})
	ctx := context.Background()
	for _, d := range []string{"d1", "d2", "d3", "d4"} {
		_, err := s.Issue(ctx, "u1", d)
		require.NoError(t, err)
	}
	require.Equal(t, 2, s.cache.len())
}

func TestSessionsStoreFailure(t *testing.T) {
	devs := &memDevices{gens: map[string]int64{}}
	s := NewSessions(mustSigner(t, testSecret, &clock{t: epoch}), devs, SessionsConfig{Now: func() time.Time { return epoch }})
	tok, err := s.signer.Issue("u1", "d1")
	require.NoError(t, err)
	devs.fail = errors.New("db down")
	_, err = s.Verify(context.Background(), tok)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrInvalidToken, "an outage is not a bad token")
}
