package e2e

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/push"
	"github.com/parleychat/parley/internal/push/pushtest"
	"github.com/parleychat/parley/internal/testenv"
)

// standIn is a provider's endpoint on loopback TLS: it records every request and
// answers with status (200 until it is changed), with body.
type standIn struct {
	srv *httptest.Server

	mu     sync.Mutex
	seen   []seenRequest
	status int
	body   string
}

type seenRequest struct {
	proto  int
	path   string
	header http.Header
	body   []byte
}

func newStandIn(t *testing.T, http2 bool) *standIn {
	t.Helper()
	s := &standIn{status: http.StatusOK}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, seenRequest{proto: r.ProtoMajor, path: r.URL.Path, header: r.Header.Clone(), body: body})
		status, answer := s.status, s.body
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	s.srv.EnableHTTP2 = http2
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *standIn) answer(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *standIn) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func (s *standIn) wait(t *testing.T, n int, what string) []seenRequest {
	t.Helper()
	var got []seenRequest
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got = s.requests(); len(got) < n {
			return fmt.Errorf("%s: %d requests, want %d", what, len(got), n)
		}
		return nil
	})
	return got
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// Issue 12, acceptance 3: a node configured with FCM, APNs and Web Push, each
// pointed at a stand-in on loopback TLS. Each offline recipient's device gets one
// well-formed request: FCM's with the OAuth2 token the token stand-in issued for the
// service account's signed assertion; APNs's over HTTP/2 with a provider JWT that
// verifies against the test's key; Web Push's with a VAPID header that verifies and
// a body that decrypts with the subscription's keys. An "unregistered" answer
// disables each target, and no later message is pushed to it.
func TestPushProviders(t *testing.T) {
	fcm, apns, wp := newStandIn(t, false), newStandIn(t, true), newStandIn(t, false)
	// The token endpoint checks the service account's assertion.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	var tokens sync.Map
	tokenSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		tok, err := jwt.Parse(r.PostForm.Get("assertion"), func(*jwt.Token) (any, error) { return &saKey.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("push@parley-test.iam.gserviceaccount.com"))
		if err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			http.Error(w, fmt.Sprint("bad assertion: ", err), http.StatusUnauthorized)
			return
		}
		tokens.Store(tok.Claims.(jwt.MapClaims)["scope"], true)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"tok-e2e","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokenSrv.Close)
	// Every httptest TLS server has the same certificate: the node trusts it alone.
	ca := writeFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fcm.srv.Certificate().Raw}))

	saDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	require.NoError(t, err)
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "parley-test", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: saDER})),
		"client_email": "push@parley-test.iam.gserviceaccount.com", "token_uri": tokenSrv.URL + "/token"})
	apnsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	apnsDER, err := x509.MarshalPKCS8PrivateKey(apnsKey)
	require.NoError(t, err)
	vapidPriv, vapidPub, err := webpush.GenerateVAPIDKeys()
	require.NoError(t, err)

	yaml := fastConfig + fmt.Sprintf(`
push:
  gather: 300ms
  poll: 50ms
  claim: 3s
  timeout: 2s
  backoffMin: 1s
  backoffMax: 2s
  caFile: %s
  fcm:
    credentialsFile: %s
    endpoint: %s
  apns:
    keyFile: %s
    keyId: KEY1234567
    teamId: TEAM123456
    topic: chat.parley.test
    endpoint: %s
  webpush:
    publicKey: %s
    privateKeyFile: %s
    subscriber: mailto:ops@parley.test
    allowedHosts: [127.0.0.1]
`, ca, writeFile(t, "sa.json", sa), fcm.srv.URL, writeFile(t, "apns.p8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: apnsDER})),
		apns.srv.URL, vapidPub, writeFile(t, "vapid", []byte(vapidPriv)))
	n := startNode(t, yaml)

	alice := newUser(t, n, "alice")
	fu, au, wu := newUser(t, n, "fcm"), newUser(t, n, "apns"), newUser(t, n, "web")
	require.NoError(t, setPush(t, n, fu, fu.DeviceID, push.FCM, "fcm-registration-token"))
	apnsToken := hex.EncodeToString([]byte("an apns device token, 32 bytes!!"))
	require.NoError(t, setPush(t, n, au, au.DeviceID, push.APNs, apnsToken))
	ua, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	b64 := base64.RawURLEncoding.EncodeToString
	sub, _ := json.Marshal(map[string]any{"endpoint": wp.srv.URL + "/push/sub-1",
		"keys": map[string]string{"p256dh": b64(ua.PublicKey().Bytes()), "auth": b64(auth)}})
	require.NoError(t, setPush(t, n, wu, wu.DeviceID, push.WebPush, string(sub)))
	evil, _ := json.Marshal(map[string]any{"endpoint": "https://169.254.169.254/latest",
		"keys": map[string]string{"p256dh": b64(ua.PublicKey().Bytes()), "auth": b64(auth)}})
	require.Equal(t, "bad_request", apiCode(setPush(t, n, wu, wu.DeviceID, push.WebPush, string(evil))),
		"an endpoint on a host not allowed")

	ca2 := dial(t, n, alice)
	ra := startReader(ca2)
	sendEach := func(text string) (ids [3]int64) {
		for i, u := range []string{fu.UserID, au.UserID, wu.UserID} {
			ids[i] = sendAll(t, ca2, ra, u, text)[0]
		}
		return ids
	}
	ids := sendEach("first")

	// FCM: the token the token endpoint issued, the project's path, the fields.
	r := fcm.wait(t, 1, "fcm")[0]
	require.Equal(t, "/v1/projects/parley-test/messages:send", r.path)
	require.Equal(t, "Bearer tok-e2e", r.header.Get("Authorization"))
	_, scoped := tokens.Load("https://www.googleapis.com/auth/firebase.messaging")
	require.True(t, scoped, "the assertion asked for FCM's scope")
	var fm struct {
		Message struct {
			Token string            `json:"token"`
			Data  map[string]string `json:"data"`
		} `json:"message"`
	}
	require.NoError(t, json.Unmarshal(r.body, &fm))
	require.Equal(t, "fcm-registration-token", fm.Message.Token)
	require.Equal(t, strconv.FormatInt(ids[0], 10), fm.Message.Data["messageId"])
	require.Equal(t, alice.UserID, fm.Message.Data["from"])
	require.Equal(t, convid.DirectID(alice.UserID, fu.UserID), fm.Message.Data["conversation"])

	// APNs: HTTP/2, the device's path, the headers, a provider JWT signed with our key.
	r = apns.wait(t, 1, "apns")[0]
	require.Equal(t, 2, r.proto)
	require.Equal(t, "/3/device/"+apnsToken, r.path)
	require.Equal(t, "chat.parley.test", r.header.Get("apns-topic"))
	require.Equal(t, "alert", r.header.Get("apns-push-type"))
	bearer, ok := strings.CutPrefix(r.header.Get("Authorization"), "bearer ")
	require.True(t, ok, r.header.Get("Authorization"))
	tok, err := jwt.Parse(bearer, func(*jwt.Token) (any, error) { return &apnsKey.PublicKey, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer("TEAM123456"), jwt.WithIssuedAt())
	require.NoError(t, err, "the provider token verifies against the team's key")
	require.Equal(t, "KEY1234567", tok.Header["kid"])
	var am map[string]any
	require.NoError(t, json.Unmarshal(r.body, &am))
	require.Equal(t, strconv.FormatInt(ids[1], 10), am["messageId"])
	require.Equal(t, "first", am["aps"].(map[string]any)["alert"].(map[string]any)["body"])

	// Web Push: the VAPID header verifies; the body opens with the subscription's keys.
	r = wp.wait(t, 1, "webpush")[0]
	require.Equal(t, "/push/sub-1", r.path)
	require.Equal(t, "aes128gcm", r.header.Get("Content-Encoding"))
	require.NoError(t, pushtest.VerifyVAPID(r.header.Get("Authorization"), vapidPub, wp.srv.URL, "mailto:ops@parley.test"))
	plain, err := pushtest.DecryptAES128GCM(r.body, ua, auth)
	require.NoError(t, err)
	var wn push.Notification
	require.NoError(t, json.Unmarshal(plain, &wn))
	require.Equal(t, ids[2], wn.MessageID)
	require.Equal(t, alice.UserID, wn.From)
	require.Equal(t, "first", wn.Preview)

	// Each answers that the target is gone: disabled, and pushed nothing after.
	fcm.answer(http.StatusNotFound, `{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":`+
		`"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
	apns.answer(http.StatusGone, `{"reason":"Unregistered"}`)
	wp.answer(http.StatusGone, "")
	sendEach("second")
	for _, s := range []*standIn{fcm, apns, wp} {
		s.wait(t, 2, "the second message's push")
	}
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if d := value(scrape(t, n), "parley_push_disabled_total"); d != 3 {
			return fmt.Errorf("%v targets disabled", d)
		}
		return nil
	})
	sendEach("third")
	time.Sleep(1500 * time.Millisecond)
	for name, s := range map[string]*standIn{"fcm": fcm, "apns": apns, "webpush": wp} {
		require.Len(t, s.requests(), 2, "%s: nothing after the target was disabled", name)
	}
	m := scrape(t, n)
	require.Equal(t, 3.0, value(m, "parley_push_sent_total"))
	require.Equal(t, 3.0, value(m, "parley_push_disabled_total"))
}
