package auth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

var thirdSecret = []byte("0000000000111111111122222222223333333333")

func tokenHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	var h map[string]any
	require.NoError(t, json.Unmarshal(mustDecode(t, strings.Split(token, ".")[0]), &h))
	return h
}

// Finding 8: tokens name their key, and a Signer accepts its current key and
// one previous key, so that keys can rotate without logging everyone out.
func TestKeyRotation(t *testing.T) {
	clk := &clock{t: epoch}
	old := mustSigner(t, otherSecret, clk)
	oldToken := mustIssue(t, old)
	require.Equal(t, old.KeyIDs()[0], tokenHeader(t, oldToken)["kid"])

	rotated, err := NewSigner(testSecret, time.Hour, WithClock(clk.now), WithPreviousSecret(otherSecret))
	require.NoError(t, err)
	require.Equal(t, []string{mustSigner(t, testSecret, clk).KeyIDs()[0], old.KeyIDs()[0]}, rotated.KeyIDs())
	newToken := mustIssue(t, rotated)
	require.Equal(t, rotated.KeyIDs()[0], tokenHeader(t, newToken)["kid"], "new tokens use the first key")

	_, err = rotated.Verify(oldToken)
	require.NoError(t, err, "a token of the previous key is still accepted")
	_, err = rotated.Verify(newToken)
	require.NoError(t, err)
	_, err = old.Verify(newToken)
	require.ErrorIs(t, err, ErrInvalidToken, "a node without the new key refuses it")

	// Once the previous key is dropped its tokens stop working.
	_, err = mustSigner(t, testSecret, clk).Verify(oldToken)
	require.ErrorIs(t, err, ErrInvalidToken)

	// A third key is never accepted, with or without a kid.
	third := mustSigner(t, thirdSecret, clk)
	_, err = rotated.Verify(mustIssue(t, third))
	require.ErrorIs(t, err, ErrInvalidToken)
	valid := jwt.MapClaims{"sub": "u1", "did": "d1", "exp": epoch.Add(time.Hour).Unix()}
	_, err = rotated.Verify(signRaw(t, jwt.SigningMethodHS256, valid, thirdSecret))
	require.ErrorIs(t, err, ErrInvalidToken)

	// A token with no kid (issued before kids) is checked against both keys.
	for _, secret := range [][]byte{testSecret, otherSecret} {
		_, err = rotated.Verify(signRaw(t, jwt.SigningMethodHS256, valid, secret))
		require.NoError(t, err)
	}
	// A kid naming one key does not let the other key sign.
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, valid)
	tok.Header["kid"] = rotated.KeyIDs()[0]
	forged, err := tok.SignedString(otherSecret)
	require.NoError(t, err)
	_, err = rotated.Verify(forged)
	require.ErrorIs(t, err, ErrInvalidToken)
}

func TestPreviousSecretChecks(t *testing.T) {
	_, err := NewSigner(testSecret, time.Hour, WithPreviousSecret([]byte("short")))
	require.ErrorContains(t, err, "previous token secret")
	_, err = NewSigner(testSecret, time.Hour, WithPreviousSecret(otherSecret), WithPreviousSecret(thirdSecret))
	require.Error(t, err)
	s, err := NewSigner(testSecret, time.Hour, WithPreviousSecret(testSecret))
	require.NoError(t, err)
	require.Len(t, s.KeyIDs(), 1, "the same key twice is one key")
	s, err = NewSigner(testSecret, time.Hour, WithPreviousSecret(nil))
	require.NoError(t, err)
	require.Len(t, s.KeyIDs(), 1)
}

// Finding 13: the claims must be ids of the right shape, even under a good
// signature.
func TestVerifyChecksIDPatterns(t *testing.T) {
	clk := &clock{t: epoch}
	s := mustSigner(t, testSecret, clk)
	exp := epoch.Add(time.Hour).Unix()
	cases := []struct {
		name     string
		sub, did string
		gen      any
		ok       bool
	}{
		{"valid", "alice", "phone-1", nil, true},
		{"valid generation", "alice", "phone-1", 3, true},
		{"path and NUL in sub", "../../x\x00y", "d1", nil, false},
		{"upper-case sub", "Alice", "d1", nil, false},
		{"sub too long", strings.Repeat("a", 33), "d1", nil, false},
		{"colon in sub", "a:b", "d1", nil, false},
		{"space in did", "alice", "my phone", nil, false},
		{"did too long", "alice", strings.Repeat("d", 65), nil, false},
		{"NUL in did", "alice", "d\x00", nil, false},
		{"negative generation", "alice", "d1", -1, false},
		{"generation not a number", "alice", "d1", "1", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims := jwt.MapClaims{"sub": c.sub, "did": c.did, "exp": exp}
			if c.gen != nil {
				claims["gen"] = c.gen
			}
			_, err := s.Verify(signRaw(t, jwt.SigningMethodHS256, claims, testSecret))
			if c.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidToken)
		})
	}
	_, err := s.Issue("../x", "d1")
	require.Error(t, err, "nor does Issue sign such ids")
	_, err = s.Issue("alice", "my phone")
	require.Error(t, err)
	_, err = s.IssueGeneration("alice", "d1", -1)
	require.Error(t, err)
}

func TestGenerationClaim(t *testing.T) {
	s := mustSigner(t, testSecret, &clock{t: epoch})
	tok, err := s.IssueGeneration("u1", "d1", 7)
	require.NoError(t, err)
	c, err := s.Verify(tok)
	require.NoError(t, err)
	require.EqualValues(t, 7, c.Generation)
	var payload map[string]any
	require.NoError(t, json.Unmarshal(mustDecode(t, strings.Split(mustIssue(t, s), ".")[1]), &payload))
	require.NotContains(t, payload, "gen", "generation 0 is left out")
}
