package pushtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

var b64 = base64.RawURLEncoding.EncodeToString

// A push that webpush-go encrypted to a browser's subscription opens with the
// browser's keys, and with no others.
func TestDecryptWebPush(t *testing.T) {
	var body []byte
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	priv, pub, err := webpush.GenerateVAPIDKeys()
	require.NoError(t, err)
	b := NewBrowser(t)
	var sub webpush.Subscription
	sub.Endpoint = srv.URL + "/push/1"
	sub.Keys.P256dh, sub.Keys.Auth = b64(b.Key.PublicKey().Bytes()), b64(b.Auth)
	msg := []byte(`{"hello":"browser","text":"` + string(bytes.Repeat([]byte("x"), 1000)) + `"}`)
	resp, err := webpush.SendNotification(msg, &sub, &webpush.Options{HTTPClient: srv.Client(), Subscriber: "ops@parley.test",
		TTL: 60, VAPIDPublicKey: pub, VAPIDPrivateKey: priv})
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	plain, err := b.Decrypt(body)
	require.NoError(t, err)
	require.Equal(t, msg, plain)
	_, err = DecryptWebPush(body, NewBrowser(t).Key, b.Auth)
	require.Error(t, err, "another browser's key")
	_, err = DecryptWebPush(body, b.Key, make([]byte, 16))
	require.Error(t, err, "another auth secret")
	tampered := bytes.Clone(body)
	tampered[len(tampered)/2] ^= 1
	_, err = b.Decrypt(tampered)
	require.Error(t, err, "a tampered body")
	_, err = b.Decrypt(body[:20])
	require.Error(t, err, "a short header")
}

// The VAPID check refuses a forged signature and an expired token.
func TestVerifyVAPID(t *testing.T) {
	_, pub, err := webpush.GenerateVAPIDKeys()
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	claims := jwt.MapClaims{"aud": "https://127.0.0.1", "sub": "mailto:ops@parley.test",
		"exp": time.Now().Add(time.Hour).Unix()}
	forged, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(other)
	require.NoError(t, err)
	require.Error(t, VerifyVAPID("vapid t="+forged+", k="+pub, pub, "https://127.0.0.1", "mailto:ops@parley.test"))

	otherPub, err := other.PublicKey.Bytes()
	require.NoError(t, err)
	require.NoError(t, VerifyVAPID("vapid t="+forged+", k="+b64(otherPub), b64(otherPub), "https://127.0.0.1", "mailto:ops@parley.test"))
	claims["exp"] = time.Now().Add(-time.Minute).Unix()
	expired, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(other)
	require.NoError(t, err)
	require.Error(t, VerifyVAPID("vapid t="+expired+", k="+b64(otherPub), b64(otherPub), "https://127.0.0.1", "mailto:ops@parley.test"))
	claims["exp"] = time.Now().Add(48 * time.Hour).Unix()
	far, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(other)
	require.NoError(t, err)
	require.Error(t, VerifyVAPID("vapid t="+far+", k="+b64(otherPub), b64(otherPub), "https://127.0.0.1", "mailto:ops@parley.test"))
}

// The APNs check takes a provider token of the key, kid and team, and refuses
// any that differs in one of them.
func TestVerifyAPNsJWT(t *testing.T) {
	path, key := WriteAPNsKey(t)
	_, err := os.Stat(path)
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now().Truncate(time.Second)
	mint := func(key *ecdsa.PrivateKey, kid, iss string, iat time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{Issuer: iss, IssuedAt: jwt.NewNumericDate(iat)})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	iat, err := VerifyAPNsJWT(mint(key, "KID", "TEAM", now), &key.PublicKey, "KID", "TEAM", nil)
	require.NoError(t, err)
	require.True(t, iat.Equal(now))
	for name, tok := range map[string]string{
		"another key":  mint(other, "KID", "TEAM", now),
		"another kid":  mint(key, "KID2", "TEAM", now),
		"another team": mint(key, "KID", "TEAM2", now),
		"issued later": mint(key, "KID", "TEAM", now.Add(time.Hour)),
		"not a JWT":    "abc",
		"HS256":        func() string { s, _ := jwt.New(jwt.SigningMethodHS256).SignedString([]byte("k")); return s }(),
	} {
		_, err := VerifyAPNsJWT(tok, &key.PublicKey, "KID", "TEAM", nil)
		require.Error(t, err, name)
	}
	noIat := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{Issuer: "TEAM"})
	noIat.Header["kid"] = "KID"
	s, err := noIat.SignedString(key)
	require.NoError(t, err)
	_, err = VerifyAPNsJWT(s, &key.PublicKey, "KID", "TEAM", nil)
	require.Error(t, err, "no iat")
}

// Google's own client library gets the access token for the key file
// WriteServiceAccount wrote; an assertion signed by another key gets none.
func TestTokenServer(t *testing.T) {
	ts := StartTokenServer(t, &ServiceAccountKey(t).PublicKey)
	path, _ := WriteServiceAccount(t, "p", ts.TokenURL)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, ts.Client())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	jc, err := google.JWTConfigFromJSON(raw, FCMScope)
	require.NoError(t, err)
	tok, err := jc.TokenSource(ctx).Token()
	require.NoError(t, err)
	require.Equal(t, AccessToken, tok.AccessToken)
	require.Equal(t, 1, ts.Hits())

	ts.SetFailing(true)
	_, err = jc.TokenSource(ctx).Token()
	require.Error(t, err)
	ts.SetFailing(false)

	wrongKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	var mu sync.Mutex
	var refusals []string
	h := &TokenHandler{Key: &wrongKey.PublicKey, Errorf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		refusals = append(refusals, fmt.Sprintf(format, args...))
	}}
	other := httptest.NewTLSServer(h)
	defer other.Close()
	h.TokenURL = other.URL + TokenPath
	jc.TokenURL = h.TokenURL
	_, err = jc.TokenSource(context.WithValue(t.Context(), oauth2.HTTPClient, other.Client())).Token()
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, refusals, 1)
	require.Contains(t, refusals[0], "verification error")
}
