package e2e

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
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

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/push"
	"github.com/parleychat/parley/internal/push/pushtest"
	"github.com/parleychat/parley/internal/testenv"
)

// standIn is a provider's endpoint on loopback TLS (httptest's certificate): it
// records every request and answers each with its current answer (200 and an
// empty body until answer changes it).
type standIn struct {
	srv *httptest.Server

	mu     sync.Mutex
	seen   []seenRequest
	status int
	body   string
}

type seenRequest struct {
	proto        int
	method, path string
	header       http.Header
	body         []byte
}

func newStandIn(t *testing.T, http2 bool) *standIn {
	t.Helper()
	s := &standIn{status: http.StatusOK}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		s.mu.Lock()
		s.seen = append(s.seen, seenRequest{proto: r.ProtoMajor, method: r.Method, path: r.URL.Path,
			header: r.Header.Clone(), body: body})
		status, answer := s.status, s.body
		s.mu.Unlock()
		if answer != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	s.srv.EnableHTTP2 = http2
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

// answer sets how the later requests are answered.
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

// wait waits until the stand-in has had n requests, and returns them.
func (s *standIn) wait(t *testing.T, n int, what string) []seenRequest {
	t.Helper()
	return waitLen(t, n, what, s.requests)
}

// quietStandIns checks that no stand-in gets a request past its first n for d
// (longer than a push takes: gather, then a poll).
func quietStandIns(t *testing.T, stands map[string]*standIn, n int, d time.Duration, what string) {
	t.Helper()
	time.Sleep(d)
	for name, s := range stands {
		reqs := s.requests()
		var got []string
		for _, r := range reqs {
			got = append(got, fmt.Sprintf("%s %s (%d bytes)", r.method, r.path, len(r.body)))
		}
		require.Len(t, got, n, "%s: %s", name, what)
	}
}

func writeTestFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// fcmWire is the part of an FCM v1 request the test reads.
type fcmWire struct {
	Message struct {
		Token        string `json:"token"`
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Data map[string]string `json:"data"`
	} `json:"message"`
}

// apnsWire is the part of an APNs body the test reads.
type apnsWire struct {
	Aps struct {
		Alert struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"alert"`
	} `json:"aps"`
	Conversation string `json:"conversation"`
	MessageID    string `json:"messageId"`
	From         string `json:"from"`
}

const (
	fcmProject  = "parley-e2e"
	apnsKeyID   = "KEY1234567"
	apnsTeamID  = "TEAM123456"
	apnsTopic   = "chat.parley.e2e"
	vapidSender = "mailto:ops@parley.test"
)

// Issue 12, acceptance 3: an FCM stand-in, an APNs stand-in (HTTP/2 over TLS,
// checking the JWT's signature against the test's key) and a Web Push stand-in
// (decrypting the payload with the subscription's keys) receive well-formed
// requests; an "unregistered" answer disables the target and no later message is
// pushed to it.
//
// One node is configured with the three providers, each pointed at its stand-in
// on loopback TLS, and trusts only httptest's certificate (push.caFile), which
// the stand-ins and the OAuth 2.0 token stand-in share. Three offline users each
// register their device with one provider; alice writes to each of them.
func TestPushProviders(t *testing.T) {
	fcm, apns, wp := newStandIn(t, true), newStandIn(t, true), newStandIn(t, false)
	fcm.answer(http.StatusOK, `{"name":"projects/`+fcmProject+`/messages/0:1"}`)
	wp.answer(http.StatusCreated, "")
	stands := map[string]*standIn{"fcm": fcm, "apns": apns, "webpush": wp}
	tokens := pushtest.StartTokenServer(t, &pushtest.ServiceAccountKey(t).PublicKey)
	// Every httptest TLS server has the same certificate: the node trusts it alone.
	ca := writeTestFile(t, "ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fcm.srv.Certificate().Raw}))

	credentials, _ := pushtest.WriteServiceAccount(t, fcmProject, tokens.TokenURL)
	apnsKeyFile, apnsKey := pushtest.WriteAPNsKey(t)
	vapid, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	b64 := base64.RawURLEncoding.EncodeToString
	vapidPub := b64(vapid.PublicKey().Bytes())
	vapidFile := writeTestFile(t, "vapid.key", []byte(b64(vapid.Bytes())+"\n"))

	n := startNode(t, fastConfig+fmt.Sprintf(`
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
    keyId: %s
    teamId: %s
    topic: %s
    endpoint: %s
  webpush:
    publicKey: %s
    privateKeyFile: %s
    subscriber: %s
    allowedHosts: [127.0.0.1]
`, ca, credentials, fcm.srv.URL, apnsKeyFile, apnsKeyID, apnsTeamID, apnsTopic, apns.srv.URL,
		vapidPub, vapidFile, vapidSender))

	alice := newUser(t, n, "alice")
	bob, carol, dave := newUser(t, n, "bob"), newUser(t, n, "carol"), newUser(t, n, "dave")
	fcmToken := "bob-phone:APA91bH-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	require.NoError(t, setPush(t, n, bob, bob.DeviceID, push.FCM, fcmToken))
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	apnsToken := hex.EncodeToString(raw)
	require.NoError(t, setPush(t, n, carol, carol.DeviceID, push.APNs, apnsToken))
	browser := pushtest.NewBrowser(t)
	_, _ = rand.Read(raw)
	subPath := "/push/" + hex.EncodeToString(raw[:16])
	require.Equal(t, "bad_request", apiCode(setPush(t, n, dave, dave.DeviceID, push.WebPush,
		browser.Subscription("https://169.254.169.254/latest"))), "an endpoint on a host not allowed")
	require.NoError(t, setPush(t, n, dave, dave.DeviceID, push.WebPush, browser.Subscription(wp.srv.URL+subPath)))

	ac := dial(t, n, alice)
	ra := startReader(ac)
	// Each message names its recipient, so a push shows it went to the right one.
	preview := func(text string, u client.Session) string { return text + " " + u.UserID }
	sendEach := func(text string) (ids [3]int64) {
		for i, u := range []client.Session{bob, carol, dave} {
			ids[i] = sendAll(t, ac, ra, u.UserID, preview(text, u))[0]
		}
		return ids
	}

	// Each provider's request, checked as the provider would, and for message id.
	checkFCM := func(r seenRequest, id int64, text string) {
		t.Helper()
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "/v1/projects/"+fcmProject+"/messages:send", r.path)
		require.Equal(t, "Bearer "+pushtest.AccessToken, r.header.Get("Authorization"), "the token server's access token")
		mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
		require.NoError(t, err)
		require.Equal(t, "application/json", mt)
		var m fcmWire
		require.NoError(t, json.Unmarshal(r.body, &m), "%s", r.body)
		require.Equal(t, fcmToken, m.Message.Token)
		require.Equal(t, strconv.FormatInt(id, 10), m.Message.Data["messageId"])
		require.Equal(t, convid.DirectID(alice.UserID, bob.UserID), m.Message.Data["conversation"])
		require.Equal(t, alice.UserID, m.Message.Data["from"])
		require.Equal(t, bob.UserID, m.Message.Data["user"])
		require.Equal(t, bob.DeviceID, m.Message.Data["device"])
		require.Equal(t, preview(text, bob), m.Message.Data["preview"])
		require.Equal(t, preview(text, bob), m.Message.Notification.Body)
		require.Equal(t, alice.UserID, m.Message.Notification.Title)
	}
	checkAPNs := func(r seenRequest, id int64, text string) {
		t.Helper()
		require.Equal(t, 2, r.proto, "APNs is HTTP/2")
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "/3/device/"+apnsToken, r.path)
		require.Equal(t, apnsTopic, r.header.Get("apns-topic"))
		require.Equal(t, "alert", r.header.Get("apns-push-type"))
		bearer, ok := strings.CutPrefix(r.header.Get("Authorization"), "bearer ")
		require.True(t, ok, "authorization %q", r.header.Get("Authorization"))
		_, err := pushtest.VerifyAPNsJWT(bearer, &apnsKey.PublicKey, apnsKeyID, apnsTeamID, nil)
		require.NoError(t, err, "the provider token verifies against the team's key")
		var b apnsWire
		require.NoError(t, json.Unmarshal(r.body, &b), "%s", r.body)
		require.Equal(t, strconv.FormatInt(id, 10), b.MessageID)
		require.Equal(t, convid.DirectID(alice.UserID, carol.UserID), b.Conversation)
		require.Equal(t, alice.UserID, b.From)
		require.Equal(t, alice.UserID, b.Aps.Alert.Title)
		require.Equal(t, preview(text, carol), b.Aps.Alert.Body)
	}
	checkWebPush := func(r seenRequest, id int64, text string) {
		t.Helper()
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, subPath, r.path)
		require.Equal(t, "aes128gcm", r.header.Get("Content-Encoding"))
		require.Equal(t, "86400", r.header.Get("TTL"), "push.webpush.ttl's default")
		require.NoError(t, pushtest.VerifyVAPID(r.header.Get("Authorization"), vapidPub, wp.srv.URL, vapidSender))
		plain, err := browser.Decrypt(r.body)
		require.NoError(t, err, "the body opens with the subscription's keys")
		var got push.Notification
		require.NoError(t, json.Unmarshal(plain, &got), "%s", plain)
		require.NotEmpty(t, got.ID)
		require.NotZero(t, got.Ts)
		require.Equal(t, push.Notification{ID: got.ID, User: dave.UserID, Device: dave.DeviceID,
			Conversation: convid.DirectID(alice.UserID, dave.UserID), MessageID: id, From: alice.UserID,
			Preview: preview(text, dave), Count: 1, Unread: got.Unread, Ts: got.Ts}, got)
		require.Positive(t, got.Unread)
	}

	// One well-formed request at each.
	ids := sendEach("hello")
	checkFCM(fcm.wait(t, 1, "fcm")[0], ids[0], "hello")
	checkAPNs(apns.wait(t, 1, "apns")[0], ids[1], "hello")
	checkWebPush(wp.wait(t, 1, "webpush")[0], ids[2], "hello")
	quietStandIns(t, stands, 1, time.Second, "one message, one push")
	require.Equal(t, 1, tokens.Hits(), "one access token")

	// Each answers that the target is gone: the next message's push is that one
	// request, and the target is disabled.
	fcm.answer(http.StatusNotFound, `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",`+
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
	apns.answer(http.StatusGone, `{"reason":"Unregistered","timestamp":1700000000000}`)
	wp.answer(http.StatusGone, "")
	ids = sendEach("second")
	checkFCM(fcm.wait(t, 2, "fcm, unregistered")[1], ids[0], "second")
	checkAPNs(apns.wait(t, 2, "apns, unregistered")[1], ids[1], "second")
	checkWebPush(wp.wait(t, 2, "webpush, unregistered")[1], ids[2], "second")
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if d := value(scrape(t, n), "parley_push_disabled_total"); d != 3 {
			return fmt.Errorf("%v targets disabled, want 3", d)
		}
		return nil
	})

	// Disabled: a later message pushes nothing.
	sendEach("third")
	quietStandIns(t, stands, 2, 1500*time.Millisecond, "the target was disabled")

	m := scrape(t, n)
	require.Equal(t, 3.0, value(m, "parley_push_sent_total"))
	require.Equal(t, 3.0, value(m, "parley_push_disabled_total"))
	require.Equal(t, 0.0, value(m, "parley_push_retried_total"), "no send was retried")
	require.Equal(t, 0.0, value(m, "parley_push_failed_total"), "no send failed")
}
