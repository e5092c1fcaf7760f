package push

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/push/pushtest"
)

const (
	testFCMProject = "parley-test"
	testFCMDevice  = "dAbC123:APA91bH-xyz_0123456789"
)

var testFCMNotification = Notification{
	ID: "u1/d1/42", User: "u1", Device: "d1", Conversation: "c-7", MessageID: 42,
	From: "alice", Preview: "hi there", Count: 3, Unread: 5, Ts: 1_900_000_000_000,
}

// fcmSeen is what the FCM stand-in saw of one request.
type fcmSeen struct {
	method, path string
	header       http.Header
	body         []byte
}

// fcmAnswer is how the stand-in answers; the zero value is 200.
type fcmAnswer struct {
	status     int
	body       string
	retryAfter string
}

// fcmStandIn stands in for the FCM v1 API.
type fcmStandIn struct {
	*httptest.Server
	mu     sync.Mutex
	answer fcmAnswer
	seen   []fcmSeen
}

func newFCMStandIn(t *testing.T) *fcmStandIn {
	s := &fcmStandIn{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.EnableHTTP2 = true // as FCM, and one connection for concurrent sends
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *fcmStandIn) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.seen = append(s.seen, fcmSeen{r.Method, r.URL.Path, r.Header.Clone(), body})
	a := s.answer
	s.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	if a.status == 0 {
		_, _ = io.WriteString(w, `{"name":"projects/`+testFCMProject+`/messages/0:1"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (s *fcmStandIn) setAnswer(a fcmAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = a
}

func (s *fcmStandIn) requests() []fcmSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fcmSeen(nil), s.seen...)
}

// fcmWire is the message as FCM reads it; data values must all be strings.
type fcmWire struct {
	Message struct {
		Token        string `json:"token"`
		Notification struct {
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notification"`
		Data    map[string]string `json:"data"`
		Android struct {
			CollapseKey string `json:"collapse_key"`
			Priority    string `json:"priority"`
		} `json:"android"`
		APNs struct {
			Headers map[string]string `json:"headers"`
		} `json:"apns"`
	} `json:"message"`
}

// checkFCMRequest checks one request's method, path, auth and type, and returns
// its decoded body with token and the key data fields checked against n.
func checkFCMRequest(t *testing.T, r fcmSeen, project string, n Notification) fcmWire {
	t.Helper()
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, "/v1/projects/"+project+"/messages:send", r.path)
	require.Equal(t, "Bearer "+pushtest.AccessToken, r.header.Get("Authorization"))
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "application/json", mt)
	var w fcmWire
	require.NoError(t, json.Unmarshal(r.body, &w), "body %s", r.body)
	require.Equal(t, testFCMDevice, w.Message.Token)
	require.Equal(t, "42", w.Message.Data["messageId"])
	require.Equal(t, n.Conversation, w.Message.Data["conversation"])
	require.Equal(t, n.From, w.Message.Data["from"])
	require.Equal(t, "3", w.Message.Data["count"])
	return w
}

type fcmFixture struct {
	p      *FCMProvider
	tokens *pushtest.TokenServer
	fcm    *fcmStandIn
	cfg    config.FCM
	client *http.Client
}

// newFCMFixture starts the token server and the FCM stand-in (TLS, loopback) and
// builds a provider whose client trusts only their test certificate: a token
// request that bypassed the client would fail.
func newFCMFixture(t *testing.T) fcmFixture {
	t.Helper()
	tokens := pushtest.StartTokenServer(t, &pushtest.ServiceAccountKey(t).PublicKey)
	fcm := newFCMStandIn(t)
	key, _ := pushtest.WriteServiceAccount(t, testFCMProject, tokens.TokenURL)
	cfg := config.FCM{CredentialsFile: key, Endpoint: fcm.URL}
	client := fcm.Client()
	client.Timeout = 10 * time.Second
	p, err := NewFCM(cfg, client)
	require.NoError(t, err)
	return fcmFixture{p: p, tokens: tokens, fcm: fcm, cfg: cfg, client: client}
}

func (f fcmFixture) send(t *testing.T, n Notification) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return f.p.Send(ctx, Target{Provider: FCM, Token: testFCMDevice}, n)
}

func TestFCMSendWellFormed(t *testing.T) {
	f := newFCMFixture(t)
	n := testFCMNotification
	require.NoError(t, f.send(t, n))
	reqs := f.fcm.requests()
	require.Len(t, reqs, 1)
	w := checkFCMRequest(t, reqs[0], testFCMProject, n)
	require.Equal(t, map[string]string{
		"id": "u1/d1/42", "user": "u1", "device": "d1", "conversation": "c-7", "messageId": "42",
		"from": "alice", "count": "3", "unread": "5", "ts": "1900000000000", "preview": "hi there",
	}, w.Message.Data)
	require.Equal(t, "alice", w.Message.Notification.Title)
	require.Equal(t, "hi there", w.Message.Notification.Body)
	require.Equal(t, "c-7", w.Message.Android.CollapseKey)
	require.Equal(t, "high", w.Message.Android.Priority)
	require.Equal(t, "c-7", w.Message.APNs.Headers["apns-collapse-id"])

	t.Run("no preview", func(t *testing.T) {
		n := testFCMNotification
		n.Preview, n.Conversation = "", ""
		require.NoError(t, f.send(t, n))
		reqs := f.fcm.requests()
		w := checkFCMRequest(t, reqs[len(reqs)-1], testFCMProject, n)
		require.Equal(t, "New message", w.Message.Notification.Body)
		require.NotContains(t, w.Message.Data, "preview")
		require.Equal(t, "d1", w.Message.Android.CollapseKey, "no conversation: collapse per device")
	})
}

func TestFCMTokenReused(t *testing.T) {
	f := newFCMFixture(t)
	for range 3 {
		require.NoError(t, f.send(t, testFCMNotification))
	}
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range cap(errs) {
		wg.Go(func() { errs <- f.send(t, testFCMNotification) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	reqs := f.fcm.requests()
	require.Len(t, reqs, 11)
	for _, r := range reqs {
		checkFCMRequest(t, r, testFCMProject, testFCMNotification)
	}
	require.EqualValues(t, 1, f.tokens.Hits(), "one access token for all sends")
}

func TestFCMErrors(t *testing.T) {
	fcmBody := func(code int, status, errorCode string) string {
		return `{"error":{"code":` + strconv.Itoa(code) + `,"status":"` + status + `","message":"refused","details":[` +
			`{"@type":"type.googleapis.com/google.rpc.BadRequest"},` +
			`{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"` + errorCode + `"}]}}`
	}
	cases := []struct {
		name       string
		answer     fcmAnswer
		kind       Kind
		retryAfter time.Duration
		reason     string
	}{
		{"unregistered", fcmAnswer{status: 404, body: fcmBody(404, "NOT_FOUND", "UNREGISTERED")}, Gone, 0, "UNREGISTERED: refused"},
		{"unregistered as 400", fcmAnswer{status: 400, body: fcmBody(400, "INVALID_ARGUMENT", "UNREGISTERED")}, Gone, 0, "UNREGISTERED"},
		{"sender id mismatch", fcmAnswer{status: 403, body: fcmBody(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")}, Drop, 0, "SENDER_ID_MISMATCH"},
		{"not found without unregistered (a wrong project)", fcmAnswer{status: 404, body: `{"error":{"code":404,"status":"NOT_FOUND","message":"Requested entity was not found."}}`}, Drop, 0, "NOT_FOUND"},
		{"404 with no body", fcmAnswer{status: 404}, Drop, 0, "Not Found"},
		{"invalid argument", fcmAnswer{status: 400, body: fcmBody(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")}, Drop, 0, "INVALID_ARGUMENT"},
		{"quota", fcmAnswer{status: 429, retryAfter: "7", body: fcmBody(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")}, Retry, 7 * time.Second, "QUOTA_EXCEEDED"},
		{"internal", fcmAnswer{status: 500, body: fcmBody(500, "INTERNAL", "INTERNAL")}, Retry, 0, "INTERNAL"},
		{"unavailable, no body", fcmAnswer{status: 503, retryAfter: "30"}, Retry, 30 * time.Second, "Service Unavailable"},
		{"third-party auth", fcmAnswer{status: 401, body: fcmBody(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")}, Drop, 0, "THIRD_PARTY_AUTH_ERROR"},
	}
	f := newFCMFixture(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.fcm.setAnswer(c.answer)
			err := f.send(t, testFCMNotification)
			var e *Error
			require.ErrorAs(t, err, &e)
			kind, after := KindOf(err)
			require.Equal(t, c.kind, kind)
			require.Equal(t, c.retryAfter, after)
			require.Equal(t, c.answer.status, e.Status)
			require.Contains(t, e.Reason, c.reason)
		})
	}
	require.Len(t, f.fcm.requests(), len(cases))
}

func TestFCMTokenFetchFails(t *testing.T) {
	f := newFCMFixture(t)
	f.tokens.SetFailing(true)
	err := f.send(t, testFCMNotification)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, Retry, e.Kind)
	require.Contains(t, e.Reason, "access token")
	require.Empty(t, f.fcm.requests(), "nothing sent without a token")

	f.tokens.SetFailing(false) // a later try fetches one
	require.NoError(t, f.send(t, testFCMNotification))
	require.EqualValues(t, 2, f.tokens.Hits())
}

func TestFCMNetworkError(t *testing.T) {
	f := newFCMFixture(t)
	f.fcm.Close()
	err := f.send(t, testFCMNotification)
	require.Error(t, err)
	var e *Error
	require.False(t, errors.As(err, &e), "a network error is returned plain: %v", err)
	kind, _ := KindOf(err)
	require.Equal(t, Retry, kind)
}

func TestNewFCMProject(t *testing.T) {
	tokens := pushtest.StartTokenServer(t, &pushtest.ServiceAccountKey(t).PublicKey)
	fcm := newFCMStandIn(t)
	client := fcm.Client()
	client.Timeout = 10 * time.Second

	t.Run("override", func(t *testing.T) {
		key, _ := pushtest.WriteServiceAccount(t, testFCMProject, tokens.TokenURL)
		cfg := config.FCM{CredentialsFile: key, ProjectID: "other-project", Endpoint: fcm.URL + "/"}
		p, err := NewFCM(cfg, client)
		require.NoError(t, err)
		require.NoError(t, p.Send(t.Context(), Target{Provider: FCM, Token: testFCMDevice}, testFCMNotification))
		reqs := fcm.requests()
		checkFCMRequest(t, reqs[len(reqs)-1], "other-project", testFCMNotification)
	})
	t.Run("none", func(t *testing.T) {
		key, _ := pushtest.WriteServiceAccount(t, "", tokens.TokenURL)
		_, err := NewFCM(config.FCM{CredentialsFile: key, Endpoint: fcm.URL}, client)
		require.ErrorContains(t, err, "project")
	})
	t.Run("bad key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sa.json")
		require.NoError(t, os.WriteFile(path, []byte(`{"type":"service_account","client_email":"a@b",`+
			`"private_key":"not a key","project_id":"p","token_uri":"`+tokens.TokenURL+`"}`), 0o600))
		_, err := NewFCM(config.FCM{CredentialsFile: path, Endpoint: fcm.URL}, client)
		require.ErrorContains(t, err, "private_key")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := NewFCM(config.FCM{CredentialsFile: filepath.Join(t.TempDir(), "nope.json"), Endpoint: fcm.URL}, client)
		require.ErrorIs(t, err, os.ErrNotExist)
	})
}

func TestFCMCheck(t *testing.T) {
	f := newFCMFixture(t)
	for _, ok := range []string{testFCMDevice, strings.Repeat("a", 4096)} {
		require.NoError(t, f.p.Check(ok))
	}
	for name, bad := range map[string]string{
		"empty": "", "oversized": strings.Repeat("a", 4097), "space": "abc def", "tab": "abc\tdef",
		"newline": "abc\n", "nbsp": "abc\u00a0def", "nul": "abc\x00", "del": "abc\x7f", "not utf-8": "abc\xff",
	} {
		require.Error(t, f.p.Check(bad), name)
	}
	err := f.p.Send(t.Context(), Target{Provider: FCM, Token: "bad token"}, testFCMNotification)
	kind, _ := KindOf(err)
	require.Equal(t, Gone, kind)
	require.Empty(t, f.fcm.requests())
	require.Zero(t, f.tokens.Hits())
}
