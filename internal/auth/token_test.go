package auth

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef")
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
	epoch       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable time source for WithClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// mustSigner returns a Signer on testSecret with a one-hour TTL and the clock.
func mustSigner(t *testing.T, secret []byte, clk *clock) *Signer {
	t.Helper()
	s, err := NewSigner(secret, time.Hour, WithClock(clk.now))
	require.NoError(t, err)
	return s
}

// mustIssue issues a token for user u1 on device d1.
func mustIssue(t *testing.T, s *Signer) string {
	t.Helper()
	tok, err := s.Issue("u1", "d1")
	require.NoError(t, err)
	return tok
}

// signRaw signs arbitrary claims with method and key, bypassing Signer.
func signRaw(t *testing.T, method jwt.SigningMethod, claims jwt.MapClaims, key any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return tok
}

func TestNewSigner(t *testing.T) {
	_, err := NewSigner(testSecret[:31], time.Hour)
	require.Error(t, err)
	_, err = NewSigner(testSecret, 0)
	require.Error(t, err)
	_, err = NewSigner(testSecret, time.Hour)
	require.NoError(t, err)
}

func TestIssueVerify(t *testing.T) {
	clk := &clock{t: epoch}
	s := mustSigner(t, testSecret, clk)
	tok := mustIssue(t, s)

	clk.set(epoch.Add(59 * time.Minute))
	claims, err := s.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, "u1", claims.UserID)
	require.Equal(t, "d1", claims.DeviceID)
	require.True(t, claims.Expires.Equal(epoch.Add(time.Hour)), "expires %s", claims.Expires)

	// Another Signer with the same secret (another node) accepts it too.
	claims2, err := mustSigner(t, testSecret, clk).Verify(tok)
	require.NoError(t, err)
	require.Equal(t, claims.UserID, claims2.UserID)
}

func TestIssueRequiresIDs(t *testing.T) {
	s := mustSigner(t, testSecret, &clock{t: epoch})
	_, err := s.Issue("", "d1")
	require.Error(t, err)
	_, err = s.Issue("u1", "")
	require.Error(t, err)
}

func TestIssueAlgAndClaims(t *testing.T) {
	s := mustSigner(t, testSecret, &clock{t: epoch})
	parts := strings.Split(mustIssue(t, s), ".")
	require.Len(t, parts, 3)

	var header map[string]any
	require.NoError(t, json.Unmarshal(mustDecode(t, parts[0]), &header))
	require.Equal(t, "HS256", header["alg"])

	var payload map[string]any
	require.NoError(t, json.Unmarshal(mustDecode(t, parts[1]), &payload))
	require.Equal(t, "u1", payload["sub"])
	require.Equal(t, "d1", payload["did"])
	require.EqualValues(t, epoch.Unix(), payload["iat"])
	require.EqualValues(t, epoch.Add(time.Hour).Unix(), payload["exp"])
}

func TestVerifyRejects(t *testing.T) {
	clk := &clock{t: epoch}
	s := mustSigner(t, testSecret, clk)
	good := mustIssue(t, s)
	parts := strings.Split(good, ".")
	valid := jwt.MapClaims{"sub": "u1", "did": "d1", "iat": epoch.Unix(), "exp": epoch.Add(time.Hour).Unix()}
	without := func(key string) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range valid {
			if k != key {
				c[k] = v
			}
		}
		return c
	}

	tests := []struct {
		name  string
		token string
		now   time.Time
	}{
		{"empty", "", epoch},
		{"garbage", "not.a.token", epoch},
		{"two segments", parts[0] + "." + parts[1], epoch},
		{"tampered payload", parts[0] + "." + tamperSub(t, parts[1]) + "." + parts[2], epoch},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flipFirst(parts[2]), epoch},
		{"other secret", mustIssue(t, mustSigner(t, otherSecret, clk)), epoch},
		{"expired", good, epoch.Add(time.Hour + time.Second)},
		{"expired at exp", good, epoch.Add(time.Hour)},
		{"alg none", signRaw(t, jwt.SigningMethodNone, valid, jwt.UnsafeAllowNoneSignatureType), epoch},
		{"alg HS512 same secret", signRaw(t, jwt.SigningMethodHS512, valid, testSecret), epoch},
		{"missing sub", signRaw(t, jwt.SigningMethodHS256, without("sub"), testSecret), epoch},
		{"missing did", signRaw(t, jwt.SigningMethodHS256, without("did"), testSecret), epoch},
		{"missing exp", signRaw(t, jwt.SigningMethodHS256, without("exp"), testSecret), epoch},
		{"sub not a string", signRaw(t, jwt.SigningMethodHS256, withClaim(valid, "sub", 42), testSecret), epoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.set(tt.now)
			_, err := s.Verify(tt.token)
			require.ErrorIs(t, err, ErrInvalidToken)
		})
	}
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	require.NoError(t, err)
	require.Len(t, a, 32)
	b, err := NewSecret()
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	_, err = NewSigner(a, time.Hour)
	require.NoError(t, err)
}

func TestSignerCopiesSecret(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	clk := &clock{t: epoch}
	s := mustSigner(t, secret, clk)
	tok := mustIssue(t, s)
	secret[0] ^= 0xff
	_, err := s.Verify(tok)
	require.NoError(t, err)
}

func mustDecode(t *testing.T, seg string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	return b
}

// tamperSub rewrites the payload segment so that sub names another user.
func tamperSub(t *testing.T, seg string) string {
	t.Helper()
	var payload map[string]any
	require.NoError(t, json.Unmarshal(mustDecode(t, seg), &payload))
	payload["sub"] = "admin"
	b, err := json.Marshal(payload)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// flipFirst changes the first character of a base64url segment. (The last
// one may carry only padding bits, so changing it can leave the bytes equal.)
func flipFirst(seg string) string {
	c := byte('A')
	if seg[0] == 'A' {
		c = 'B'
	}
	return string(c) + seg[1:]
}

func withClaim(c jwt.MapClaims, key string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, val := range c {
		out[k] = val
	}
	out[key] = v
	return out
}
