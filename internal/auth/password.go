// Package auth hashes passwords (bcrypt, a bounded number at once: [Hasher]),
// issues and verifies access tokens (JWT, HS256, with a key id and one previous
// key for rotation: [Signer]), revokes a device's tokens at logout ([Sessions]),
// keeps token keys in a key file ([EnsureSecretFile]), and limits attempts per
// key with token buckets ([Throttle]).
//
// A Signer is immutable after [NewSigner]. Hasher, Sessions and Throttle hold
// bounded state of their own (a semaphore, an LRU cache of token generations,
// LRU buckets) behind their own locks. All of them are safe for concurrent use.
// Failures that a client may see are the sentinels [ErrBadPassword] and
// [ErrInvalidToken]; callers map them to wire codes and never show the wrapped
// detail.
package auth

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// ErrBadPassword is what a caller returns when a login fails, whether the
// user is unknown or the password wrong, so the two cannot be told apart.
// Hashing itself never returns it.
var ErrBadPassword = errors.New("auth: wrong username or password")

// ErrPasswordTooLong is returned by [HashPassword] for passwords over 72
// bytes, which bcrypt would otherwise silently truncate.
var ErrPasswordTooLong = errors.New("auth: password longer than 72 bytes")

// maxPasswordBytes is the most bcrypt hashes; the rest would be ignored.
const maxPasswordBytes = 72

// HashPassword returns the bcrypt hash of password at the given cost
// (bcrypt.MinCost..bcrypt.MaxCost, i.e. 4..31).
func HashPassword(password string, cost int) (string, error) {
	if len(password) > maxPasswordBytes {
		return "", ErrPasswordTooLong
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		// bcrypt would quietly use its default for a cost below the minimum.
		return "", fmt.Errorf("auth: bcrypt cost %d outside %d..%d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether password matches hash, a result of
// [HashPassword]. A malformed hash or an over-long password never matches.
func CheckPassword(hash, password string) bool {
	if len(password) > maxPasswordBytes {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
