package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

const (
	testPassword = "correct horse battery"
	fastConfig   = "auth:\n  bcryptCost: 4\nlimits:\n  frameRate: 100000\n  frameBurst: 100000\n"
)

// inbox collects what a Client hands to OnMessage and checks the delivery rules
// on the way: seqs strictly increasing, no message id twice.
type inbox struct {
	t        *testing.T
	mu       sync.Mutex
	msgs     []Message
	problems []string
}

func (b *inbox) on(m Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.msgs); n > 0 && m.Seq <= b.msgs[n-1].Seq {
		b.problems = append(b.problems, fmt.Sprintf("seq %d after %d", m.Seq, b.msgs[n-1].Seq))
	}
	for _, o := range b.msgs {
		if o.ID == m.ID {
			b.problems = append(b.problems, fmt.Sprintf("message %d twice (seq %d and %d)", m.ID, o.Seq, m.Seq))
		}
	}
	b.msgs = append(b.msgs, m)
}

func (b *inbox) snapshot() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(b.t, b.problems)
	return slices.Clone(b.msgs)
}

// waitCount waits until the inbox holds n messages.
func (b *inbox) waitCount(n int, d time.Duration) {
	b.t.Helper()
	testenv.CheckFor(b.t, d, 20*time.Millisecond, func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.msgs) < n {
			return fmt.Errorf("have %d messages, want %d", len(b.msgs), n)
		}
		return nil
	})
}

func testLogger(t *testing.T, name string) *slog.Logger {
	if os.Getenv("PARLEY_CLIENT_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("client", name)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("client", name)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// newClient registers a fresh user on nodes[0] and returns a connected Client for it.
func newClient(t *testing.T, prefix string, nodes []string, enc wire.Encoding, opts ...func(*Options)) (*Client, *inbox) {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	name := testenv.Name(prefix)
	require.NoError(t, Register(ctx, nodes[0], name, testPassword))
	box := &inbox{t: t}
	c, err := New(Options{
		Nodes: nodes, Username: name, Password: testPassword, Encoding: enc,
		OnMessage: box.on, Logger: testLogger(t, name),
	}.with(opts))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Connect(ctx))
	return c, box
}

func (o Options) with(fs []func(*Options)) Options {
	for _, f := range fs {
		f(&o)
	}
	return o
}

// queue reads a user's whole sync queue with a raw connection of a new device.
func queue(t *testing.T, node, user string) []*parleypb.Message {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	s, err := Login(ctx, node, user, testPassword, "")
	require.NoError(t, err)
	conn, err := Dial(ctx, node, s.Token, wire.JSON)
	require.NoError(t, err)
	defer conn.Drop()
	var out []*parleypb.Message
	after := uint64(0)
	for {
		require.NoError(t, conn.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}}))
		for {
			f, err := conn.Read(30 * time.Second)
			require.NoError(t, err)
			if m := f.GetMessage(); m != nil {
				out = append(out, m)
				continue
			}
			if s := f.GetSynced(); s != nil {
				if !s.More {
					return out
				}
				after = s.UpTo
				break
			}
		}
	}
}

// countByClientID counts the messages of a queue per client id.
func countByClientID(msgs []*parleypb.Message) map[string]int {
	n := map[string]int{}
	for _, m := range msgs {
		n[m.ClientId]++
	}
	return n
}

// goroutinesBack waits until the goroutine count is back to base.
func goroutinesBack(t *testing.T, base int) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		http.DefaultClient.CloseIdleConnections() // Register's connection
		if n := runtime.NumGoroutine(); n > base {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, base, buf)
		}
		return nil
	})
}

// Two clients exchange 200 messages, four senders each: every message reaches
// both sides (the sender's copy too) once, in seq order and in message id order,
// and each sender's messages in the order it sent them.
func TestExchange(t *testing.T) {
	for _, enc := range []wire.Encoding{wire.JSON, wire.Proto} {
		t.Run(enc.String(), func(t *testing.T) {
			n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig)
			base := runtime.NumGoroutine()
			alice, aliceBox := newClient(t, "alice", []string{n.URL}, enc)
			bob, bobBox := newClient(t, "bob", []string{n.URL}, enc)

			const senders, each = 4, 25
			ctx := testenv.Context(t, 60*time.Second)
			var wg sync.WaitGroup
			ids := make([][]int64, 2*senders) // per sender goroutine, in send order
			errs := make(chan error, 2*senders)
			for g := range 2 * senders {
				from, to := alice, bob.UserID()
				if g%2 == 1 {
					from, to = bob, alice.UserID()
				}
				wg.Go(func() {
					for i := range each {
						id, err := from.Send(ctx, to, fmt.Sprintf("g%d m%d", g, i))
						if err != nil {
							errs <- err
							return
						}
						ids[g] = append(ids[g], id)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}

			const total = 2 * senders * each
			for _, box := range []*inbox{aliceBox, bobBox} {
				box.waitCount(total, 30*time.Second)
			}
			time.Sleep(200 * time.Millisecond) // nothing more may come
			for _, box := range []*inbox{aliceBox, bobBox} {
				msgs := box.snapshot()
				require.Len(t, msgs, total)
				pos := map[int64]int{}
				for i, m := range msgs {
					if i > 0 {
						require.Greater(t, m.ID, msgs[i-1].ID, "conversation order is message id order")
					}
					pos[m.ID] = i
				}
				for g := range ids {
					require.Len(t, ids[g], each)
					for i, id := range ids[g] {
						p, ok := pos[id]
						require.True(t, ok, "message %d of sender %d delivered", i, g)
						if i > 0 {
							require.Greater(t, p, pos[ids[g][i-1]], "sender %d's order", g)
						}
					}
				}
			}

			// Acknowledged: the cursors reach the end of the queues.
			testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
				for _, c := range []*Client{alice, bob} {
					if cur, _ := c.Cursor(); cur != total {
						return fmt.Errorf("%s cursor %d", c.UserID(), cur)
					}
				}
				return nil
			})

			require.NoError(t, alice.Close())
			require.NoError(t, bob.Close())
			_, err := alice.Send(ctx, bob.UserID(), "after close")
			require.ErrorIs(t, err, ErrClosed)
			goroutinesBack(t, base)
		})
	}
}

// hostsGrain reports whether a node's admin endpoint lists the grain.
func hostsGrain(t *testing.T, n *testenv.Node, grain string) bool {
	t.Helper()
	res, err := http.Get(n.AdminURL + "/admin/grains?node=self&limit=10000")
	require.NoError(t, err)
	defer res.Body.Close()
	var body struct {
		Grains []struct {
			ID string `json:"grain"`
		} `json:"grains"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	for _, g := range body.Grains {
		if g.ID == grain {
			return true
		}
	}
	return false
}

// activeMembers is the member count a node's admin endpoint reports.
func activeMembers(n *testenv.Node) (int, error) {
	res, err := http.Get(n.AdminURL + "/admin/members")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var body struct {
		Members []json.RawMessage `json:"members"`
	}
	err = json.NewDecoder(res.Body).Decode(&body)
	return len(body.Members), err
}

// A node is killed while alice sends to bob: every Send returns a message id,
// bob gets each message once, and bob's queue holds each client id once (the
// sends repeated with the same id made no second message).
//
// Both clients run with the quiet-connection resync off (ResyncInterval -1): a
// connection whose user grain was on the killed node must get its live pushes from
// the grain's next activation (it watches the activation and re-attaches).
func TestFailover(t *testing.T) {
	// alice is on node 0 and moves to node 1 (round robin); bob is on node 1, with
	// his user grain on node 0.
	t.Run("sender's node", func(t *testing.T) {
		failover(t, 0, func(t *testing.T, n0 *testenv.Node, alice, bob *Client) bool {
			return hostsGrain(t, n0, "User/"+bob.UserID())
		})
	})
	// Both are on node 1, and their conversation's grain on node 0: the sends in
	// flight are answered unavailable (or time out) and are sent again.
	t.Run("conversation's node", func(t *testing.T) {
		failover(t, 1, func(t *testing.T, n0 *testenv.Node, alice, bob *Client) bool {
			return hostsGrain(t, n0, "Conversation/"+convid.DirectID(alice.UserID(), bob.UserID()))
		})
	})
}

// failover connects alice to node aliceNode first and bob to node 1 first, picks
// a bob for which placed holds (after alice sent him "hello"), sends, and kills
// node 0 a quarter of the way.
func failover(t *testing.T, aliceNode int, placed func(t *testing.T, n0 *testenv.Node, alice, bob *Client) bool) {
	cl := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 2, 2)
	n0, n1 := cl.Nodes[0], cl.Nodes[1]
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for i, n := range cl.Nodes {
			if got, err := activeMembers(n); err != nil || got != 2 {
				return fmt.Errorf("node %d sees %d members (%v)", i, got, err)
			}
		}
		return nil
	})
	ctx := testenv.Context(t, 120*time.Second)
	resync := func(o *Options) { o.ResyncInterval = -1 }
	nodes := []string{n0.URL, n1.URL}
	alice, _ := newClient(t, "alice", []string{nodes[aliceNode], nodes[1-aliceNode]}, wire.JSON, resync)
	var (
		bob    *Client
		bobBox *inbox
	)
	for range 30 {
		bob, bobBox = newClient(t, "bob", []string{n1.URL, n0.URL}, wire.JSON, resync)
		_, err := alice.Send(ctx, bob.UserID(), "hello")
		require.NoError(t, err)
		if placed(t, n0, alice, bob) {
			break
		}
		require.NoError(t, bob.Close())
		bob = nil
	}
	require.NotNil(t, bob, "no bob with the wanted grain placement")
	require.Equal(t, nodes[aliceNode], alice.Node())
	require.Equal(t, n1.URL, bob.Node())

	const senders, each = 4, 40
	const total = senders*each + 1 // and hello
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		ids   = map[int64]bool{}
		done  int
		errs  []error
		kill  = make(chan struct{})
		once  sync.Once
		start = time.Now()
	)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				id, err := alice.Send(ctx, bob.UserID(), fmt.Sprintf("g%d m%d", g, i))
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ids[id] = true
					if done++; done == senders*each/4 {
						once.Do(func() { close(kill) })
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	<-kill
	n0.Kill()
	t.Logf("node 0 killed after %v", time.Since(start))
	wg.Wait()
	t.Logf("all sends answered after %v", time.Since(start))
	require.Empty(t, errs)
	require.Len(t, ids, senders*each, "distinct message ids")
	require.Equal(t, n1.URL, alice.Node(), "alice is on node 1")

	bobBox.waitCount(total, 60*time.Second)
	t.Logf("bob has everything after %v", time.Since(start))
	time.Sleep(200 * time.Millisecond)
	msgs := bobBox.snapshot()
	require.Len(t, msgs, total)
	require.Equal(t, "hello", msgs[0].Text)
	for _, m := range msgs[1:] {
		require.True(t, ids[m.ID], "message %d was answered sent", m.ID)
	}

	// The server side: one entry per client id in bob's queue.
	q := queue(t, n1.URL, bob.UserID())
	require.Len(t, q, total)
	for id, n := range countByClientID(q) {
		require.Equal(t, 1, n, "client id %s", id)
	}
}

// Sending one client id again (concurrently, from another Client of the same
// user, after the first answer) returns the first message id; the recipient's
// queue holds it once. The same id to another recipient is a new message.
func TestSendIDIdempotent(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig)
	alice, _ := newClient(t, "alice", []string{n.URL}, wire.JSON)
	bob, bobBox := newClient(t, "bob", []string{n.URL}, wire.Proto)
	carol, _ := newClient(t, "carol", []string{n.URL}, wire.JSON)
	ctx := testenv.Context(t, 60*time.Second)

	// A second device of alice.
	alice2, err := New(Options{Nodes: []string{n.URL}, Username: alice.UserID(), Password: testPassword})
	require.NoError(t, err)
	t.Cleanup(func() { _ = alice2.Close() })

	const repeats = 8
	got := make([]int64, 2*repeats)
	errs := make([]error, 2*repeats)
	var wg sync.WaitGroup
	for i := range 2 * repeats {
		from := alice
		if i%2 == 1 {
			from = alice2
		}
		wg.Go(func() {
			got[i], errs[i] = from.SendID(ctx, "dup-1", bob.UserID(), fmt.Sprintf("try %d", i))
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, id := range got {
		require.Equal(t, got[0], id)
	}
	again, err := alice.SendID(ctx, "dup-1", bob.UserID(), "once more")
	require.NoError(t, err)
	require.Equal(t, got[0], again)

	other, err := alice.SendID(ctx, "dup-1", carol.UserID(), "to carol")
	require.NoError(t, err)
	require.NotEqual(t, got[0], other)

	// Auto ids are unique: two Sends with the same text are two messages.
	a, err := alice.Send(ctx, bob.UserID(), "same text")
	require.NoError(t, err)
	b, err := alice.Send(ctx, bob.UserID(), "same text")
	require.NoError(t, err)
	require.NotEqual(t, a, b)

	bobBox.waitCount(3, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	require.Len(t, bobBox.snapshot(), 3)
	counts := countByClientID(queue(t, n.URL, bob.UserID()))
	require.Equal(t, 1, counts["dup-1"])
	require.Len(t, counts, 3)

	// Errors that sending again cannot fix come back as *SendError.
	_, err = alice.Send(ctx, "nobody-"+testenv.Name("x"), "hello?")
	var se *SendError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "not_found", se.Code)
	_, err = alice.Send(ctx, alice.UserID(), "to myself")
	require.ErrorAs(t, err, &se)
	require.Equal(t, "bad_request", se.Code)
}

// The connection is cut (no close frame) again and again while messages arrive:
// the client reconnects, syncs from its cursor and hands out everything once, in
// order; a restarted client with the saved cursor gets only what came later.
func TestReconnectResumesFromCursor(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig)
	alice, _ := newClient(t, "alice", []string{n.URL}, wire.JSON)
	bob, bobBox := newClient(t, "bob", []string{n.URL}, wire.JSON)
	ctx := testenv.Context(t, 60*time.Second)

	const count = 150
	stop := make(chan struct{})
	var cutter sync.WaitGroup
	cutter.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			bob.mu.Lock()
			if cs := bob.conn; cs != nil {
				_ = cs.conn.Drop()
			}
			bob.mu.Unlock()
		}
	})
	for i := range count {
		_, err := alice.Send(ctx, bob.UserID(), fmt.Sprintf("m%d", i))
		require.NoError(t, err)
	}
	close(stop)
	cutter.Wait()
	bobBox.waitCount(count, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	msgs := bobBox.snapshot()
	require.Len(t, msgs, count)
	for i, m := range msgs {
		require.Equal(t, fmt.Sprintf("m%d", i), m.Text)
	}

	// The device's stored cursor follows (asynchronously), and a new Client of
	// that device with the saved cursor gets only what comes next.
	cursor, known := bob.Cursor()
	require.True(t, known)
	require.EqualValues(t, count, cursor)
	device := bob.DeviceID()
	require.NotEmpty(t, device)
	require.NoError(t, bob.Close())
	_, err := alice.Send(ctx, bob.UserID(), "later")
	require.NoError(t, err)

	box := &inbox{t: t}
	bob2, err := New(Options{Nodes: []string{n.URL}, Username: bob.UserID(), Password: testPassword,
		Device: device, Cursor: &cursor, OnMessage: box.on})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bob2.Close() })
	require.NoError(t, bob2.Connect(ctx))
	box.waitCount(1, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	later := box.snapshot()
	require.Len(t, later, 1)
	require.Equal(t, "later", later[0].Text)
	require.EqualValues(t, count+1, later[0].Seq)
}

// A refused login ends Connect at once, and Sends fail with it.
func TestWrongPassword(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig)
	name := testenv.Name("eve")
	ctx := testenv.Context(t, 30*time.Second)
	require.NoError(t, Register(ctx, n.URL, name, testPassword))
	c, err := New(Options{Nodes: []string{n.URL}, Username: name, Password: "not the password"})
	require.NoError(t, err)
	defer c.Close()
	err = c.Connect(ctx)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusUnauthorized, ae.Status)
	_, err = c.Send(ctx, "someone", "hi")
	require.Error(t, err)
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

// Connect keeps trying while no node answers, and succeeds when one comes up.
func TestConnectWaitsForNode(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig)
	name := testenv.Name("dora")
	ctx := testenv.Context(t, 60*time.Second)
	require.NoError(t, Register(ctx, n.URL, name, testPassword))
	n.Kill()
	c, err := New(Options{Nodes: []string{n.URL}, Username: name, Password: testPassword, Logger: testLogger(t, name)})
	require.NoError(t, err)
	defer c.Close()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, c.Connect(short), context.DeadlineExceeded)
	n.Restart()
	require.NoError(t, c.Connect(ctx))
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 50 * time.Millisecond, Max: 2 * time.Second}
	require.Equal(t, 50*time.Millisecond, b.Delay(0))
	require.Equal(t, 100*time.Millisecond, b.Delay(1))
	require.Equal(t, 2*time.Second, b.Delay(10))
	require.Equal(t, 2*time.Second, b.Delay(1000))
	b.Jitter = 0.2
	for range 100 {
		d := b.Delay(3)
		require.GreaterOrEqual(t, d, 320*time.Millisecond)
		require.LessOrEqual(t, d, 480*time.Millisecond)
	}
}

func TestIDSet(t *testing.T) {
	s := newIDSet(3)
	for _, id := range []int64{1, 2, 3} {
		require.True(t, s.add(id))
	}
	require.False(t, s.add(2))
	require.True(t, s.add(4)) // forgets 1
	require.True(t, s.add(1))
	require.False(t, s.add(4))
}
