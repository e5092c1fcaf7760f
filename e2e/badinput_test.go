package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

const limitsConfig = `
auth:
  bcryptCost: 4
limits:
  maxFrameBytes: 2048
  maxTextBytes: 100
  frameRate: 100000
  frameBurst: 100000
`

// Acceptance 6: each bad input gets the documented error or close code, the node
// stays up, and messages sent before and after are intact.
func TestBadInput(t *testing.T) {
	n := startNode(t, limitsConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	carol, dave := newUser(t, n, "carol"), newUser(t, n, "dave")
	json := func(s string) []byte { return []byte(s) }
	send := func(id, to, text string) []byte {
		return json(fmt.Sprintf(`{"type":"send","id":%q,"to":%q,"text":%q}`, id, to, text))
	}
	cases := []struct {
		name      string
		op        ws.OpCode
		payload   []byte
		wantCode  string // an error frame with this code...
		wantID    string // ...and this id
		wantClose int    // or the socket closed with this code
	}{
		{name: "unparsable json", payload: json(`{"type":"send",`), wantCode: "bad_request"},
		{name: "not an object", payload: json(`[1,2]`), wantCode: "bad_request"},
		{name: "unknown type", payload: json(`{"type":"dance","id":"u1"}`), wantCode: "bad_request", wantID: "u1"},
		{name: "missing text", payload: json(`{"type":"send","id":"m1","to":"` + bob.UserID + `"}`), wantCode: "bad_request", wantID: "m1"},
		{name: "missing recipient", payload: json(`{"type":"send","id":"m2","text":"hi"}`), wantCode: "bad_request", wantID: "m2"},
		{name: "missing id", payload: json(`{"type":"send","to":"` + bob.UserID + `","text":"hi"}`), wantCode: "bad_request"},
		{name: "id too long", payload: send(strings.Repeat("x", 65), bob.UserID, "hi"), wantCode: "bad_request", wantID: strings.Repeat("x", 65)},
		{name: "NUL in id (review finding 3)", payload: json(`{"type":"send","id":"x\u0000","to":"` + bob.UserID + `","text":"hi"}`),
			wantCode: "bad_request", wantID: "x\x00"},
		{name: "text too long", payload: send("long", bob.UserID, strings.Repeat("é", 51)), wantCode: "too_large", wantID: "long"},
		{name: "unknown user", payload: send("ghost", "nobody-here", "hi"), wantCode: "not_found", wantID: "ghost"},
		{name: "bad user id", payload: send("bad", "Not A User", "hi"), wantCode: "bad_request", wantID: "bad"},
		{name: "to self", payload: send("self", alice.UserID, "hi"), wantCode: "bad_request", wantID: "self"},
		{name: "binary frame on json", op: ws.OpBinary, payload: []byte{1, 2, 3}, wantCode: "bad_request"},
		{name: "wrong field type", payload: json(`{"type":"received","upTo":true}`), wantCode: "bad_request"},
		{name: "history of others", payload: json(`{"type":"history","id":"h1","conversation":"` +
			convid.DirectID(carol.UserID, dave.UserID) + `"}`), wantCode: "forbidden", wantID: "h1"},
		{name: "history bad conversation", payload: json(`{"type":"history","id":"h2","conversation":"nope"}`), wantCode: "bad_request", wantID: "h2"},
		{name: "frame over the size limit", payload: send("big", bob.UserID, strings.Repeat("a", 3000)), wantClose: 1009},
	}

	var good []string
	conn := dial(t, n, alice)
	r := startReader(conn)
	sendGood := func(id string) {
		t.Helper()
		require.NoError(t, conn.Write(sendFrame(id, bob.UserID, "good "+id)))
		r.waitFor(t, 10*time.Second, "sent "+id, func(r *reader) bool { return r.sent[id] != nil })
		good = append(good, id)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sendGood(fmt.Sprint("before-", i))
			op := tc.op
			if op == 0 {
				op = ws.OpText
			}
			_, _, errsBefore, _ := r.snapshot()
			require.NoError(t, conn.WriteRaw(op, tc.payload))
			if tc.wantClose != 0 {
				<-r.done
				require.True(t, client.IsClose(r.err, tc.wantClose), "closed with %v", r.err)
				conn = dial(t, n, alice)
				r = startReader(conn)
			} else {
				r.waitFor(t, 10*time.Second, "error frame", func(r *reader) bool { return len(r.errors) > len(errsBefore) })
				_, _, errs, _ := r.snapshot()
				e := errs[len(errsBefore)]
				require.Equal(t, tc.wantCode, e.Code, e.Message)
				require.Equal(t, tc.wantID, e.Id)
				require.NotEmpty(t, e.Message)
			}
			sendGood(fmt.Sprint("after-", i))
		})
	}

	// A bad token never gets a socket.
	_, err := client.Dial(testenv.Context(t, 10*time.Second), n.URL, alice.Token+"x", wire.JSON)
	var status ws.StatusError
	require.True(t, errors.As(err, &status), "rejected upgrade: %v", err)
	require.Equal(t, 401, int(status))

	// Everything good arrived once, in order; nothing bad did.
	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil) // sent comes before fan-out: the rest may arrive live
	br.waitFor(t, 10*time.Second, "good messages", func(r *reader) bool { return len(r.messages) >= len(good) })
	time.Sleep(200 * time.Millisecond)
	msgs, _, _, _ := br.snapshot()
	require.Len(t, msgs, len(good))
	requireStream(t, msgs, 1)
	for i, m := range msgs {
		require.Equal(t, good[i], m.ClientId)
	}
}

// Past the frame rate limit the socket closes with 1008; what was accepted stays.
func TestRateLimitCloses(t *testing.T) {
	n := startNode(t, `
auth:
  bcryptCost: 4
limits:
  frameRate: 5
  frameBurst: 10
`)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	conn := dial(t, n, alice)
	r := startReader(conn)
	require.NoError(t, conn.Write(sendFrame("kept", bob.UserID, "accepted")))
	r.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return r.sent["kept"] != nil })
	for range 50 {
		if conn.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}) != nil {
			break
		}
	}
	<-r.done
	require.True(t, client.IsClose(r.err, 1008), "closed with %v", r.err)

	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	br.waitFor(t, 10*time.Second, "the accepted message", func(r *reader) bool { return len(r.messages) >= 1 })
	time.Sleep(200 * time.Millisecond)
	msgs, _, _, _ := br.snapshot()
	require.Len(t, msgs, 1)
	require.Equal(t, "kept", msgs[0].ClientId)
}
