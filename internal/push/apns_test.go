package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/push/pushtest"
)

const (
	testAPNsKeyID  = "KEY1234567"
	testAPNsTeamID = "TEAM123456"
	testAPNsTopic  = "chat.parley.app"
	testAPNsToken  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var testAPNsStart = time.Unix(1_900_000_000, 0)

// apnsClock is the provider's injected clock.
type apnsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *apnsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *apnsClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// apnsRequest is what the stand-in saw of one request.
type apnsRequest struct {
	protoMajor int
	method     string
	path       string
	header     http.Header
	body       []byte
}

func (r apnsRequest) bearer(t *testing.T) string {
	t.Helper()
	auth := r.header.Get("authorization")
	tok, ok := strings.CutPrefix(auth, "bearer ")
	require.True(t, ok, "authorization %q is not a bearer token", auth)
	return tok
}

// apnsAnswer is how the stand-in answers; the zero value is 200.
type apnsAnswer struct {
	status     int
	reason     string
	retryAfter string
}

// apnsStandIn is an HTTP/2 server on loopback playing APNs.
type apnsStandIn struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []apnsRequest
	answer apnsAnswer
}

func newAPNsStandIn(t *testing.T) *apnsStandIn {
	t.Helper()
	s := &apnsStandIn{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *apnsStandIn) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	s.mu.Lock()
	s.seen = append(s.seen, apnsRequest{r.ProtoMajor, r.Method, r.URL.Path, r.Header.Clone(), body})
	a := s.answer
	s.mu.Unlock()
	if a.status == 0 || a.status == http.StatusOK {
		w.Header().Set("apns-id", r.Header.Get("apns-id"))
		w.WriteHeader(http.StatusOK)
		return
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(a.status)
	if a.reason != "" {
		_ = json.NewEncoder(w).Encode(map[string]any{"reason": a.reason, "timestamp": 1_900_000_000_000})
	}
}

func (s *apnsStandIn) setAnswer(a apnsAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = a
}

func (s *apnsStandIn) requests() []apnsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]apnsRequest(nil), s.seen...)
}

func (s *apnsStandIn) last(t *testing.T) apnsRequest {
	t.Helper()
	seen := s.requests()
	require.NotEmpty(t, seen, "the stand-in saw no request")
	return seen[len(seen)-1]
}

func mustAPNsECKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	require.NoError(t, err)
	return key
}

func mustAPNsPKCS8(t *testing.T, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return der
}

func testAPNsConfig(keyFile, endpoint string) config.APNs {
	return config.APNs{KeyFile: keyFile, KeyID: testAPNsKeyID, TeamID: testAPNsTeamID, Topic: testAPNsTopic, Endpoint: endpoint}
}

type apnsFixture struct {
	p     *APNsProvider
	s     *apnsStandIn
	key   *ecdsa.PrivateKey
	clock *apnsClock
}

func newAPNsFixture(t *testing.T) apnsFixture {
	t.Helper()
	keyFile, key := pushtest.WriteAPNsKey(t)
	s := newAPNsStandIn(t)
	p, err := NewAPNs(testAPNsConfig(keyFile, s.srv.URL+"/"), s.srv.Client())
	require.NoError(t, err)
	clock := &apnsClock{t: testAPNsStart}
	p.now = clock.Now
	return apnsFixture{p: p, s: s, key: key, clock: clock}
}

func (f apnsFixture) send(t *testing.T, n Notification) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.p.Send(ctx, Target{Provider: APNs, Token: testAPNsToken}, n)
}

// verifyAPNsJWT checks the bearer token against pub with the test's kid and
// iss (pushtest.VerifyAPNsJWT), and returns its iat.
func verifyAPNsJWT(t *testing.T, pub *ecdsa.PublicKey, tok string, now func() time.Time) time.Time {
	t.Helper()
	iat, err := pushtest.VerifyAPNsJWT(tok, pub, testAPNsKeyID, testAPNsTeamID, now)
	require.NoError(t, err)
	return iat
}

// apnsWireBody is the JSON body as the test expects it, field for field.
type apnsWireBody struct {
	Aps struct {
		Alert struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"alert"`
		Badge    int64  `json:"badge"`
		Sound    string `json:"sound"`
		ThreadID string `json:"thread-id"`
	} `json:"aps"`
	Conversation string `json:"conversation"`
	MessageID    string `json:"messageId"`
	From         string `json:"from"`
	Count        int    `json:"count"`
	ID           string `json:"id"`
}

func decodeAPNsBody(t *testing.T, raw []byte) apnsWireBody {
	t.Helper()
	var b apnsWireBody
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&b), "body %s", raw)
	return b
}

var apnsUUIDShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestAPNsSendWellFormed(t *testing.T) {
	long := strings.Repeat("g", 70) + "-conversation"
	cases := []struct {
		name         string
		n            Notification
		wantBody     string
		wantCollapse string
	}{
		{"with preview",
			Notification{ID: "u1:d1:1234567890123", Conversation: "g:team", MessageID: 1234567890123,
				From: "alice", Preview: "lunch?", Count: 3, Unread: 7},
			"lunch?", "g:team"},
		{"no preview",
			Notification{ID: "u1:d1:42", Conversation: "d:alice:bob", MessageID: 42, From: "bob", Count: 1, Unread: 1},
			apnsNoPreview, "d:alice:bob"},
		{"long conversation",
			Notification{ID: "u1:d1:43", Conversation: long, MessageID: 43, From: "carol", Count: 1},
			apnsNoPreview, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAPNsFixture(t)
			require.NoError(t, f.send(t, tc.n))
			r := f.s.last(t)

			require.Equal(t, 2, r.protoMajor)
			require.Equal(t, http.MethodPost, r.method)
			require.Equal(t, "/3/device/"+testAPNsToken, r.path)
			require.Equal(t, testAPNsTopic, r.header.Get("apns-topic"))
			require.Equal(t, "alert", r.header.Get("apns-push-type"))
			require.Equal(t, "10", r.header.Get("apns-priority"))
			require.Equal(t, strconv.FormatInt(testAPNsStart.Add(24*time.Hour).Unix(), 10), r.header.Get("apns-expiration"))
			require.Regexp(t, apnsUUIDShape, r.header.Get("apns-id"))
			collapse := r.header.Get("apns-collapse-id")
			require.NotEmpty(t, collapse)
			require.LessOrEqual(t, len(collapse), 64)
			if tc.wantCollapse != "" {
				require.Equal(t, tc.wantCollapse, collapse)
			} else {
				require.NotEqual(t, tc.n.Conversation[:64], collapse, "a long conversation is hashed, not cut")
			}

			iat := verifyAPNsJWT(t, &f.key.PublicKey, r.bearer(t), f.clock.Now)
			require.True(t, iat.Equal(testAPNsStart), "iat %v", iat)
			other := mustAPNsECKey(t, elliptic.P256())
			_, err := jwt.Parse(r.bearer(t), func(*jwt.Token) (any, error) { return &other.PublicKey, nil })
			require.Error(t, err, "the JWT verifies against a key that did not sign it")

			b := decodeAPNsBody(t, r.body)
			require.Equal(t, tc.n.From, b.Aps.Alert.Title)
			require.Equal(t, tc.wantBody, b.Aps.Alert.Body)
			require.Equal(t, tc.n.Unread, b.Aps.Badge)
			require.Equal(t, "default", b.Aps.Sound)
			require.Equal(t, tc.n.Conversation, b.Aps.ThreadID)
			require.Equal(t, tc.n.Conversation, b.Conversation)
			require.Equal(t, strconv.FormatInt(tc.n.MessageID, 10), b.MessageID)
			require.Equal(t, tc.n.From, b.From)
			require.Equal(t, tc.n.Count, b.Count)
			require.Equal(t, tc.n.ID, b.ID)
		})
	}
}

func TestAPNsIDsStable(t *testing.T) {
	f := newAPNsFixture(t)
	longA := strings.Repeat("x", 64) + "-a"
	longB := strings.Repeat("x", 64) + "-b"
	sends := []Notification{
		{ID: "u1:d1:1", Conversation: longA},
		{ID: "u1:d1:1", Conversation: longA},
		{ID: "u1:d1:2", Conversation: longB},
	}
	for _, n := range sends {
		require.NoError(t, f.send(t, n))
	}
	seen := f.s.requests()
	require.Len(t, seen, 3)
	id := func(i int) string { return seen[i].header.Get("apns-id") }
	collapse := func(i int) string { return seen[i].header.Get("apns-collapse-id") }
	require.Equal(t, id(0), id(1), "a retry carries the same apns-id")
	require.NotEqual(t, id(0), id(2))
	require.Equal(t, collapse(0), collapse(1))
	require.NotEqual(t, collapse(0), collapse(2), "long conversations that share 64 bytes collapse apart")
}

func TestAPNsJWTReusedThenReminted(t *testing.T) {
	f := newAPNsFixture(t)
	n := Notification{ID: "u1:d1:1", Conversation: "g:team", From: "alice", Count: 1}
	steps := []time.Duration{0, 20 * time.Minute, 29*time.Minute + 59*time.Second, 2 * time.Second, 10 * time.Minute}
	for _, d := range steps {
		f.clock.advance(d)
		require.NoError(t, f.send(t, n))
	}
	seen := f.s.requests()
	require.Len(t, seen, len(steps))
	var tokens []string
	for _, r := range seen {
		tokens = append(tokens, r.bearer(t))
	}
	require.Equal(t, tokens[0], tokens[1], "reused at 20m")
	require.Equal(t, tokens[0], tokens[2], "reused at 49m59s")
	require.NotEqual(t, tokens[0], tokens[3], "re-minted at 50m01s")
	require.Equal(t, tokens[3], tokens[4], "the new one is reused")
	require.Len(t, distinctAPNs(tokens), 2)

	iat := verifyAPNsJWT(t, &f.key.PublicKey, tokens[3], f.clock.Now)
	require.True(t, iat.Equal(testAPNsStart.Add(50*time.Minute+time.Second)), "iat %v", iat)
}

func TestAPNsJWTSharedByConcurrentSends(t *testing.T) {
	f := newAPNsFixture(t)
	const senders = 8
	errs := make(chan error, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- f.p.Send(ctx, Target{Provider: APNs, Token: testAPNsToken}, Notification{ID: strconv.Itoa(i)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var tokens []string
	for _, r := range f.s.requests() {
		tokens = append(tokens, r.bearer(t))
	}
	require.Len(t, tokens, senders)
	require.Len(t, distinctAPNs(tokens), 1)
}

func TestAPNsErrors(t *testing.T) {
	cases := []struct {
		name   string
		answer apnsAnswer
		kind   Kind
		reason string
		after  time.Duration
	}{
		{"unregistered", apnsAnswer{status: 410, reason: "Unregistered"}, Gone, "Unregistered", 0},
		{"bad device token", apnsAnswer{status: 400, reason: "BadDeviceToken"}, Gone, "BadDeviceToken", 0},
		{"token not for topic", apnsAnswer{status: 400, reason: "DeviceTokenNotForTopic"}, Gone, "DeviceTokenNotForTopic", 0},
		{"other 400", apnsAnswer{status: 400, reason: "BadCollapseId"}, Drop, "BadCollapseId", 0},
		{"bad path", apnsAnswer{status: 404, reason: "BadPath"}, Drop, "BadPath", 0},
		{"payload too large", apnsAnswer{status: 413, reason: "PayloadTooLarge"}, Drop, "PayloadTooLarge", 0},
		{"other 403", apnsAnswer{status: 403, reason: "BadCertificateEnvironment"}, Drop, "BadCertificateEnvironment", 0},
		{"expired provider token", apnsAnswer{status: 403, reason: "ExpiredProviderToken"}, Retry, "ExpiredProviderToken", 0},
		{"invalid provider token", apnsAnswer{status: 403, reason: "InvalidProviderToken"}, Retry, "InvalidProviderToken", 0},
		{"too many requests", apnsAnswer{status: 429, reason: "TooManyRequests", retryAfter: "120"}, Retry, "TooManyRequests", 120 * time.Second},
		{"unavailable", apnsAnswer{status: 503, reason: "ServiceUnavailable"}, Retry, "ServiceUnavailable", 0},
		{"500 with no body", apnsAnswer{status: 500}, Retry, "Internal Server Error", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newAPNsFixture(t)
			f.s.setAnswer(tc.answer)
			err := f.send(t, Notification{ID: "u1:d1:1", Conversation: "g:team"})
			var e *Error
			require.True(t, errors.As(err, &e), "error %v is not an *Error", err)
			require.Equal(t, tc.kind, e.Kind)
			require.Equal(t, tc.answer.status, e.Status)
			require.Equal(t, tc.reason, e.Reason)
			require.Equal(t, tc.after, e.RetryAfter)
			kind, after := KindOf(err)
			require.Equal(t, tc.kind, kind)
			require.Equal(t, tc.after, after)
		})
	}
}

func TestAPNsRefusedJWTReminted(t *testing.T) {
	for _, reason := range []string{"ExpiredProviderToken", "InvalidProviderToken"} {
		t.Run(reason, func(t *testing.T) {
			f := newAPNsFixture(t)
			n := Notification{ID: "u1:d1:1", Conversation: "g:team"}

			f.s.setAnswer(apnsAnswer{status: 403, reason: reason})
			kind, _ := KindOf(f.send(t, n))
			require.Equal(t, Retry, kind)

			f.clock.advance(time.Minute)
			f.s.setAnswer(apnsAnswer{})
			require.NoError(t, f.send(t, n))

			f.s.setAnswer(apnsAnswer{status: 410, reason: "Unregistered"})
			kind, _ = KindOf(f.send(t, n))
			require.Equal(t, Gone, kind)

			f.s.setAnswer(apnsAnswer{})
			require.NoError(t, f.send(t, n))

			seen := f.s.requests()
			require.Len(t, seen, 4)
			refused, fresh := seen[0].bearer(t), seen[1].bearer(t)
			require.NotEqual(t, refused, fresh, "the send after a refused JWT carries a new one")
			iat := verifyAPNsJWT(t, &f.key.PublicKey, fresh, f.clock.Now)
			require.True(t, iat.Equal(testAPNsStart.Add(time.Minute)), "iat %v", iat)
			require.Equal(t, fresh, seen[2].bearer(t))
			require.Equal(t, fresh, seen[3].bearer(t), "a device error keeps the JWT")
		})
	}
}

func TestNewAPNsKey(t *testing.T) {
	p256 := mustAPNsECKey(t, elliptic.P256())
	sec1, err := x509.MarshalECPrivateKey(p256)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pemFile := func(t *testing.T, typ string, der []byte) string { return pushtest.WritePEM(t, "key.p8", typ, der) }
	cases := []struct {
		name string
		file func(t *testing.T) string
		cfg  func(c *config.APNs)
		ok   bool
	}{
		{"P-256 PKCS#8", func(t *testing.T) string { return pemFile(t, "PRIVATE KEY", mustAPNsPKCS8(t, p256)) }, nil, true},
		{"P-384 PKCS#8", func(t *testing.T) string {
			return pemFile(t, "PRIVATE KEY", mustAPNsPKCS8(t, mustAPNsECKey(t, elliptic.P384())))
		}, nil, false},
		{"Ed25519 PKCS#8", func(t *testing.T) string { return pemFile(t, "PRIVATE KEY", mustAPNsPKCS8(t, edKey)) }, nil, false},
		{"P-256 SEC1", func(t *testing.T) string { return pemFile(t, "EC PRIVATE KEY", sec1) }, nil, false},
		{"PKCS#8 type, garbage inside", func(t *testing.T) string { return pemFile(t, "PRIVATE KEY", []byte("nope")) }, nil, false},
		{"not PEM", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "key.p8")
			require.NoError(t, os.WriteFile(path, mustAPNsPKCS8(t, p256), 0o600))
			return path
		}, nil, false},
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.p8") }, nil, false},
		{"no key id", func(t *testing.T) string { return pemFile(t, "PRIVATE KEY", mustAPNsPKCS8(t, p256)) },
			func(c *config.APNs) { c.KeyID = "" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testAPNsConfig(tc.file(t), "https://api.sandbox.push.apple.com")
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			p, err := NewAPNs(cfg, &http.Client{})
			if tc.ok {
				require.NoError(t, err)
				require.NotNil(t, p)
			} else {
				require.Error(t, err)
				require.Nil(t, p)
			}
		})
	}
}

func TestAPNsCheck(t *testing.T) {
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"64 lower hex", testAPNsToken, true},
		{"64 upper hex", strings.ToUpper(testAPNsToken), true},
		{"200 hex", strings.Repeat("ab", 100), true},
		{"empty", "", false},
		{"62 hex", testAPNsToken[:62], false},
		{"202 hex", strings.Repeat("ab", 101), false},
		{"odd length", testAPNsToken + "a", false},
		{"non-hex letter", "g" + testAPNsToken[1:], false},
		{"space", " " + testAPNsToken[1:], false},
		{"path", "../../" + testAPNsToken[6:], false},
	}
	f := newAPNsFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := f.p.Check(tc.token)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestAPNsSendRefusesBadToken(t *testing.T) {
	f := newAPNsFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := f.p.Send(ctx, Target{Provider: APNs, Token: "not-a-token"}, Notification{ID: "u1:d1:1"})
	kind, _ := KindOf(err)
	require.Equal(t, Gone, kind)
	require.Empty(t, f.s.requests(), "a bad token reached the service")
}

func distinctAPNs(xs []string) map[string]bool {
	set := make(map[string]bool, len(xs))
	for _, x := range xs {
		set[x] = true
	}
	return set
}
