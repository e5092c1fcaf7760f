package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Finding 8: DELETE /v1/sessions/current logs the device out: its tokens stop
// working, the user's other devices stay in, and a new login works.
func TestLogout(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "alice", "Alice")
	phone, _ := e.mustLogin(t, "alice", "phone")
	phone2, _ := e.mustLogin(t, "alice", "phone") // a second session of the same device
	laptop, _ := e.mustLogin(t, "alice", "laptop")

	status, _, body := e.call(t, "GET", "/v1/users/alice", phone, "")
	require.Equal(t, http.StatusOK, status, string(body))
	status, _, body = e.call(t, "DELETE", "/v1/sessions/current", "", "")
	requireError(t, status, body, http.StatusUnauthorized, "unauthorized")

	status, _, body = e.call(t, "DELETE", "/v1/sessions/current", phone, "")
	require.Equal(t, http.StatusNoContent, status, string(body))
	for _, tok := range []string{phone, phone2} {
		status, hdr, body := e.call(t, "GET", "/v1/users/alice", tok, "")
		requireError(t, status, body, http.StatusUnauthorized, "unauthorized")
		require.Equal(t, "Bearer", hdr.Get("WWW-Authenticate"))
	}
	status, _, body = e.call(t, "DELETE", "/v1/sessions/current", phone, "")
	requireError(t, status, body, http.StatusUnauthorized, "unauthorized")
	status, _, body = e.call(t, "GET", "/v1/users/alice", laptop, "")
	require.Equal(t, http.StatusOK, status, "other devices stay in: %s", body)

	again, _ := e.mustLogin(t, "alice", "phone")
	status, _, body = e.call(t, "GET", "/v1/users/alice", again, "")
	require.Equal(t, http.StatusOK, status, "a new login of the device works: %s", body)

	status, hdr, _ := e.call(t, "GET", "/v1/sessions/current", again, "")
	require.Equal(t, http.StatusMethodNotAllowed, status)
	require.Equal(t, "DELETE", hdr.Get("Allow"))
}

// Finding 13: a correctly signed token whose claims are no ids is refused.
func TestTokenClaimsAreIDs(t *testing.T) {
	e := mustStart(t, nil)
	e.mustUser(t, "alice", "Alice")
	exp := time.Now().Add(time.Hour).Unix()
	for name, claims := range map[string]jwt.MapClaims{
		"NUL and path in sub": {"sub": "../../x\x00y", "did": "d1", "exp": exp},
		"space in did":        {"sub": "alice", "did": "evil device", "exp": exp},
	} {
		t.Run(name, func(t *testing.T) {
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(e.secret)
			require.NoError(t, err)
			status, _, body := e.call(t, "GET", "/v1/users/alice", tok, "")
			requireError(t, status, body, http.StatusUnauthorized, "unauthorized")
		})
	}
}
