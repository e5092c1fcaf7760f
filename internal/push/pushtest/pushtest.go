// Package pushtest holds what tests need to stand in for the far ends of the push
// providers and check the requests a node makes of them: an OAuth 2.0 token
// endpoint that verifies a service account's JWT assertion (FCM), the
// verification of an APNs provider token, and a browser's side of a Web Push
// subscription (its keys, the RFC 8291 decryption of a push, the VAPID check).
// The unit tests of internal/push and the acceptance tests in e2e share it.
//
// It does not import internal/push (whose own tests import it), so it speaks in
// bytes, headers and keys.
package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The service account WriteServiceAccount writes, and what the token server
// issues to it.
const (
	ServiceAccountEmail = "push@parley-test.iam.gserviceaccount.com"
	ServiceAccountKeyID = "key-1"
	// AccessToken is the OAuth 2.0 access token the token server issues.
	AccessToken = "tok-1"
	// FCMScope is the scope the assertion must ask for.
	FCMScope = "https://www.googleapis.com/auth/firebase.messaging"
	// TokenPath is the token server's path.
	TokenPath = "/token"
)

// serviceAccountKey is made once per process: RSA key generation is slow.
var serviceAccountKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// ServiceAccountKey is the service account's RSA key (2048 bits), the same for
// every test of the process.
func ServiceAccountKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := serviceAccountKey()
	if err != nil {
		t.Fatalf("pushtest: generating the service account's key: %v", err)
	}
	return key
}

// WriteServiceAccount writes a Firebase service account's JSON key (the private
// key of ServiceAccountKey, ServiceAccountEmail, ServiceAccountKeyID, tokenURL as
// its token_uri) into a temporary directory of t, and returns its path and the
// key. project "" leaves project_id out.
func WriteServiceAccount(t testing.TB, project, tokenURL string) (string, *rsa.PrivateKey) {
	t.Helper()
	key := ServiceAccountKey(t)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("pushtest: encoding the service account's key: %v", err)
	}
	sa := map[string]string{
		"type":           "service_account",
		"private_key_id": ServiceAccountKeyID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   ServiceAccountEmail,
		"client_id":      "1234567890",
		"token_uri":      tokenURL,
	}
	if project != "" {
		sa["project_id"] = project
	}
	raw, err := json.Marshal(sa)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// TokenHandler stands in for Google's OAuth 2.0 token endpoint: it answers a
// POST to TokenPath whose JWT-bearer assertion verifies (see VerifyAssertion)
// with AccessToken, and anything else with 400 invalid_grant, after telling
// Errorf. It counts the requests it gets. It is safe for concurrent use.
type TokenHandler struct {
	Key      *rsa.PublicKey // the service account's public key
	TokenURL string         // the assertion's audience (the key file's token_uri)
	// Errorf, if set, is told why a request was refused (a test's t.Errorf).
	Errorf func(format string, args ...any)

	hits atomic.Int32
	fail atomic.Bool
}

// ServeHTTP answers one token request.
func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.hits.Add(1)
	if h.fail.Load() {
		http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
		return
	}
	if err := VerifyAssertion(r, h.Key, h.TokenURL); err != nil {
		if h.Errorf != nil {
			h.Errorf("token request: %v", err)
		}
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"`+AccessToken+`","token_type":"Bearer","expires_in":3600}`)
}

// Hits is how many requests the handler got.
func (h *TokenHandler) Hits() int { return int(h.hits.Load()) }

// SetFailing makes the handler answer 500 to every request (true) or not.
func (h *TokenHandler) SetFailing(fail bool) { h.fail.Store(fail) }

// VerifyAssertion checks an OAuth 2.0 token request of a service account: a
// POST to TokenPath, grant type jwt-bearer, and an assertion that is an RS256
// JWT signed by pub, with kid ServiceAccountKeyID, issued by
// ServiceAccountEmail for audience tokenURL, with exp and iat, and scope FCMScope.
func VerifyAssertion(r *http.Request, pub *rsa.PublicKey, tokenURL string) error {
	if r.Method != http.MethodPost || r.URL.Path != TokenPath {
		return errors.New("not POST " + TokenPath + ": " + r.Method + " " + r.URL.Path)
	}
	if err := r.ParseForm(); err != nil {
		return err
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		return errors.New("grant_type " + g)
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims,
		func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(ServiceAccountEmail),
		jwt.WithAudience(tokenURL), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		return err
	}
	if kid := tok.Header["kid"]; kid != ServiceAccountKeyID {
		return fmt.Errorf("kid is %v, not %s", kid, ServiceAccountKeyID)
	}
	if scope, _ := claims["scope"].(string); scope != FCMScope {
		return errors.New("scope " + scope)
	}
	return nil
}

// TokenServer is a TokenHandler on a loopback TLS server (httptest's
// certificate).
type TokenServer struct {
	*httptest.Server
	*TokenHandler
}

// StartTokenServer starts a token server verifying assertions against pub; a
// refused request fails t. It is closed when t ends.
func StartTokenServer(t testing.TB, pub *rsa.PublicKey) *TokenServer {
	t.Helper()
	h := &TokenHandler{Key: pub, Errorf: t.Errorf}
	srv := httptest.NewTLSServer(h)
	h.TokenURL = srv.URL + TokenPath
	t.Cleanup(srv.Close)
	return &TokenServer{Server: srv, TokenHandler: h}
}

// WritePEM writes one PEM block of type typ into a file called name in a
// temporary directory of t, and returns its path.
func WritePEM(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteAPNsKey writes a new APNs token signing key, as Apple issues them (a .p8:
// PEM "PRIVATE KEY", PKCS#8, EC P-256), and returns its path and the key.
func WriteAPNsKey(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return WritePEM(t, "key.p8", "PRIVATE KEY", der), key
}

// VerifyAPNsJWT checks an APNs provider token (the authorization header's
// bearer, without "bearer "): an ES256 JWT signed by pub, with kid keyID, iss
// teamID and an iat not after now (nil: time.Now); it returns the iat.
func VerifyAPNsJWT(token string, pub *ecdsa.PublicKey, keyID, teamID string, now func() time.Time) (time.Time, error) {
	if now == nil {
		now = time.Now
	}
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(teamID), jwt.WithIssuedAt(), jwt.WithTimeFunc(now))
	switch {
	case err != nil:
		return time.Time{}, err
	case !parsed.Valid:
		return time.Time{}, errors.New("the token is not valid")
	case parsed.Header["alg"] != "ES256":
		return time.Time{}, fmt.Errorf("alg is %v, not ES256", parsed.Header["alg"])
	case parsed.Header["kid"] != keyID:
		return time.Time{}, fmt.Errorf("kid is %v, not %s", parsed.Header["kid"], keyID)
	case claims.Issuer != teamID:
		return time.Time{}, fmt.Errorf("iss is %q, not %s", claims.Issuer, teamID)
	case claims.IssuedAt == nil:
		return time.Time{}, errors.New("no iat")
	}
	return claims.IssuedAt.Time, nil
}

// Browser is the user agent's side of a Web Push subscription: its ECDH key and
// its auth secret.
type Browser struct {
	Key  *ecdh.PrivateKey
	Auth []byte // 16 bytes
}

// NewBrowser makes a browser with fresh keys.
func NewBrowser(t testing.TB) Browser {
	t.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return Browser{Key: key, Auth: auth}
}

// Subscription is the browser's PushSubscription.toJSON() for endpoint.
func (b Browser) Subscription(endpoint string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return SubscriptionJSON(endpoint, enc(b.Key.PublicKey().Bytes()), enc(b.Auth))
}

// Decrypt opens a push message sent to the browser's subscription.
func (b Browser) Decrypt(body []byte) ([]byte, error) { return DecryptWebPush(body, b.Key, b.Auth) }

// SubscriptionJSON is a PushSubscription.toJSON() with the keys as given.
func SubscriptionJSON(endpoint, p256dh, auth string) string {
	j, _ := json.Marshal(map[string]any{"endpoint": endpoint, "expirationTime": nil,
		"keys": map[string]string{"p256dh": p256dh, "auth": auth}})
	return string(j)
}

// DecryptWebPush opens a push message body as the user agent does: RFC 8291
// over the aes128gcm content coding of RFC 8188, with the user agent's private
// key and auth secret. It refuses a header other than RFC 8291's (a 65-byte
// key id), a record that does not open, and a missing padding delimiter.
func DecryptWebPush(body []byte, uaPrivate *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) <= 21+idlen || rs < 18 {
		return nil, fmt.Errorf("bad header: rs %d, idlen %d, %d bytes", rs, idlen, len(body))
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("keyid: %w", err)
	}
	secret, err := uaPrivate.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(uaPrivate.PublicKey().Bytes()) + string(asPub.Bytes())
	ikm, err := hkdf.Key(sha256.New, secret, authSecret, info, 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var plain []byte
	rest := body[21+idlen:]
	for seq := uint64(0); len(rest) > 0; seq++ {
		rec := rest[:min(int(rs), len(rest))]
		rest = rest[len(rec):]
		iv := bytes.Clone(nonce)
		for i := range 8 {
			iv[4+i] ^= byte(seq >> (56 - 8*i))
		}
		p, err := gcm.Open(nil, iv, rec, nil)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
		p = bytes.TrimRight(p, "\x00")
		delim := byte(1)
		if len(rest) == 0 {
			delim = 2
		}
		if len(p) == 0 || p[len(p)-1] != delim {
			return nil, fmt.Errorf("record %d: no padding delimiter %d", seq, delim)
		}
		plain = append(plain, p[:len(p)-1]...)
	}
	return plain, nil
}

// VerifyVAPID checks a push request's Authorization header "vapid t=<jwt>,
// k=<key>" (RFC 8292): k is vapidPub, and the JWT is ES256-signed by it for
// audience aud (the endpoint's origin) and subject sub, expiring within 24h.
func VerifyVAPID(header, vapidPub, aud, sub string) error {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return fmt.Errorf("not a vapid header: %q", header)
	}
	params := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("bad parameter %q", part)
		}
		params[k] = v
	}
	if params["k"] != vapidPub {
		return fmt.Errorf("k = %q, want %q", params["k"], vapidPub)
	}
	kb, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return err
	}
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), kb)
	if err != nil {
		return err
	}
	tok, err := jwt.Parse(params["t"], func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(aud), jwt.WithSubject(sub),
		jwt.WithExpirationRequired())
	if err != nil {
		return err
	}
	exp, err := tok.Claims.GetExpirationTime()
	if err != nil {
		return err
	}
	if exp.After(time.Now().Add(24 * time.Hour)) {
		return fmt.Errorf("exp %s is more than 24h away", exp)
	}
	return nil
}
