package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// browserConfig is the node of the browser tests: quick bcrypt, and a short
// presence grace so that a page that goes offline shows offline soon.
const browserConfig = `
auth:
  bcryptCost: 4
presence:
  grace: 1s
`

// chromiumPath is the browser the tests drive, or "" (with why) when there is
// none. Under CI a missing browser fails the test instead of skipping it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed (scripts/deps.sh chromium installs Debian's package; `make test` runs it)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// page is one browser (its own process and profile) showing the client.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // console errors and uncaught exceptions
	done     chan struct{}
}

// newPage starts a headless Chromium of its own with a viewport of w x h and
// opens url. ctx bounds the browser's whole life. The browser resolves no name
// and reaches nothing but loopback.
func newPage(ctx context.Context, t *testing.T, exe, name, url string, w, h int64) *page {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(int(w), int(h)),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	p := &page{t: t, name: name, ctx: bctx, done: make(chan struct{})}
	messages := chromedp.Console(bctx) // starts the browser; subscribes before the page loads
	go func() {
		defer close(p.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				where := fmt.Sprintf("%s:%d", m.URL, m.Line+1)
				p.mu.Lock()
				p.problems = append(p.problems, fmt.Sprintf("%s %s (%s)", m.Type, m.Text, where))
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		<-p.done
	})
	p.do(chromedp.EmulateViewport(w, h), chromedp.Navigate(url))
	return p
}

// do runs actions on the page, each step bounded by 20 s.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v\n%s", p.name, err, p.problemText())
	}
}

// waitJS waits until the expression is truthy in the page.
func (p *page) waitJS(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		p.t.Fatalf("%s: waiting for %s: %v\n%s", p.name, what, err, p.problemText())
	}
}

func (p *page) problemText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.problems, "\n")
}

// signUp creates the account in the page's form and waits for the app.
func (p *page) signUp(user string) {
	p.t.Helper()
	p.do(
		chromedp.WaitVisible(chromedp.CSS("#auth-username")),
		chromedp.Click(chromedp.CSS("#auth-switch")),
		chromedp.SendKeys(chromedp.CSS("#auth-username"), user),
		chromedp.SendKeys(chromedp.CSS("#auth-display"), strings.ToUpper(user[:1])+user[1:]),
		chromedp.SendKeys(chromedp.CSS("#auth-password"), password+"\r"), // Enter submits
		chromedp.WaitVisible(chromedp.CSS("#app")),
	)
	p.waitJS("the socket", `document.querySelector("#me-status").textContent === "online"`)
}

// addContact adds user by the sidebar's form, which opens the conversation.
func (p *page) addContact(user string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS("#contact-input"), user+"\r"))
	p.waitJS("the conversation with "+user, fmt.Sprintf(`document.querySelector('.conv-item[data-conv*="%s"]') !== null &&
		document.querySelector("#chat-main").hidden === false`, ":"+user))
}

// say types text into the open conversation and sends it with Enter.
func (p *page) say(text string) {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS("#composer-input"), text+"\r"))
}

// waitText waits until a message with text is in the open conversation.
func (p *page) waitText(text string) {
	p.t.Helper()
	p.waitJS("message "+text, fmt.Sprintf(`[...document.querySelectorAll("#message-list .text")].some(e => e.textContent === %q)`, text))
}

// waitTick waits until my message with text shows the tick state.
func (p *page) waitTick(text, state string) {
	p.t.Helper()
	p.waitJS(state+" tick on "+text, fmt.Sprintf(`[...document.querySelectorAll("#message-list .msg.mine")].some(m =>
		m.querySelector(".text").textContent === %q && m.querySelector(".tick.%s") !== null)`, text, state))
}

// presenceOf waits until the list shows user's dot in state.
func (p *page) waitPresence(user, state string) {
	p.t.Helper()
	p.waitJS(user+" "+state, fmt.Sprintf(`(() => { const i = document.querySelector('.conv-item[data-conv*="%s"]');
		return i !== null && i.querySelector(".dot.%s") !== null; })()`, ":"+user, state))
}

// offline takes the page's network away, or gives it back. Going offline, the
// browser first says so (navigator.onLine false, the "offline" event, on which
// the client closes its socket, as when the OS reports the network gone), then
// every request fails; coming back, the other way round.
func (p *page) offline(off bool) {
	p.t.Helper()
	state := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{
			Offline: off, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	})
	cut := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}}})
		return err
	})
	if off {
		p.do(state)
		p.waitJS("the socket closed", `document.querySelector("#me-status").textContent === "offline"`)
		p.do(cut)
	} else {
		p.do(cut, state)
	}
}

// screenshot writes the page as PNG into the test's artifact directory (kept
// with `go test -artifacts`, else removed with the test's temporary files).
func (p *page) screenshot(label string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(p.t, err)
	path := filepath.Join(p.t.ArtifactDir(), p.name+"-"+label+".png")
	require.NoError(p.t, os.WriteFile(path, png, 0o644))
	p.t.Logf("screenshot of %s: %s", p.name, path)
}

// TestBrowserChat drives the browser client in two real headless Chromiums:
// both sign up, add each other, chat both ways, see each other online and the
// read ticks; one goes offline, misses messages, comes back and catches up. No
// page may log a console error or throw.
func TestBrowserChat(t *testing.T) {
	exe := chromiumPath(t)
	n := startNode(t, browserConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	alice, bob := testenv.Name("alice"), testenv.Name("bob")

	// Alice at desktop width, Bob at phone width.
	a := newPage(ctx, t, exe, "alice", n.URL+"/", 1280, 800)
	b := newPage(ctx, t, exe, "bob", n.URL+"/", 390, 844)
	a.signUp(alice)
	b.signUp(bob)

	// The service worker (Web Push's) registers under the page's CSP, which enforces
	// Trusted Types: its script URL must come from the one policy the CSP allows.
	a.do(chromedp.Evaluate[chromedp.Void](`import("/push.js").then((m) => m.registerWorker())` +
		`.then(() => { window.swRegistered = "ok"; }, (e) => { window.swRegistered = String(e); })`))
	a.waitJS("the service worker's registration", `window.swRegistered !== undefined`)
	sw, err := chromedp.Run(a.ctx, chromedp.Evaluate[string](`window.swRegistered`))
	require.NoError(t, err)
	require.Equal(t, "ok", sw, "registering the service worker")

	a.addContact(bob)
	b.addContact(alice)
	a.waitPresence(bob, "online")
	b.waitPresence(alice, "online")

	a.say("Hi Bob! <b>not bold</b>")
	b.waitText("Hi Bob! <b>not bold</b>") // Bob has the conversation open: text, not HTML
	a.waitTick("Hi Bob! <b>not bold</b>", "read")
	b.say("Hello Alice, good to see you here.")
	a.waitText("Hello Alice, good to see you here.")
	b.waitTick("Hello Alice, good to see you here.", "read")
	b.waitJS("no element from a message", `document.querySelector("#message-list b") === null`)

	// Bob goes offline: he misses what Alice sends, and gets it when he is back
	// (the client syncs after reconnecting).
	b.offline(true)
	b.waitJS("the offline banner", `document.querySelector("#banner").hidden === false`)
	a.waitPresence(bob, "offline") // after the presence grace (1 s), live: Alice added Bob in this session
	missed := []string{"Are you there?", "I sent this while you were offline.", "Third one, for good measure."}
	for _, text := range missed {
		a.say(text)
		a.waitTick(text, "sent")
	}
	b.screenshot("offline")
	b.offline(false)
	b.waitJS("the banner gone", `document.querySelector("#banner").hidden === true`)
	for _, text := range missed {
		b.waitText(text)
	}
	a.waitTick(missed[len(missed)-1], "read")
	a.waitPresence(bob, "online")
	b.say("Back online, got all three.")
	a.waitText("Back online, got all three.")

	// A group and a channel, made in Alice's dialogs with Bob in them: Bob finds
	// both in his list (phone width: back from the conversation first).
	a.do(
		chromedp.Click(chromedp.CSS("#btn-new-group")),
		chromedp.WaitVisible(chromedp.CSS("#dlg-group")),
		chromedp.SendKeys(chromedp.CSS("#group-name"), "Weekend plans"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#group-contacts input[value="%s"]`, bob))),
		chromedp.Click(chromedp.CSS(`#group-form button[type="submit"]`)),
		chromedp.WaitNotVisible(chromedp.CSS("#dlg-group")),
	)
	a.waitJS("the group open", `document.querySelector("#chat-name").textContent === "Weekend plans"`)
	a.say("Hiking on Saturday?")
	a.do(
		chromedp.Click(chromedp.CSS("#btn-new-channel")),
		chromedp.WaitVisible(chromedp.CSS("#dlg-channel")),
		chromedp.SendKeys(chromedp.CSS("#channel-name"), "Announcements"),
		chromedp.SendKeys(chromedp.CSS("#channel-members"), bob),
		chromedp.Click(chromedp.CSS(`#channel-form button[type="submit"]`)),
		chromedp.WaitNotVisible(chromedp.CSS("#dlg-channel")),
	)
	a.waitJS("the channel open", `document.querySelector("#chat-name").textContent === "Announcements"`)
	a.say("The office is closed on Friday.")
	a.waitTick("The office is closed on Friday.", "sent")
	b.do(chromedp.Click(chromedp.CSS("#btn-back")))
	b.waitJS("the group and the channel in the list", `(() => {
		const names = [...document.querySelectorAll(".conv-item .conv-name")].map(e => e.textContent);
		return names.includes("Weekend plans") && names.includes("Announcements") &&
			document.querySelectorAll(".conv-item .badge").length === 2; })()`)
	b.screenshot("phone-list")
	b.do(chromedp.Click(chromedp.CSS(`.conv-item[data-conv^="channel:"]`)))
	b.waitText("The office is closed on Friday.")
	b.waitJS("no composer for a member of a broadcast channel", `document.querySelector("#composer").hidden === true`)
	b.do(chromedp.Click(chromedp.CSS("#btn-back")), chromedp.Click(chromedp.CSS(`.conv-item[data-conv^="group:"]`)))
	b.waitText("Hiking on Saturday?")
	b.say("Count me in.")
	a.do(chromedp.Click(chromedp.CSS(`.conv-item[data-conv^="group:"]`)))
	a.waitText("Count me in.")
	a.waitTick("Hiking on Saturday?", "read")

	// History scrolls back: 80 messages from Carol (a plain WebSocket client, not
	// a contact of Bob's) come in pages of 30 as Bob scrolls up.
	carol := newUser(t, n, "carol")
	cc := dial(t, n, carol)
	const older = 80
	for i := 1; i <= older; i++ {
		require.NoError(t, cc.Write(sendFrame(fmt.Sprint("old-", i), bob, fmt.Sprintf("Old message %d", i))))
	}
	for sent := 0; sent < older; {
		f, err := cc.Read(10 * time.Second)
		require.NoError(t, err)
		if f.GetSent() != nil {
			sent++
		}
	}
	b.do(chromedp.Click(chromedp.CSS("#btn-back")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`.conv-item[data-conv*=":%s"]`, carol.UserID))))
	b.waitText(fmt.Sprintf("Old message %d", older))
	b.waitJS("older pages loaded by scrolling up", `(() => {
		const box = document.querySelector("#messages");
		box.scrollTop = 0;
		return [...document.querySelectorAll("#message-list .text")].some(e => e.textContent === "Old message 1"); })()`)
	b.waitJS("every message once, in order", fmt.Sprintf(`(() => {
		const t = [...document.querySelectorAll("#message-list .text")].map(e => e.textContent);
		return t.length === %d && t.every((s, i) => s === "Old message " + (i + 1)); })()`, older))

	a.screenshot("desktop")
	b.screenshot("phone")
	for _, p := range []*page{a, b} {
		if s := p.problemText(); s != "" {
			t.Errorf("%s's console:\n%s", p.name, s)
		}
	}
}

// TestBrowserClientServing checks what the node serves at "/": the client's files
// with their types and security headers, and JSON 404s for unknown paths, under
// the client and under /v1/.
func TestBrowserClientServing(t *testing.T) {
	n := startNode(t, browserConfig)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(testenv.Context(t, 10*time.Second), http.MethodGet, n.URL+path, nil)
		require.NoError(t, err)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res, string(body)
	}
	for path, ctype := range map[string]string{"/": "text/html; charset=utf-8", "/app.js": "text/javascript; charset=utf-8",
		"/style.css": "text/css; charset=utf-8", "/sw.js": "text/javascript; charset=utf-8"} {
		res, _ := get(path)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		require.Equal(t, ctype, res.Header.Get("Content-Type"), path)
		csp := res.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "default-src 'self'", path)
		require.Contains(t, csp, "frame-ancestors 'none'", path)
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"), path)
		require.Equal(t, "no-referrer", res.Header.Get("Referrer-Policy"), path)
	}
	for _, path := range []string{"/nope.js", "/v1/nope", "/v1/"} {
		res, body := get(path)
		require.Equal(t, http.StatusNotFound, res.StatusCode, path)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"), path)
		require.Contains(t, body, `"not_found"`, path)
	}
	res, body := get("/v1/push/webpush")
	require.Equal(t, http.StatusOK, res.StatusCode)
	var info map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	require.Equal(t, false, info["available"]) // the test node configures no push
}
