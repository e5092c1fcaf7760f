package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken wraps every reason [Signer.Verify] rejects a token: bad
// signature, tampering, expiry, an algorithm other than HS256 (including
// "none"), malformed input or missing claims.
var ErrInvalidToken = errors.New("auth: invalid token")

// MinSecretBytes is the shortest HMAC key [NewSigner] accepts.
const MinSecretBytes = 32

// Claims is what a valid token says.
type Claims struct {
	UserID   string    // "sub"
	DeviceID string    // "did"
	Expires  time.Time // "exp", whole seconds
}

// Signer issues and verifies HS256 access tokens. It is immutable and safe
// for concurrent use.
type Signer struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	parser *jwt.Parser
}

// Option configures a [Signer].
type Option func(*Signer)

// WithClock makes the Signer read the time from now instead of [time.Now],
// both when issuing and when checking expiry. Meant for tests.
func WithClock(now func() time.Time) Option {
	return func(s *Signer) { s.now = now }
}

// tokenClaims is the JWT payload: sub, exp and iat, plus the device id.
type tokenClaims struct {
	DeviceID string `json:"did"`
	jwt.RegisteredClaims
}

// NewSigner returns a Signer that signs with secret (at least
// [MinSecretBytes] bytes; copied) and issues tokens valid for ttl.
func NewSigner(secret []byte, ttl time.Duration, opts ...Option) (*Signer, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: token secret is %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("auth: token TTL must be > 0, got %s", ttl)
	}
	s := &Signer{secret: append([]byte(nil), secret...), ttl: ttl, now: time.Now}
	for _, opt := range opts {
		opt(s)
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

// Issue returns a signed token for userID on deviceID, expiring after the
// Signer's TTL.
func (s *Signer) Issue(userID, deviceID string) (string, error) {
	if userID == "" || deviceID == "" {
		return "", errors.New("auth: issuing token: empty user or device id")
	}
	now := s.now()
	claims := tokenClaims{
		DeviceID: deviceID,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.ttl)),
		},
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return token, nil
}

// Verify checks token and returns its claims. Every failure wraps
// [ErrInvalidToken].
func (s *Signer) Verify(token string) (Claims, error) {
	var claims tokenClaims
	_, err := s.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) {
		return s.secret, nil // the parser has already restricted alg to HS256
	})
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" || claims.DeviceID == "" {
		return Claims{}, fmt.Errorf("%w: missing sub or did claim", ErrInvalidToken)
	}
	return Claims{
		UserID:   claims.Subject,
		DeviceID: claims.DeviceID,
		Expires:  claims.ExpiresAt.Time,
	}, nil
}

// NewSecret returns a fresh random HMAC key of [MinSecretBytes] bytes.
func NewSecret() ([]byte, error) {
	b := make([]byte, MinSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating token secret: %w", err)
	}
	return b, nil
}
