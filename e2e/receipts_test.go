package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
)

func readFrame(conv string, upTo int64) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{Read: &parleypb.Read{Conversation: conv, UpTo: upTo}}}
}

func historyFrame(id, conv string) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{Id: id, Conversation: conv}}}
}

func (r *reader) receiptsLocked() []*parleypb.Receipt {
	var out []*parleypb.Receipt
	for _, f := range r.other {
		if x := f.GetReceipt(); x != nil {
			out = append(out, x)
		}
	}
	return out
}

func (r *reader) receipts() []*parleypb.Receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.receiptsLocked()
}

// waitReceipt waits until r has a receipt of user's with status at upTo or past it.
func (r *reader) waitReceipt(t *testing.T, what, conv, user, status string, upTo int64) {
	t.Helper()
	r.waitFor(t, 20*time.Second, what, func(r *reader) bool {
		return slices.ContainsFunc(r.receiptsLocked(), func(x *parleypb.Receipt) bool {
			return x.Conversation == conv && x.User == user && x.Status == status && x.UpTo >= upTo
		})
	})
}

type receiptsBody struct {
	Receipts []struct {
		User      string `json:"user"`
		Delivered string `json:"delivered"`
		Read      string `json:"read"`
	} `json:"receipts"`
	DeliveredToAll string `json:"deliveredToAll"`
	ReadByAll      string `json:"readByAll"`
}

// of returns user's delivered and read watermarks.
func (b receiptsBody) of(t *testing.T, user string) (delivered, read int64) {
	t.Helper()
	for _, r := range b.Receipts {
		if r.User == user {
			return id(t, r.Delivered), id(t, r.Read)
		}
	}
	t.Fatalf("no receipts of %s in %+v", user, b.Receipts)
	return 0, 0
}

func id(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err, "%q is no id", s)
	return v
}

// waitStored waits until GET .../receipts shows user's watermarks at delivered
// and read (a device's acknowledgements are written receipts.saveDelay after it).
func waitStored(t *testing.T, n *testenv.Node, s client.Session, conv, user string, delivered, read int64) {
	t.Helper()
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if d, rd := getReceipts(t, n, s, conv).of(t, user); d != delivered || rd != read {
			return fmt.Errorf("%s's receipts %d %d, want %d %d", user, d, rd, delivered, read)
		}
		return nil
	})
}

func getReceipts(t *testing.T, n *testenv.Node, s client.Session, conv string) receiptsBody {
	t.Helper()
	var b receiptsBody
	require.NoError(t, groupAPI(t, n, s, http.MethodGet, "/v1/conversations/"+conv+"/receipts", nil, &b))
	return b
}

// sendAll sends texts from c to user, waits for each sent (sending again with the
// same id, as a client does, while the answer is unavailable), and returns their ids.
func sendAll(t *testing.T, c *client.Conn, r *reader, to string, texts ...string) []int64 {
	t.Helper()
	ids := make([]int64, len(texts))
	for i, text := range texts {
		cid := fmt.Sprint("c-", time.Now().UnixNano(), "-", i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, _, errs0, _ := r.snapshot()
			errs := len(errs0)
			require.NoError(t, c.Write(sendFrame(cid, to, text)))
			r.waitFor(t, 20*time.Second, "sent "+cid, func(r *reader) bool { return r.sent[cid] != nil || len(r.errors) > errs })
			if r.sentID(cid) {
				break
			}
			e := r.errorOf(cid)
			require.NotNil(t, e, "an error frame for another frame")
			require.Equal(t, "unavailable", e.Code, "%v", e)
			require.True(t, time.Now().Before(deadline), "still unavailable: %v", e)
			time.Sleep(200 * time.Millisecond)
		}
		r.mu.Lock()
		ids[i] = r.sent[cid].MessageId
		r.mu.Unlock()
	}
	return ids
}

// Issue 11, acceptance 5: bob's delivered and read receipts reach both of alice's
// devices live; while alice is offline they are kept, and on reconnecting she finds
// them on the newest history page and in GET .../receipts; a read for a
// conversation bob is not in, or for a message id he does not have, is refused with
// an error frame and stored nowhere.
func TestReceiptsLiveAndAfterReconnect(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob, carol := newUser(t, n, "alice"), newUser(t, n, "bob"), newUser(t, n, "carol")
	alice2, bob2 := device(t, n, alice, ""), device(t, n, bob, "")
	conv := convid.DirectID(alice.UserID, bob.UserID)

	a1, a2, bc, b2 := dial(t, n, alice), dial(t, n, alice2), dial(t, n, bob), dial(t, n, bob2)
	rs := syncedReaders(t, a1, a2, bc, b2)
	r1, r2, br, b2r := rs[0], rs[1], rs[2], rs[3]
	ids := sendAll(t, a1, r1, bob.UserID, "one", "two", "three")
	br.waitFor(t, 20*time.Second, "bob has three", func(r *reader) bool { return len(r.messages) == 3 })

	// received up to seq 2: delivered up to the second message, on both devices.
	require.NoError(t, bc.Write(receivedFrame(2)))
	for i, r := range []*reader{r1, r2} {
		r.waitReceipt(t, fmt.Sprint("delivered on alice's device ", i+1), conv, bob.UserID, "delivered", ids[1])
	}
	require.NoError(t, bc.Write(readFrame(conv, ids[0])))
	for i, r := range []*reader{r1, r2} {
		r.waitReceipt(t, fmt.Sprint("read on alice's device ", i+1), conv, bob.UserID, "read", ids[0])
	}
	// bob's other device hears of his read (to clear its unread marks); the one
	// that read does not, and neither hears of bob's delivered.
	b2r.waitReceipt(t, "read on bob's other device", conv, bob.UserID, "read", ids[0])
	require.Len(t, b2r.receipts(), 1, "%v", b2r.receipts())
	require.Empty(t, br.receipts(), "the reading device is not told its own read")
	for _, x := range r1.receipts() {
		require.LessOrEqual(t, x.UpTo, ids[1], "no receipt past what bob acknowledged: %v", x)
	}

	// Refused: a conversation bob is not in, a message he does not have, another
	// conversation's message, an id that is no message.
	other := convid.DirectID(alice.UserID, carol.UserID)
	cc := dial(t, n, carol)
	cr := startReader(cc)
	syncNow(t, cc, cr, nil)
	carolIDs := sendAll(t, cc, cr, alice.UserID, "to alice")
	for _, bad := range []*parleypb.ClientFrame{
		readFrame(other, carolIDs[0]), // not bob's conversation
		readFrame(conv, carolIDs[0]),  // a message of another conversation
		readFrame(conv, ids[2]+1),     // no such message
	} {
		_, _, errs, _ := br.snapshot()
		before := len(errs)
		require.NoError(t, bc.Write(bad))
		br.waitFor(t, 10*time.Second, "refusal", func(r *reader) bool { return len(r.errors) > before })
		_, _, errs, _ = br.snapshot()
		e := errs[before]
		require.Contains(t, []string{"forbidden", "not_found"}, e.Code, "%v", e)
	}
	waitStored(t, n, alice, conv, bob.UserID, ids[1], ids[0]) // refused reads stored nothing
	for _, x := range getReceipts(t, n, carol, other).Receipts {
		require.NotEqual(t, bob.UserID, x.User, "bob's read of a conversation he is not in was stored")
	}
	var apiErr *client.APIError
	err := groupAPI(t, n, bob, http.MethodGet, "/v1/conversations/"+other+"/receipts", nil, &receiptsBody{})
	require.ErrorAs(t, err, &apiErr, "a non-member reads another conversation's receipts")
	require.Equal(t, http.StatusForbidden, apiErr.Status)

	// alice goes offline; bob receives and reads the rest.
	require.NoError(t, a1.Close())
	require.NoError(t, a2.Close())
	require.NoError(t, bc.Write(receivedFrame(3)))
	require.NoError(t, bc.Write(readFrame(conv, ids[2])))
	waitStored(t, n, bob, conv, bob.UserID, ids[2], ids[2])
	a3 := dial(t, n, alice)
	r3 := startReader(a3)
	syncNow(t, a3, r3, nil)
	require.NoError(t, a3.Write(historyFrame("h1", conv)))
	r3.waitFor(t, 20*time.Second, "history", func(r *reader) bool { return len(r.history) == 1 })
	var got []string
	for _, x := range r3.lastHistory().Receipts {
		got = append(got, fmt.Sprint(x.User, " ", x.Status, " ", x.UpTo))
	}
	require.ElementsMatch(t, []string{bob.UserID + " delivered " + fmt.Sprint(ids[2]), bob.UserID + " read " + fmt.Sprint(ids[2])}, got,
		"the newest history page carries what alice missed")
	b := getReceipts(t, n, alice, conv)
	require.Equal(t, fmt.Sprint(ids[2]), b.DeliveredToAll)
	require.Equal(t, fmt.Sprint(ids[2]), b.ReadByAll)
	d, rd := b.of(t, alice.UserID)
	require.Equal(t, [2]int64{0, 0}, [2]int64{d, rd}, "alice's devices acknowledged nothing")
}

func (r *reader) lastHistory() *parleypb.History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.history[len(r.history)-1]
}

// holder returns the index of the node, of those not dead, whose admin endpoint
// lists grain.
func holder(t *testing.T, c *testenv.Cluster, dead int, grain string) int {
	t.Helper()
	at := -1
	testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		for i, n := range c.Nodes {
			if i != dead && slices.ContainsFunc(activeGrains(t, n), func(g string) bool { return strings.HasSuffix(g, grain) }) {
				at = i
				return nil
			}
		}
		return fmt.Errorf("no node holds %s", grain)
	})
	return at
}

// Issue 11, acceptance 5 (durability): in a 3-node cluster, receipts stored before
// a SIGKILL of the node holding alice's user grain are all there afterwards, and
// receipts made after her grain moved to another node reach her live.
func TestReceiptsSurviveKillAndGrainMove(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 3, 3)
	waitMembers(t, c, 3)
	alice, bob := newUser(t, c.Nodes[0], "alice"), newUser(t, c.Nodes[0], "bob")
	conv := convid.DirectID(alice.UserID, bob.UserID)
	ac := dial(t, c.Nodes[0], alice)
	ar := startReader(ac)
	syncNow(t, ac, ar, nil)
	ids := sendAll(t, ac, ar, bob.UserID, "one", "two")

	// The victim: the node holding alice's user grain. Neither client is on it, so
	// both keep their sockets while the grains move.
	victim := holder(t, c, -1, "User/"+alice.UserID)
	if victim == 0 { // alice's socket is on node 0: move her to another node
		require.NoError(t, ac.Close())
		ac = dial(t, c.Nodes[1], alice)
		ar = startReader(ac)
		syncNow(t, ac, ar, nil)
	}
	aliceNode := 0
	if victim == 0 {
		aliceNode = 1
	}
	bobNode := 3 - victim - aliceNode // the third node
	bc := dial(t, c.Nodes[bobNode], bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	require.NoError(t, bc.Write(receivedFrame(2)))
	require.NoError(t, bc.Write(readFrame(conv, ids[0])))
	ar.waitReceipt(t, "read before the kill", conv, bob.UserID, "read", ids[0])
	ar.waitReceipt(t, "delivered before the kill", conv, bob.UserID, "delivered", ids[1])

	n := c.Nodes[aliceNode]
	waitStored(t, n, alice, conv, bob.UserID, ids[1], ids[0])
	c.Nodes[victim].Kill()
	b := getReceipts(t, n, alice, conv)
	d, rd := b.of(t, bob.UserID)
	require.Equal(t, [2]int64{ids[1], ids[0]}, [2]int64{d, rd}, "receipts stored before the kill")

	// After the move (once the survivors' view has lost the dead node: until then a
	// receipt told to a grain there is lost, and found on the next history page or
	// GET .../receipts): a new message, bob's receipts for it reach alice live.
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for _, i := range []int{aliceNode, bobNode} {
			if got := membersOf(t, c.Nodes[i]); got != 2 {
				return fmt.Errorf("node %d sees %d members", i, got)
			}
		}
		return nil
	})
	more := sendAll(t, ac, ar, bob.UserID, "three")
	br.waitFor(t, 30*time.Second, "bob has three", func(r *reader) bool { return len(r.messages) >= 3 })
	require.NoError(t, bc.Write(receivedFrame(3)))
	require.NoError(t, bc.Write(readFrame(conv, more[0])))
	// Told within one receipts.tellDelay, the read covers the delivered (read
	// implies delivered): one frame.
	ar.waitReceipt(t, "read after the move", conv, bob.UserID, "read", more[0])
	require.NotEqual(t, victim, holder(t, c, victim, "User/"+alice.UserID), "alice's grain moved")
	waitStored(t, c.Nodes[bobNode], bob, conv, bob.UserID, more[0], more[0])
}

// Issue 11, acceptance 6: in a 20-member group the sender sees each member's
// delivered and read receipts live, and the group's "delivered to all" and "read by
// all" move only when the last member does.
func TestGroupReceiptsByAll(t *testing.T) {
	n := startNode(t, fastConfig+"receipts:\n  saveDelay: 10ms\n")
	alice := newUser(t, n, "alice")
	var members []client.Session
	for range 19 {
		members = append(members, newUser(t, n, "m"))
	}
	g := createGroup(t, n, alice, members)
	conv := convid.GroupID(g)
	ac := dial(t, n, alice)
	ar := startReader(ac)
	syncNow(t, ac, ar, nil)
	conns := make([]*client.Conn, len(members))
	readers := make([]*reader, len(members))
	for i, m := range members {
		conns[i] = dial(t, n, m)
		readers[i] = startReader(conns[i])
		syncNow(t, conns[i], readers[i], nil)
	}
	cid := "g-1"
	require.NoError(t, ac.Write(groupSend(cid, g, "hello all")))
	ar.waitFor(t, 20*time.Second, "sent", func(r *reader) bool { return r.sent[cid] != nil })
	ar.mu.Lock()
	msg := ar.sent[cid].MessageId
	ar.mu.Unlock()
	before := getReceipts(t, n, alice, conv)
	require.Less(t, id(t, before.DeliveredToAll), msg)

	for _, status := range []string{"delivered", "read"} {
		for i, m := range members {
			r := readers[i]
			r.waitFor(t, 20*time.Second, "the message", func(r *reader) bool { return len(r.messages) == 1 })
			if status == "delivered" {
				msgs, _, _, _ := r.snapshot()
				require.NoError(t, conns[i].Write(receivedFrame(msgs[0].Seq)))
			} else {
				require.NoError(t, conns[i].Write(readFrame(conv, msg)))
			}
			ar.waitReceipt(t, fmt.Sprint(status, " by member ", i), conv, m.UserID, status, msg)
			want := [2]int64{msg, msg}
			if status == "delivered" {
				_, want[1] = getReceipts(t, n, alice, conv).of(t, m.UserID)
			}
			waitStored(t, n, alice, conv, m.UserID, want[0], want[1])
			b := getReceipts(t, n, alice, conv)
			all := b.DeliveredToAll
			if status == "read" {
				all = b.ReadByAll
			}
			if i < len(members)-1 {
				require.Less(t, id(t, all), msg, "%s by all moved with %d of %d members", status, i+1, len(members))
			} else {
				require.Equal(t, msg, id(t, all), "%s by all after the last member", status)
			}
		}
	}
	require.Len(t, getReceipts(t, n, alice, conv).Receipts, 20, "one row per member")
	require.NoError(t, ac.Write(historyFrame("h", conv)))
	ar.waitFor(t, 20*time.Second, "history", func(r *reader) bool { return len(r.history) == 1 })
	var got []string
	for _, x := range ar.lastHistory().Receipts {
		got = append(got, fmt.Sprint(x.All, " ", x.Status, " ", x.UpTo))
	}
	require.ElementsMatch(t, []string{fmt.Sprint("true delivered ", msg), fmt.Sprint("true read ", msg)}, got)
}

// receipts.saveDelay: a device's acknowledgements are told live at once, written
// together once the delay is over, and written at once when the connection ends.
func TestReceiptSaveDelay(t *testing.T) {
	n := startNode(t, fastConfig+"receipts:\n  saveDelay: 3s\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	conv := convid.DirectID(alice.UserID, bob.UserID)
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)
	ids := sendAll(t, ac, ar, bob.UserID, "one", "two")
	br.waitFor(t, 20*time.Second, "bob has two", func(r *reader) bool { return len(r.messages) == 2 })

	start := time.Now()
	require.NoError(t, bc.Write(receivedFrame(1)))
	require.NoError(t, bc.Write(receivedFrame(2)))
	ar.waitReceipt(t, "delivered, live", conv, bob.UserID, "delivered", ids[1])
	d, _ := getReceipts(t, n, alice, conv).of(t, bob.UserID)
	require.Less(t, time.Since(start), 3*time.Second, "the checks ran within the delay")
	require.Zero(t, d, "not written before the delay is over")
	waitStored(t, n, alice, conv, bob.UserID, ids[1], 0)
	require.GreaterOrEqual(t, time.Since(start), 3*time.Second, "written once the delay was over")

	more := sendAll(t, ac, ar, bob.UserID, "three")
	br.waitFor(t, 20*time.Second, "bob has three", func(r *reader) bool { return len(r.messages) == 3 })
	start = time.Now() // the next write is due receipts.saveDelay after this
	require.NoError(t, bc.Write(receivedFrame(3)))
	ar.waitReceipt(t, "delivered three, live", conv, bob.UserID, "delivered", more[0])
	// A read of a message this connection wrote is checked there: told live at
	// once, and written with the cursor once the delay is over.
	require.NoError(t, bc.Write(readFrame(conv, ids[1])))
	ar.waitReceipt(t, "read, live", conv, bob.UserID, "read", ids[1])
	_, rd := getReceipts(t, n, alice, conv).of(t, bob.UserID)
	require.Less(t, time.Since(start), 3*time.Second, "the checks ran within the delay")
	require.Zero(t, rd, "the read is not written before the delay is over")
	waitStored(t, n, alice, conv, bob.UserID, more[0], ids[1])
	require.GreaterOrEqual(t, time.Since(start), 3*time.Second, "written once the delay was over")

	require.NoError(t, bc.Write(readFrame(conv, more[0])))
	ar.waitReceipt(t, "read three, live", conv, bob.UserID, "read", more[0])
	closed := time.Now()
	require.NoError(t, bc.Close())
	waitStored(t, n, alice, conv, bob.UserID, more[0], more[0])
	require.Less(t, time.Since(closed), 2*time.Second, "written when the connection ended, not after the delay")
}

// receipts.tellDelay: the receipts due to one user are gathered from the first for
// the delay and told together, one frame per (conversation, member, status) at its
// highest.
func TestReceiptTellDelay(t *testing.T) {
	const delay = 2 * time.Second
	n := startNode(t, fastConfig+"receipts:\n  saveDelay: 10ms\n  tellDelay: 2s\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	bob2 := device(t, n, bob, "")
	conv := convid.DirectID(alice.UserID, bob.UserID)
	ac, bc, b2 := dial(t, n, alice), dial(t, n, bob), dial(t, n, bob2)
	rs := syncedReaders(t, ac, bc, b2)
	ar, br, b2r := rs[0], rs[1], rs[2]
	ids := sendAll(t, ac, ar, bob.UserID, "one", "two", "three")
	br.waitFor(t, 20*time.Second, "bob has three", func(r *reader) bool { return len(r.messages) == 3 })

	start := time.Now()
	for seq := range uint64(3) {
		require.NoError(t, bc.Write(receivedFrame(seq+1)))
	}
	ar.waitReceipt(t, "delivered", conv, bob.UserID, "delivered", ids[2])
	require.GreaterOrEqual(t, time.Since(start), delay, "told before the delay was over")
	require.Len(t, ar.receipts(), 1, "three acknowledgements within the delay are one receipt: %v", ar.receipts())

	start = time.Now()
	require.NoError(t, bc.Write(readFrame(conv, ids[1])))
	ar.waitReceipt(t, "read", conv, bob.UserID, "read", ids[1])
	b2r.waitReceipt(t, "read on bob's other device", conv, bob.UserID, "read", ids[1])
	require.GreaterOrEqual(t, time.Since(start), delay, "the next receipt waits the delay again")
	require.Len(t, ar.receipts(), 2, "%v", ar.receipts())
	require.Len(t, b2r.receipts(), 1, "%v", b2r.receipts())
	require.Empty(t, br.receipts(), "the reading device is not told its own read")
}
