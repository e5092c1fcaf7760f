package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/internal/convid"
)

// ErrInvalidToken wraps every reason [Signer.Verify] rejects a token: bad
// signature, tampering, expiry, an algorithm other than HS256 (including
// "none"), malformed input or missing claims.
var ErrInvalidToken = errors.New("auth: invalid token")

// MinSecretBytes is the shortest HMAC key [NewSigner] accepts.
const MinSecretBytes = 32

// DevicePattern is what a device id must match (in a token, and as chosen by a
// client at login).
var DevicePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Claims is what a valid token says.
type Claims struct {
	UserID   string    // "sub"
	DeviceID string    // "did"
	Expires  time.Time // "exp", whole seconds
	// Generation is the device's token generation when the token was issued
	// ("gen", absent for 0); a logout moves the device past it (see [Sessions]).
	Generation int64
}

// Signer issues and verifies HS256 access tokens. It signs with one key and
// accepts tokens signed with it or with one previous key, so that keys can be
// rotated; each token names its key in the "kid" header. It is immutable and
// safe for concurrent use.
type Signer struct {
	keys   []key // the first signs
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// key is an HMAC key and its id, derived from it, so that every node holding
// the key names it alike.
type key struct {
	id     string
	secret []byte
}

func newKey(secret []byte) key {
	sum := sha256.Sum256(secret)
	return key{id: hex.EncodeToString(sum[:8]), secret: append([]byte(nil), secret...)}
}

// Option configures a [Signer].
type Option func(*Signer)

// WithClock makes the Signer read the time from now instead of [time.Now],
// both when issuing and when checking expiry. Meant for tests.
func WithClock(now func() time.Time) Option {
	return func(s *Signer) { s.now = now }
}

// WithPreviousSecret makes the Signer also accept tokens signed with secret (at
// least [MinSecretBytes] bytes; copied), the key used before the current one.
// An empty secret, or the current one, changes nothing.
func WithPreviousSecret(secret []byte) Option {
	return func(s *Signer) {
		if len(secret) > 0 {
			s.keys = append(s.keys, newKey(secret))
		}
	}
}

// tokenClaims is the JWT payload: sub, exp and iat, plus the device id and its
// token generation.
type tokenClaims struct {
	DeviceID   string `json:"did"`
	Generation int64  `json:"gen,omitempty"`
	jwt.RegisteredClaims
}

// NewSigner returns a Signer that signs with secret (at least
// [MinSecretBytes] bytes; copied) and issues tokens valid for ttl.
func NewSigner(secret []byte, ttl time.Duration, opts ...Option) (*Signer, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("auth: token TTL must be > 0, got %s", ttl)
	}
	s := &Signer{keys: []key{newKey(secret)}, ttl: ttl, now: time.Now}
	for _, opt := range opts {
		opt(s)
	}
	if len(s.keys) > 2 {
		return nil, errors.New("auth: at most one previous token secret")
	}
	if len(s.keys) == 2 && s.keys[0].id == s.keys[1].id {
		s.keys = s.keys[:1]
	}
	for i, k := range s.keys {
		if len(k.secret) < MinSecretBytes {
			name := "token secret"
			if i > 0 {
				name = "previous token secret"
			}
			return nil, fmt.Errorf("auth: %s is %d bytes, need at least %d", name, len(k.secret), MinSecretBytes)
		}
	}
	// iat is deliberately not checked: a node whose clock lags the issuer's
	// would otherwise reject fresh tokens.
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now),
	)
	return s, nil
}

// TTL is how long the tokens it issues are valid.
func (s *Signer) TTL() time.Duration { return s.ttl }

// Issue returns a signed token for userID on deviceID, of token generation 0,
// expiring after the Signer's TTL.
func (s *Signer) Issue(userID, deviceID string) (string, error) {
	return s.IssueGeneration(userID, deviceID, 0)
}

// IssueGeneration returns a signed token for userID on deviceID, of the given
// token generation (>= 0), expiring after the Signer's TTL. The ids must match
// [convid.UserID] and [DevicePattern].
func (s *Signer) IssueGeneration(userID, deviceID string, generation int64) (string, error) {
	if !convid.UserID.MatchString(userID) || !DevicePattern.MatchString(deviceID) || generation < 0 {
		return "", fmt.Errorf("auth: issuing token: bad user id %q, device id %q or generation %d", userID, deviceID, generation)
	}
	now := s.now()
	claims := tokenClaims{
		DeviceID:   deviceID,
		Generation: generation,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["kid"] = s.keys[0].id
	token, err := t.SignedString(s.keys[0].secret)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return token, nil
}

// Verify checks token and returns its claims: its signature by the key its
// "kid" names (by any live key when it names none), its expiry, and that sub
// is a user id and did a device id. Every failure wraps [ErrInvalidToken].
func (s *Signer) Verify(token string) (Claims, error) {
	var claims tokenClaims
	_, err := s.parser.ParseWithClaims(token, &claims, s.keyOf)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case claims.Subject == "" || claims.DeviceID == "":
		return Claims{}, fmt.Errorf("%w: missing sub or did claim", ErrInvalidToken)
	case !convid.UserID.MatchString(claims.Subject) || !DevicePattern.MatchString(claims.DeviceID):
		return Claims{}, fmt.Errorf("%w: sub or did is no valid id", ErrInvalidToken)
	case claims.Generation < 0:
		return Claims{}, fmt.Errorf("%w: negative gen claim", ErrInvalidToken)
	}
	return Claims{
		UserID:     claims.Subject,
		DeviceID:   claims.DeviceID,
		Expires:    claims.ExpiresAt.Time,
		Generation: claims.Generation,
	}, nil
}

// keyOf is the key that must have signed t (the parser has already restricted
// alg to HS256).
func (s *Signer) keyOf(t *jwt.Token) (any, error) {
	kid, ok := t.Header["kid"]
	if !ok {
		set := jwt.VerificationKeySet{}
		for _, k := range s.keys {
			set.Keys = append(set.Keys, k.secret)
		}
		return set, nil
	}
	for _, k := range s.keys {
		if kid == k.id {
			return k.secret, nil
		}
	}
	return nil, errors.New("unknown kid")
}

// KeyIDs are the ids of the live keys, the signing key's first.
func (s *Signer) KeyIDs() []string {
	ids := make([]string, len(s.keys))
	for i, k := range s.keys {
		ids[i] = k.id
	}
	return ids
}

// NewSecret returns a fresh random HMAC key of [MinSecretBytes] bytes.
func NewSecret() ([]byte, error) {
	b := make([]byte, MinSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating token secret: %w", err)
	}
	return b, nil
}
