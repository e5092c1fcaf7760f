package auth

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Devices is what [Sessions] needs of the store: each device's token
// generation, which a logout moves on.
type Devices interface {
	// DeviceGeneration is the device's token generation; 0 for a device the
	// store does not know.
	DeviceGeneration(ctx context.Context, user, device string) (int64, error)
	// RevokeDevice moves the device's generation on and returns the new one.
	RevokeDevice(ctx context.Context, user, device string) (int64, error)
}

// SessionsConfig tunes [Sessions]. Zero values take the defaults.
type SessionsConfig struct {
	// CacheTTL is how long a device's generation read from the store is
	// trusted; it is how late a logout on another node may be seen. Default 10s.
	CacheTTL time.Duration
	// CacheEntries bounds the devices cached; default 65536.
	CacheEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Sessions issues and verifies the tokens of devices, and revokes them: a token
// carries its device's generation when it was issued, and is valid only while
// the device is still at that generation. A logout ([Sessions.Revoke]) moves the
// generation on. Generations read from the store are cached for a while, so
// that a request costs no query; a logout on this process updates the cache at
// once. Safe for concurrent use.
type Sessions struct {
	signer  *Signer
	devices Devices
	ttl     time.Duration
	now     func() time.Time

	mu    sync.Mutex
	cache *lru[generation]
}

type generation struct {
	gen int64
	at  time.Time // when it was read
}

// NewSessions returns Sessions that sign with signer and keep generations in
// devices.
func NewSessions(signer *Signer, devices Devices, cfg SessionsConfig) *Sessions {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 10 * time.Second
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 1 << 16
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sessions{signer: signer, devices: devices, ttl: cfg.CacheTTL, now: cfg.Now,
		cache: newLRU[generation](cfg.CacheEntries)}
}

// Issue returns a token for user on device at the device's current generation
// (read from the store, not the cache).
func (s *Sessions) Issue(ctx context.Context, user, device string) (string, error) {
	gen, err := s.devices.DeviceGeneration(ctx, user, device)
	if err != nil {
		return "", fmt.Errorf("reading token generation: %w", err)
	}
	s.remember(user, device, gen)
	return s.signer.IssueGeneration(user, device, gen)
}

// Verify checks token as [Signer.Verify] does, then that its device has not
// been logged out since it was issued ([ErrInvalidToken] if it has). A store
// failure is returned as it is, not as ErrInvalidToken.
func (s *Sessions) Verify(ctx context.Context, token string) (Claims, error) {
	c, err := s.signer.Verify(token)
	if err != nil {
		return Claims{}, err
	}
	gen, fresh := s.cached(c.UserID, c.DeviceID)
	// A token newer than the cache means the cache is behind (a login on
	// another node after a logout): read again.
	if !fresh || c.Generation > gen {
		if gen, err = s.devices.DeviceGeneration(ctx, c.UserID, c.DeviceID); err != nil {
			return Claims{}, fmt.Errorf("reading token generation: %w", err)
		}
		s.remember(c.UserID, c.DeviceID, gen)
	}
	if c.Generation != gen {
		return Claims{}, fmt.Errorf("%w: the device has logged out", ErrInvalidToken)
	}
	return c, nil
}

// Revoke logs the device out: every token issued for it so far stops being
// valid, on this process at once, elsewhere within the cache TTL.
func (s *Sessions) Revoke(ctx context.Context, user, device string) error {
	gen, err := s.devices.RevokeDevice(ctx, user, device)
	if err != nil {
		return fmt.Errorf("revoking device tokens: %w", err)
	}
	s.remember(user, device, gen)
	return nil
}

func cacheKey(user, device string) string { return user + "\x00" + device }

// cached returns the cached generation and whether it is still fresh.
func (s *Sessions) cached(user, device string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.cache.get(cacheKey(user, device))
	if !ok {
		return 0, false
	}
	return g.gen, s.now().Sub(g.at) < s.ttl
}

// remember caches gen, unless a higher one is cached (generations never go
// back; a slower read must not undo a logout).
func (s *Sessions) remember(user, device string, gen int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := cacheKey(user, device)
	if g, ok := s.cache.get(k); ok && g.gen > gen {
		return
	}
	s.cache.put(k, generation{gen: gen, at: s.now()})
}
