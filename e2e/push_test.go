package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/push"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
)

// hook is a push gateway standing in for an operator's: it records every POST and
// answers each with the next of its answers (200 once they run out).
type hook struct {
	srv        *httptest.Server
	secret     []byte
	secretFile string

	mu      sync.Mutex
	calls   []hookCall
	answers []int
}

type hookCall struct {
	ts, sig, id string
	body        []byte
	status      int
	at          time.Time
	push.WebhookBody
}

func newHook(t *testing.T, answers ...int) *hook {
	t.Helper()
	h := &hook{secret: make([]byte, 32), answers: answers}
	_, _ = rand.Read(h.secret)
	h.secretFile = filepath.Join(t.TempDir(), "webhook-secret")
	require.NoError(t, os.WriteFile(h.secretFile, []byte(hex.EncodeToString(h.secret)+"\n"), 0o600))
	h.secret = []byte(hex.EncodeToString(h.secret)) // the node uses the file's text
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := hookCall{ts: r.Header.Get(push.HeaderTimestamp), sig: r.Header.Get(push.HeaderSignature),
		id: r.Header.Get(push.HeaderPushID), body: body, at: time.Now(), status: http.StatusOK}
	_ = json.Unmarshal(body, &c.WebhookBody)
	h.mu.Lock()
	if len(h.answers) > 0 {
		c.status, h.answers = h.answers[0], h.answers[1:]
	}
	h.calls = append(h.calls, c)
	h.mu.Unlock()
	w.WriteHeader(c.status)
}

func (h *hook) snapshot() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// wait waits until the hook has had n calls, and returns them.
func (h *hook) wait(t *testing.T, n int, what string) []hookCall {
	t.Helper()
	return waitLen(t, n, what, h.snapshot)
}

// waitLen waits until snapshot holds at least n requests a stand-in recorded, and
// returns them.
func waitLen[T any](t *testing.T, n int, what string, snapshot func() []T) []T {
	t.Helper()
	var got []T
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got = snapshot(); len(got) < n {
			return fmt.Errorf("%s: %d requests, want %d", what, len(got), n)
		}
		return nil
	})
	return got
}

// quiet checks that the hook gets no call past its first n for d (longer than a
// push takes: gather, then a poll).
func (h *hook) quiet(t *testing.T, n int, d time.Duration, what string) {
	t.Helper()
	time.Sleep(d)
	require.Len(t, h.snapshot(), n, what)
}

// pushConfig is fastConfig with short push timings and the webhook at h.
func pushConfig(h *hook, gather string) string {
	return fastConfig + fmt.Sprintf(`
push:
  gather: %s
  poll: 50ms
  claim: 3s
  timeout: 2s
  backoffMin: 1s
  backoffMax: 2s
  webhook:
    url: %s/push
    secretFile: %s
`, gather, h.srv.URL, h.secretFile)
}

func setPush(t *testing.T, n *testenv.Node, s client.Session, device, provider, token string) error {
	t.Helper()
	return groupAPI(t, n, s, http.MethodPut, "/v1/devices/"+device+"/push", map[string]string{"provider": provider, "token": token}, nil)
}

// Issue 12, acceptance 1: bob offline with a webhook target: alice's message makes
// one signed POST with the right fields, whose signature verifies and fails once
// the body is changed or the request is replayed later; while any device of bob's is
// connected, none; and once it goes (within the presence grace), pushes again.
func TestPushWebhook(t *testing.T) {
	h := newHook(t)
	n := startNode(t, pushConfig(h, "300ms"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	laptop := device(t, n, bob, "")

	// Registration: only the device's own user, only a provider configured here.
	require.Equal(t, "not_found", apiCode(setPush(t, n, alice, bob.DeviceID, "webhook", "x")), "alice sets bob's device")
	require.Equal(t, "bad_request", apiCode(setPush(t, n, bob, bob.DeviceID, "fcm", "x")), "fcm is not configured")
	require.Equal(t, "bad_request", apiCode(setPush(t, n, bob, bob.DeviceID, "webhook", "")), "no token")
	require.Equal(t, "bad_request", apiCode(setPush(t, n, bob, bob.DeviceID, "webhook", strings.Repeat("x", 4097))),
		"a token past 4096 bytes")
	require.Equal(t, "bad_request", apiCode(setPush(t, n, bob, bob.DeviceID, "webhook", "tab\there")),
		"a token the provider can never take")
	require.Equal(t, "not_found", apiCode(setPush(t, n, bob, "bad.device", "webhook", "x")), "not a device id")
	conv := convid.DirectID(alice.UserID, bob.UserID)
	require.Equal(t, "bad_request", apiCode(groupAPI(t, n, bob, http.MethodPut, "/v1/conversations/"+conv+"/settings",
		map[string]any{}, nil)), "settings without muted")
	require.NoError(t, setPush(t, n, bob, bob.DeviceID, "webhook", "old-token"))
	require.NoError(t, setPush(t, n, bob, bob.DeviceID, "webhook", "bob-phone"), "a new registration replaces the old")

	ca := dial(t, n, alice)
	ra := startReader(ca)
	ids := sendAll(t, ca, ra, bob.UserID, "hello bob")
	c := h.wait(t, 1, "alice's message")[0]
	require.NoError(t, push.Verify(h.secret, c.ts, c.sig, c.body, time.Now(), 5*time.Minute), "the signature")
	nt := c.Notification
	require.Equal(t, "bob-phone", c.Token)
	require.Equal(t, push.Notification{ID: c.id, User: bob.UserID, Device: bob.DeviceID,
		Conversation: conv, MessageID: ids[0], From: alice.UserID,
		Preview: "hello bob", Count: 1, Unread: 1, Ts: nt.Ts}, nt)
	require.NotZero(t, nt.Ts)

	tampered := bytes.Replace(c.body, []byte("hello bob"), []byte("hello bib"), 1)
	require.Error(t, push.Verify(h.secret, c.ts, c.sig, tampered, time.Now(), 5*time.Minute), "a tampered body")
	require.Error(t, push.Verify(h.secret, c.ts, c.sig, c.body, time.Now().Add(10*time.Minute), 5*time.Minute),
		"the same request replayed ten minutes later")
	require.Error(t, push.Verify([]byte("another secret, of thirty-two bytes"), c.ts, c.sig, c.body, time.Now(), 5*time.Minute))
	h.quiet(t, 1, time.Second, "one message, one push")

	// Bob's laptop online: his phone is pushed nothing.
	cb := dial(t, n, laptop)
	rb := startReader(cb)
	syncNow(t, cb, rb, nil)
	time.Sleep(200 * time.Millisecond) // the online row is written just after the attach
	ids = sendAll(t, ca, ra, bob.UserID, "are you there")
	rb.waitFor(t, 20*time.Second, "the message live on the laptop", func(r *reader) bool {
		return slices.ContainsFunc(r.messages, func(m *parleypb.Message) bool { return m.MessageId == ids[0] })
	})
	h.quiet(t, 1, 1500*time.Millisecond, "bob is online")

	// The laptop goes: within the grace period watchers still see bob online, but
	// a message makes a push again.
	require.NoError(t, cb.Close())
	time.Sleep(300 * time.Millisecond)
	ids = sendAll(t, ca, ra, bob.UserID, "after you left")
	c = h.wait(t, 2, "the message after the laptop left")[1]
	require.Equal(t, ids[0], c.Notification.MessageID)
	require.Equal(t, "after you left", c.Notification.Preview)

	// Removed: no more pushes.
	require.NoError(t, groupAPI(t, n, bob, http.MethodDelete, "/v1/devices/"+bob.DeviceID+"/push", nil, nil))
	sendAll(t, ca, ra, bob.UserID, "into the void")
	h.quiet(t, 2, 1500*time.Millisecond, "the target was removed")
}

// Issue 12, acceptance 2: the gateway answers 500 twice, then 200: the push
// arrives on the third try, though the node was SIGKILLed between the second and
// the third (the outbox kept it), and exactly once.
func TestPushRetriedAcrossKill(t *testing.T) {
	h := newHook(t, http.StatusInternalServerError, http.StatusInternalServerError)
	n := startNode(t, pushConfig(h, "300ms"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	require.NoError(t, setPush(t, n, bob, bob.DeviceID, "webhook", "bob-phone"))
	ca := dial(t, n, alice)
	ids := sendAll(t, ca, startReader(ca), bob.UserID, "are you up")

	h.wait(t, 2, "two failed tries")
	time.Sleep(100 * time.Millisecond) // the second failure recorded
	n.Kill()
	killed := time.Now()
	n.Restart()
	calls := h.wait(t, 3, "the third try, after the restart")
	h.quiet(t, 3, 2*time.Second, "sent once")
	require.True(t, calls[2].at.After(killed), "the third try came from the restarted node")
	for i, c := range calls {
		require.Equal(t, ids[0], c.Notification.MessageID, "try %d", i+1)
		require.Equal(t, calls[0].id, c.id, "try %d keeps the notification's id", i+1)
	}
	require.Equal(t, []int{500, 500, 200}, []int{calls[0].status, calls[1].status, calls[2].status})
}

// Issue 12, acceptance 4: 100 messages to an offline device within a second make
// at most 2 notifications, the last with the count and the latest preview.
func TestPushCollapses(t *testing.T) {
	h := newHook(t)
	n := startNode(t, pushConfig(h, "2s"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	require.NoError(t, setPush(t, n, bob, bob.DeviceID, "webhook", "bob-phone"))
	ca := dial(t, n, alice)
	ra := startReader(ca)
	start := time.Now()
	for i := range 100 {
		require.NoError(t, ca.Write(sendFrame(fmt.Sprint("m-", i), bob.UserID, fmt.Sprint("message ", i))))
	}
	ra.waitFor(t, 20*time.Second, "100 sent", func(r *reader) bool { return len(r.sent) == 100 })
	require.Less(t, time.Since(start), time.Second, "the burst took over a second: the test proves nothing")
	ra.mu.Lock()
	last := ra.sent["m-99"].MessageId
	ra.mu.Unlock()

	var calls []hookCall
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		calls = h.snapshot()
		total := 0
		for _, c := range calls {
			total += c.Notification.Count
		}
		if total < 100 {
			return fmt.Errorf("%d messages notified in %d pushes", total, len(calls))
		}
		return nil
	})
	h.quiet(t, len(calls), time.Second, "nothing after the count reached 100")
	require.LessOrEqual(t, len(calls), 2)
	end := calls[len(calls)-1].Notification
	require.Equal(t, last, end.MessageID)
	require.Equal(t, "message 99", end.Preview)
	require.Equal(t, int64(100), end.Unread)
}

// Issue 12, acceptance 5: a 200-member group with 150 members offline: one post
// pushes each offline member's device once, the online members' none, and the
// member who muted the group none.
func TestPushGroupOfflineMembers(t *testing.T) {
	h := newHook(t)
	n := startNode(t, pushConfig(h, "300ms"))
	users := make([]client.Session, 200)
	for i := range users {
		users[i] = newUser(t, n, fmt.Sprint("m", i, "-"))
		require.NoError(t, setPush(t, n, users[i], users[i].DeviceID, "webhook", users[i].UserID))
	}
	owner, muted := users[0], users[199]
	group := createGroup(t, n, owner, users[1:])
	conv := "group:" + group
	outsider := newUser(t, n, "outsider")
	require.Equal(t, "forbidden", apiCode(groupAPI(t, n, outsider, http.MethodPut, "/v1/conversations/"+conv+"/settings",
		map[string]bool{"muted": true}, nil)), "a non-member mutes the group")
	require.NoError(t, groupAPI(t, n, muted, http.MethodPut, "/v1/conversations/"+conv+"/settings", map[string]bool{"muted": true}, nil))
	var settings struct{ Muted bool }
	require.NoError(t, groupAPI(t, n, muted, http.MethodGet, "/v1/conversations/"+conv+"/settings", nil, &settings))
	require.True(t, settings.Muted)

	var co *client.Conn
	var ro *reader
	for _, u := range users[:50] { // online: the owner and 49 members
		c := dial(t, n, u)
		r := startReader(c)
		syncNow(t, c, r, nil)
		if u == owner {
			co, ro = c, r
		}
	}
	time.Sleep(300 * time.Millisecond) // the online rows are written just after the attaches
	require.NoError(t, co.Write(groupSend("post-1", group, "hello all")))
	ro.waitFor(t, 20*time.Second, "sent", func(r *reader) bool { return r.sent["post-1"] != nil })

	want := make([]string, 0, 149)
	for _, u := range users[50:199] {
		want = append(want, u.UserID)
	}
	h.wait(t, len(want), "the offline members' pushes")
	h.quiet(t, len(want), 1500*time.Millisecond, "no more pushes")
	var got []string
	for _, c := range h.snapshot() {
		require.Equal(t, conv, c.Notification.Conversation)
		require.Equal(t, owner.UserID, c.Notification.From)
		got = append(got, c.Token)
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got, "each offline member that did not mute, once")
}

// Issue 13, push: in an open channel only a mention pushes, and only the member
// mentioned; it also finds the post in its sync queue. A broadcast channel pushes
// no one, mention or not.
func TestPushChannelMentions(t *testing.T) {
	h := newHook(t)
	n := startNode(t, pushConfig(h, "200ms"))
	alice, bob, carol := newUser(t, n, "alice"), newUser(t, n, "bob"), newUser(t, n, "carol")
	require.NoError(t, setPush(t, n, bob, bob.DeviceID, "webhook", "bob-phone"))
	require.NoError(t, setPush(t, n, carol, carol.DeviceID, "webhook", "carol-phone"))
	open := createChannel(t, n, alice, "open", false)
	broadcast := createChannel(t, n, alice, "broadcast", false)
	for _, ch := range []string{open, broadcast} {
		addChannelMembers(t, n, alice, ch, []string{bob.UserID, carol.UserID})
	}
	ca := dial(t, n, alice)
	ra := startReader(ca)
	post := func(id, ch, text string) int64 {
		require.NoError(t, ca.Write(channelSend(id, ch, text)))
		ra.waitFor(t, 20*time.Second, "sent "+id, func(r *reader) bool { return r.sent[id] != nil })
		ra.mu.Lock()
		defer ra.mu.Unlock()
		return ra.sent[id].MessageId
	}
	post("p1", open, "hello everyone")
	post("p2", broadcast, "news for @bob")
	h.quiet(t, 0, 1200*time.Millisecond, "no mention in the open channel, none pushed in broadcast")

	id := post("p3", open, "hey @"+bob.UserID+", look")
	c := h.wait(t, 1, "the mention")[0]
	require.Equal(t, "bob-phone", c.Token)
	require.Equal(t, convid.ChannelID(open), c.Notification.Conversation)
	require.Equal(t, id, c.Notification.MessageID)
	require.Equal(t, alice.UserID, c.Notification.From)
	h.quiet(t, 1, 1200*time.Millisecond, "carol was not mentioned")

	// bob's queue has the mention, and nothing else of the channels.
	cb := dial(t, n, bob)
	rb := startReader(cb)
	syncNow(t, cb, rb, nil)
	msgs, _, _, _ := rb.snapshot()
	require.Len(t, msgs, 1)
	require.Equal(t, id, msgs[0].MessageId)
	require.NotZero(t, msgs[0].Seq)
	require.Equal(t, convid.ChannelID(open), msgs[0].Conversation)
}
