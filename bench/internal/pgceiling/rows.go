package pgceiling

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// idEpoch is the epoch of the snowflake-like message ids (2024-01-01 UTC).
var idEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// batch holds one statement's rows, column by column, as the INSERT's unnest
// arrays take them.
type batch struct {
	conversation []string
	version      []int64
	messageID    []int64
	sender       []string
	clientID     []string
	ts           []int64
	payload      [][]byte
	kind         []int16
}

func (b *batch) len() int { return len(b.conversation) }

func (b *batch) reset() {
	b.conversation, b.version, b.messageID = b.conversation[:0], b.version[:0], b.messageID[:0]
	b.sender, b.clientID, b.ts = b.sender[:0], b.clientID[:0], b.ts[:0]
	b.payload, b.kind = b.payload[:0], b.kind[:0]
}

// rowGen makes one writer's rows. Writers own disjoint conversations, so their
// keys never collide; each conversation's version goes up by one per row, and
// message ids increase and are unique across writers.
type rowGen struct {
	writer, writers int64
	convs           []string    // this writer's conversation ids
	members         [][2]string // the two users of each conversation
	versions        []int64     // last version written per conversation
	next            int         // the conversation of the next row
	seq             int64       // rows made so far
	idBase          int64       // ms since idEpoch << 22, as a snowflake id
	clientPrefix    string      // a uuid-shaped prefix; seq in hex completes it
	payload         []byte      // payloads are windows of this random buffer
	payloadBytes    int
}

// newRowGen makes the generator of writer w (0-based) of writers, owning
// conversations w, w+writers, w+2*writers, ... below total (at least one).
func newRowGen(w, writers, total, payloadBytes int) *rowGen {
	g := &rowGen{writer: int64(w), writers: int64(writers), payloadBytes: payloadBytes}
	for c := w; c < total || len(g.convs) == 0; c += writers {
		a, b := fmt.Sprintf("user%07d", 2*c), fmt.Sprintf("user%07d", 2*c+1)
		g.convs = append(g.convs, "dm:"+a+":"+b)
		g.members = append(g.members, [2]string{a, b})
	}
	g.versions = make([]int64, len(g.convs))
	g.idBase = time.Since(idEpoch).Milliseconds() << 22
	var r [10]byte
	_, _ = rand.Read(r[:])
	h := hex.EncodeToString(r[:])
	g.clientPrefix = h[:8] + "-" + h[8:12] + "-4" + h[12:15] + "-a" + h[15:18] + "-"
	g.payload = make([]byte, payloadBytes+256)
	_, _ = rand.Read(g.payload)
	return g
}

// fill replaces b's rows with the next n rows.
func (g *rowGen) fill(b *batch, n int) {
	b.reset()
	now := time.Now().UnixMilli()
	for range n {
		c := g.next
		g.next = (g.next + 1) % len(g.convs)
		g.versions[c]++
		off := int(g.seq % 256)
		b.conversation = append(b.conversation, g.convs[c])
		b.version = append(b.version, g.versions[c])
		b.messageID = append(b.messageID, g.idBase+g.seq*g.writers+g.writer)
		b.sender = append(b.sender, g.members[c][g.versions[c]%2])
		b.clientID = append(b.clientID, g.clientPrefix+strconv.FormatInt(g.seq, 16))
		b.ts = append(b.ts, now)
		b.payload = append(b.payload, g.payload[off:off+g.payloadBytes])
		b.kind = append(b.kind, 0)
		g.seq++
	}
}

// copySource feeds a batch to pgx CopyFrom (pgx.CopyFromSource). pgx encodes
// each row before asking for the next, so one values slice serves every row.
type copySource struct {
	b      *batch
	i      int
	values []any
}

func newCopySource(b *batch) *copySource {
	return &copySource{b: b, i: -1, values: make([]any, len(columns))}
}

// columns are the written columns, in the order of batch's fields.
var columns = []string{"conversation", "version", "message_id", "sender", "client_id", "ts", "payload", "kind"}

func (s *copySource) Next() bool { s.i++; return s.i < s.b.len() }

func (s *copySource) Values() ([]any, error) {
	b, i := s.b, s.i
	s.values[0], s.values[1], s.values[2] = b.conversation[i], b.version[i], b.messageID[i]
	s.values[3], s.values[4], s.values[5] = b.sender[i], b.clientID[i], b.ts[i]
	s.values[6], s.values[7] = b.payload[i], b.kind[i]
	return s.values, nil
}

func (s *copySource) Err() error { return nil }
