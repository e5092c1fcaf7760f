package auth

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// Hasher runs bcrypt (hashing and checking passwords) at most a fixed number of
// times at once, so that a flood of logins or sign-ups cannot take every core;
// the others wait their turn, or give up when their context ends. Safe for
// concurrent use.
type Hasher struct {
	cost    int
	slots   chan struct{}
	waiting atomic.Int64
	running atomic.Int64
	// hash and compare are bcrypt's; tests replace them.
	hash    func(password []byte, cost int) ([]byte, error)
	compare func(hash, password []byte) error
	dummy   func() (string, error)
}

// NewHasher returns a Hasher that makes hashes of the given bcrypt cost
// (bcrypt.MinCost..bcrypt.MaxCost) and runs at most concurrency hashes at once;
// concurrency 0 means [runtime.GOMAXPROCS].
func NewHasher(cost, concurrency int) (*Hasher, error) {
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("auth: bcrypt cost %d outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if concurrency < 0 {
		return nil, fmt.Errorf("auth: hash concurrency must be >= 0, got %d", concurrency)
	}
	if concurrency == 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{cost: cost, slots: make(chan struct{}, concurrency),
		hash: bcrypt.GenerateFromPassword, compare: bcrypt.CompareHashAndPassword}
	h.dummy = sync.OnceValues(func() (string, error) { return h.Hash(context.Background(), "parley-dummy-password") })
	return h, nil
}

// Hash returns the bcrypt hash of password, as [HashPassword] does, after
// waiting for a free slot; ctx's error if it ends first.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if len(password) > maxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	var out []byte
	err := h.run(ctx, func() (err error) {
		out, err = h.hash([]byte(password), h.cost)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(out), nil
}

// Check reports whether password matches hash, as [CheckPassword] does, after
// waiting for a free slot; ctx's error if it ends first.
func (h *Hasher) Check(ctx context.Context, hash, password string) (bool, error) {
	if len(password) > maxPasswordBytes {
		return false, nil
	}
	var match bool
	err := h.run(ctx, func() error {
		match = h.compare([]byte(hash), []byte(password)) == nil
		return nil
	})
	return match, err
}

// CheckNone spends the time of a [Hasher.Check] against a hash that matches
// nothing a client sends, so that a login naming an unknown user takes as long
// as a wrong password.
func (h *Hasher) CheckNone(ctx context.Context, password string) error {
	hash, err := h.dummy()
	if err != nil {
		return err
	}
	_, err = h.Check(ctx, hash, password)
	return err
}

// Running is how many hashes run now.
func (h *Hasher) Running() int { return int(h.running.Load()) }

// Waiting is how many calls wait for a slot.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// run calls f in a slot.
func (h *Hasher) run(ctx context.Context, f func() error) error {
	h.waiting.Add(1)
	select {
	case h.slots <- struct{}{}:
		h.waiting.Add(-1)
	case <-ctx.Done():
		h.waiting.Add(-1)
		return ctx.Err()
	}
	h.running.Add(1)
	defer func() {
		h.running.Add(-1)
		<-h.slots
	}()
	return f()
}
