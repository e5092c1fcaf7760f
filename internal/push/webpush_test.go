package push

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	webpush "github.com/SherClockHolmes/webpush-go"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/push/pushtest"
)

var b64 = base64.RawURLEncoding.EncodeToString

type pushRequest struct {
	method, path string
	header       http.Header
	body         []byte
}

// startPushService is a stand-in push service on loopback TLS: it hands every
// request to the returned channel, then answers with reply.
func startPushService(t *testing.T, reply func(http.ResponseWriter, *http.Request)) (*httptest.Server, <-chan pushRequest) {
	t.Helper()
	reqs := make(chan pushRequest, 8)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case reqs <- pushRequest{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body}:
		default:
			t.Errorf("push service: too many requests")
		}
		reply(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func mustReceive(t *testing.T, reqs <-chan pushRequest) pushRequest {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no request at the push service")
		return pushRequest{}
	}
}

func mustVAPIDKeys(t *testing.T) (priv, pub string) {
	t.Helper()
	priv, pub, err := webpush.GenerateVAPIDKeys()
	require.NoError(t, err)
	return priv, pub
}

// mustWebPush is a provider that may push to srv, and its VAPID public key.
func mustWebPush(t *testing.T, srv *httptest.Server, subscriber string) (*WebPushProvider, string) {
	t.Helper()
	priv, pub := mustVAPIDKeys(t)
	p, err := NewWebPush(config.WebPush{PublicKey: pub, PrivateKey: priv, Subscriber: subscriber,
		AllowedHosts: []string{"127.0.0.1"}, TTL: time.Hour}, srv.Client())
	require.NoError(t, err)
	return p, pub
}

func sendCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testNotification(conv string) Notification {
	return Notification{ID: "u1:d1:42", User: "u1", Device: "d1", Conversation: conv, MessageID: 1234567890123,
		From: "u2", Preview: "hello <b>&</b> \"world\" ✓", Count: 3, Unread: 7, Ts: 1700000000123}
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func TestWebPushSendDecrypts(t *testing.T) {
	for _, sub := range []string{"mailto:ops@parley.test", "https://parley.test/contact"} {
		t.Run(sub, func(t *testing.T) {
			srv, reqs := startPushService(t, status(http.StatusCreated))
			p, vapidPub := mustWebPush(t, srv, sub)
			b := pushtest.NewBrowser(t)
			target := Target{Provider: WebPush, Token: b.Subscription(srv.URL + "/push/abc")}
			n := testNotification("c:alice:bob")
			require.NoError(t, p.Send(sendCtx(t), target, n))

			req := mustReceive(t, reqs)
			require.Equal(t, http.MethodPost, req.method)
			require.Equal(t, "/push/abc", req.path)
			require.Equal(t, "3600", req.header.Get("TTL"))
			require.Equal(t, "aes128gcm", req.header.Get("Content-Encoding"))
			require.Equal(t, "high", req.header.Get("Urgency"))
			require.Regexp(t, topicRE, req.header.Get("Topic"))
			require.NoError(t, pushtest.VerifyVAPID(req.header.Get("Authorization"), vapidPub, srv.URL, sub))
			require.Error(t, pushtest.VerifyVAPID(req.header.Get("Authorization"), vapidPub, srv.URL, sub+"x"))
			require.Error(t, pushtest.VerifyVAPID(req.header.Get("Authorization"), vapidPub, "https://evil.test", sub))

			plain, err := pushtest.DecryptWebPush(req.body, b.Key, b.Auth)
			require.NoError(t, err)
			var got Notification
			require.NoError(t, json.Unmarshal(plain, &got))
			require.Equal(t, n, got)

			// Each part of the decryption can fail.
			_, err = pushtest.DecryptWebPush(req.body, b.Key, make([]byte, 16))
			require.Error(t, err, "wrong auth secret")
			_, err = pushtest.DecryptWebPush(req.body, pushtest.NewBrowser(t).Key, b.Auth)
			require.Error(t, err, "wrong user agent key")
			tampered := bytes.Clone(req.body)
			tampered[len(tampered)-1] ^= 1
			_, err = pushtest.DecryptWebPush(tampered, b.Key, b.Auth)
			require.Error(t, err, "tampered body")
		})
	}
}

func TestWebPushSendTopic(t *testing.T) {
	srv, reqs := startPushService(t, status(http.StatusCreated))
	p, _ := mustWebPush(t, srv, "mailto:ops@parley.test")
	target := Target{Provider: WebPush, Token: pushtest.NewBrowser(t).Subscription(srv.URL + "/push/abc")}
	topic := func(conv string, msg int64) string {
		n := testNotification(conv)
		n.MessageID = msg
		require.NoError(t, p.Send(sendCtx(t), target, n))
		return mustReceive(t, reqs).header.Get("Topic")
	}
	first, newer, other := topic("c:alice:bob", 1), topic("c:alice:bob", 2), topic("g:team", 3)
	require.Equal(t, first, newer, "a newer push of a conversation replaces the older")
	require.NotEqual(t, first, other)
	for _, conv := range []string{"", "c:alice:bob", strings.Repeat("é", 500)} {
		require.Regexp(t, topicRE, webPushTopic(conv))
	}
}

func TestWebPushSendStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reply  func(http.ResponseWriter, *http.Request)
		ok     bool
		kind   Kind
		status int
		after  time.Duration
	}{
		{name: "201", reply: status(http.StatusCreated), ok: true},
		{name: "200", reply: status(http.StatusOK), ok: true},
		{name: "202", reply: status(http.StatusAccepted), ok: true},
		{name: "410", reply: status(http.StatusGone), kind: Gone, status: 410},
		{name: "404", reply: status(http.StatusNotFound), kind: Gone, status: 404},
		{name: "429", reply: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		}, kind: Retry, status: 429, after: 7 * time.Second},
		{name: "503", reply: status(http.StatusServiceUnavailable), kind: Retry, status: 503},
		{name: "413", reply: status(http.StatusRequestEntityTooLarge), kind: Drop, status: 413},
		{name: "400", reply: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "UnauthorizedRegistration\n\tbad\x00jwt", http.StatusBadRequest)
		}, kind: Drop, status: 400},
		{name: "redirect not followed", reply: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				w.WriteHeader(http.StatusCreated)
				return
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, kind: Drop, status: 307},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reqs := startPushService(t, tc.reply)
			p, _ := mustWebPush(t, srv, "mailto:ops@parley.test")
			target := Target{Provider: WebPush, Token: pushtest.NewBrowser(t).Subscription(srv.URL + "/push/abc")}
			err := p.Send(sendCtx(t), target, testNotification("c:alice:bob"))
			require.Equal(t, "/push/abc", mustReceive(t, reqs).path)
			require.Empty(t, reqs, "one request only")
			if tc.ok {
				require.NoError(t, err)
				return
			}
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.kind, e.Kind)
			require.Equal(t, tc.status, e.Status)
			require.Equal(t, tc.after, e.RetryAfter)
			require.NotContains(t, e.Reason, "\x00")
		})
	}
}

func TestWebPushSendFailures(t *testing.T) {
	srv, reqs := startPushService(t, status(http.StatusCreated))
	p, _ := mustWebPush(t, srv, "mailto:ops@parley.test")
	b := pushtest.NewBrowser(t)

	t.Run("refused subscription is gone", func(t *testing.T) {
		err := p.Send(sendCtx(t), Target{Provider: WebPush, Token: b.Subscription("https://evil.test/push")}, testNotification("c"))
		kind, _ := KindOf(err)
		require.Equal(t, Gone, kind)
		require.ErrorContains(t, err, "not allowed")
		require.Empty(t, reqs)
	})
	t.Run("network error retries and hides the endpoint", func(t *testing.T) {
		down := httptest.NewTLSServer(http.NotFoundHandler())
		endpoint := down.URL + "/push/secret-path"
		down.Close()
		err := p.Send(sendCtx(t), Target{Provider: WebPush, Token: b.Subscription(endpoint)}, testNotification("c"))
		require.Error(t, err)
		kind, _ := KindOf(err)
		require.Equal(t, Retry, kind)
		require.NotContains(t, err.Error(), "secret-path")
	})
	t.Run("long preview is clipped to fit", func(t *testing.T) {
		n := testNotification("c")
		n.Preview = strings.Repeat("é<", 3000)
		require.NoError(t, p.Send(sendCtx(t), Target{Provider: WebPush, Token: b.Subscription(srv.URL + "/p")}, n))
		plain, err := pushtest.DecryptWebPush(mustReceive(t, reqs).body, b.Key, b.Auth)
		require.NoError(t, err)
		require.LessOrEqual(t, len(plain), maxWebPushPayload)
		var got Notification
		require.NoError(t, json.Unmarshal(plain, &got))
		require.NotEmpty(t, got.Preview)
		require.Less(t, len(got.Preview), len(n.Preview))
		require.True(t, strings.HasPrefix(n.Preview, got.Preview) && utf8.ValidString(got.Preview))
		got.Preview = n.Preview
		require.Equal(t, n, got)
	})
}

func TestWebPushCheck(t *testing.T) {
	allowed := []string{"127.0.0.1", ".push.example"}
	b := pushtest.NewBrowser(t)
	dh, auth := b64(b.Key.PublicKey().Bytes()), b64(b.Auth)
	compressed := append([]byte{2 | b.Key.PublicKey().Bytes()[64]&1}, b.Key.PublicKey().Bytes()[1:33]...)
	offCurve := append([]byte{4}, make([]byte, 64)...)
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"valid", b.Subscription("https://127.0.0.1/push/x"), true},
		{"port ignored", b.Subscription("https://127.0.0.1:8443/push/x"), true},
		{"subdomain", b.Subscription("https://a.push.example/x"), true},
		{"subdomain in capitals", b.Subscription("https://A.B.Push.Example/x"), true},
		{"padded keys", pushtest.SubscriptionJSON("https://127.0.0.1/x", base64.URLEncoding.EncodeToString(b.Key.PublicKey().Bytes()),
			base64.URLEncoding.EncodeToString(b.Auth)), true},
		{"http", b.Subscription("http://127.0.0.1/push/x"), false},
		{"no scheme", b.Subscription("//127.0.0.1/push/x"), false},
		{"opaque", b.Subscription("https:127.0.0.1"), false},
		{"no endpoint", pushtest.SubscriptionJSON("", dh, auth), false},
		{"host not allowed", b.Subscription("https://evil.test/x"), false},
		{"allowed host as a prefix", b.Subscription("https://127.0.0.1.evil.test/x"), false},
		{"userinfo to another host", b.Subscription("https://127.0.0.1@evil.test/"), false},
		{"userinfo", b.Subscription("https://user:pw@127.0.0.1/x"), false},
		{"bare domain of a subdomain entry", b.Subscription("https://push.example/x"), false},
		{"suffix without the dot", b.Subscription("https://evilpush.example/x"), false},
		{"allowed domain as a prefix", b.Subscription("https://a.push.example.evil.test/x"), false},
		{"fragment trick", b.Subscription("https://evil.test#.push.example"), false},
		{"backslash trick", b.Subscription(`https://evil.test\.push.example/`), false},
		{"empty label", b.Subscription("https://a..push.example/x"), false},
		{"bad JSON", `{"endpoint":`, false},
		{"not an object", `"https://127.0.0.1/x"`, false},
		{"too long", b.Subscription("https://127.0.0.1/" + strings.Repeat("x", 4096)), false},
		{"p256dh missing", pushtest.SubscriptionJSON("https://127.0.0.1/x", "", auth), false},
		{"p256dh not base64url", pushtest.SubscriptionJSON("https://127.0.0.1/x", "!!"+dh[2:], auth), false},
		{"p256dh 64 bytes", pushtest.SubscriptionJSON("https://127.0.0.1/x", b64(b.Key.PublicKey().Bytes()[1:]), auth), false},
		{"p256dh compressed", pushtest.SubscriptionJSON("https://127.0.0.1/x", b64(compressed), auth), false},
		{"p256dh off the curve", pushtest.SubscriptionJSON("https://127.0.0.1/x", b64(offCurve), auth), false},
		{"auth missing", pushtest.SubscriptionJSON("https://127.0.0.1/x", dh, ""), false},
		{"auth 15 bytes", pushtest.SubscriptionJSON("https://127.0.0.1/x", dh, b64(b.Auth[:15])), false},
		{"auth 17 bytes", pushtest.SubscriptionJSON("https://127.0.0.1/x", dh, b64(append(bytes.Clone(b.Auth), 0))), false},
		{"auth not base64url", pushtest.SubscriptionJSON("https://127.0.0.1/x", dh, "*"+auth[1:]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := ParseSubscription(tc.token, allowed)
			if !tc.ok {
				require.ErrorIs(t, err, ErrBadSubscription)
				return
			}
			require.NoError(t, err)
			require.Equal(t, dh, sub.Keys.P256dh)
			require.Equal(t, auth, sub.Keys.Auth)
		})
	}

	srv, _ := startPushService(t, status(http.StatusCreated))
	p, _ := mustWebPush(t, srv, "mailto:ops@parley.test")
	require.NoError(t, p.Check(b.Subscription(srv.URL+"/push/x")))
	require.ErrorIs(t, p.Check(b.Subscription(strings.Replace(srv.URL, "https:", "http:", 1)+"/push/x")), ErrBadSubscription)
	require.ErrorIs(t, p.Check(b.Subscription("https://a.push.example/x")), ErrBadSubscription)
}

func TestWebPushNewWebPush(t *testing.T) {
	priv, pub := mustVAPIDKeys(t)
	otherPriv, otherPub := mustVAPIDKeys(t)
	pubBytes, err := base64.RawURLEncoding.DecodeString(pub)
	require.NoError(t, err)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "vapid.key")
	require.NoError(t, os.WriteFile(keyFile, []byte(priv+"\n"), 0o600))

	for _, tc := range []struct {
		name    string
		cfg     config.WebPush
		wantErr string
	}{
		{"pair", config.WebPush{PublicKey: pub, PrivateKey: priv}, ""},
		{"padded pair", config.WebPush{PublicKey: pub + "=", PrivateKey: priv + "="}, ""},
		{"private key file", config.WebPush{PublicKey: pub, PrivateKeyFile: keyFile}, ""},
		{"mismatched", config.WebPush{PublicKey: pub, PrivateKey: otherPriv}, "does not match"},
		{"mismatched the other way", config.WebPush{PublicKey: otherPub, PrivateKey: priv}, "does not match"},
		{"mismatched file", config.WebPush{PublicKey: otherPub, PrivateKeyFile: keyFile}, "does not match"},
		{"no public key", config.WebPush{PrivateKey: priv}, "public key"},
		{"public key not base64url", config.WebPush{PublicKey: "!" + pub[1:], PrivateKey: priv}, "public key"},
		{"public key 64 bytes", config.WebPush{PublicKey: b64(pubBytes[1:]), PrivateKey: priv}, "public key"},
		{"public key off the curve", config.WebPush{PublicKey: b64(append([]byte{4}, make([]byte, 64)...)), PrivateKey: priv}, "public key"},
		{"no private key", config.WebPush{PublicKey: pub}, "private key"},
		{"private key 31 bytes", config.WebPush{PublicKey: pub, PrivateKey: b64(make([]byte, 31))}, "private key"},
		{"private key zero", config.WebPush{PublicKey: pub, PrivateKey: b64(make([]byte, 32))}, "private key"},
		{"private key file missing", config.WebPush{PublicKey: pub, PrivateKeyFile: filepath.Join(dir, "none")}, "reading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewWebPush(tc.cfg, nil)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, pub, p.publicKey)
			require.Equal(t, priv, p.privateKey)
		})
	}
}
