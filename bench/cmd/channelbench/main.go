// Command channelbench measures a channel's live fan-out on loopback (issue 13):
// one channel of -members members (bulk-loaded into PostgreSQL, then added through
// the REST API, -batch per call), -online of them connected to one node and
// following their channels; the owner posts at each of -rates posts/s (0: as fast
// as -window unanswered posts allow) for -duration. Each post's text carries its
// send time, so that every receiving socket times post -> delivery on the same
// clock. It reports, per rate: posts/s, deliveries/s, p50/p99/max post->delivery,
// deliveries missing or repeated, the node's CPU per delivery (-node-pid, from
// /proc), rows written per post (pg_stat_user_tables) and message rows per post,
// and its own CPU per frame received, as Markdown.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/parleychat/parley/bench/internal/loadgen"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

const password = "channel-bench-password"

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the node (loopback only)")
	db := flag.String("database-url", os.Getenv("DATABASE_URL"), "the node's PostgreSQL (members are bulk-loaded there)")
	members := flag.Int("members", 100000, "channel members, the owner included")
	online := flag.Int("online", 19000, "members connected (each process holds at most ~19,000 sockets)")
	batch := flag.Int("batch", 1000, "users per POST /v1/channels/{id}/members")
	rates := flag.String("rates", "1,10,0", "post rates to run in turn, posts/s (0: as fast as -window allows)")
	window := flag.Int("window", 16, "unanswered posts at most, at rate 0")
	duration := flag.Duration("duration", 20*time.Second, "each rate's measured time")
	nodePID := flag.Int("node-pid", 0, "the node's pid, for its CPU per delivery (0: not measured)")
	md := flag.String("md", "", "append the Markdown report to this file too")
	flag.Parse()
	if !strings.HasPrefix(*url, "http://127.") || *online > *members-1 || *online > 19500 {
		fail(errors.New("channelbench: -url must be loopback, -online < -members and at most 19,500"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	b := &bench{url: *url, db: *db, batch: *batch, window: *window}
	if err := b.setup(ctx, *members, *online); err != nil {
		fail(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "channel of %d members, %d online on one node (%s)\n\n", *members, *online, *url)
	out.WriteString("| rate (posts/s) | posts/s | deliveries/s | p50 | p99 | max | missing | repeated | node CPU / delivery | rows written / post | message rows / post | loadgen CPU / frame |\n")
	out.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range strings.Split(*rates, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil {
			fail(fmt.Errorf("channelbench: -rates: %w", err))
		}
		row, err := b.run(ctx, rate, *duration, *nodePID)
		if err != nil {
			fail(err)
		}
		out.WriteString(row)
		fmt.Fprint(os.Stderr, row)
	}
	fmt.Print(out.String())
	if *md != "" {
		f, err := os.OpenFile(*md, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(out.String())
			_ = f.Close()
		}
	}
	b.close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

type bench struct {
	url, db       string
	batch, window int
	owner         client.Session
	channel       string
	post          *client.Conn
	answered      chan struct{}
	readErr       chan error
	socks         []*receiver

	lat  hist
	seen atomic.Int64 // frames received
}

// receiver is one member's socket: it counts the channel's messages and times each.
type receiver struct {
	conn  io.ReadWriteCloser
	got   atomic.Int64
	dup   atomic.Int64
	last  int64 // the highest message id seen (read by the socket's goroutine only)
	ready chan struct{}
}

func (b *bench) setup(ctx context.Context, members, online int) error {
	prefix := fmt.Sprintf("ch%d", time.Now().Unix()%100000)
	owner := prefix + "-owner"
	if err := client.Register(ctx, b.url, owner, password); err != nil {
		return err
	}
	var err error
	if b.owner, err = client.Login(ctx, b.url, owner, password, ""); err != nil {
		return err
	}
	ids, err := b.bulkUsers(ctx, prefix, members-1)
	if err != nil {
		return err
	}
	var created struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if err := b.rest(ctx, http.MethodPost, "/v1/channels", map[string]any{"name": "bench"}, &created); err != nil {
		return err
	}
	b.channel = created.Channel.ID
	start := time.Now()
	if err := parallel(4, (len(ids)+b.batch-1)/b.batch, func(i int) error {
		return b.rest(ctx, http.MethodPost, "/v1/channels/"+b.channel+"/members",
			map[string]any{"users": ids[i*b.batch : min((i+1)*b.batch, len(ids))]}, nil)
	}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "added %d members in %s\n", len(ids), time.Since(start).Round(time.Millisecond))
	start = time.Now()
	b.socks = make([]*receiver, online)
	if err := parallel(32, online, func(i int) error {
		s, err := client.Login(ctx, b.url, ids[i], password, "")
		if err != nil {
			return err
		}
		r, err := b.dial(ctx, s.Token)
		b.socks[i] = r
		return err
	}); err != nil {
		return err
	}
	for _, r := range b.socks {
		select {
		case <-r.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	fmt.Fprintf(os.Stderr, "%d members online in %s\n", online, time.Since(start).Round(time.Millisecond))
	if b.post, err = client.Dial(ctx, b.url, b.owner.Token, wire.JSON); err != nil {
		return err
	}
	// The owner's socket has one reader for every run: sent answers, or the error
	// that ends the bench.
	b.answered, b.readErr = make(chan struct{}, 1<<16), make(chan error, 1)
	go func() {
		for {
			f, err := b.post.Read(5 * time.Minute)
			if err != nil {
				b.readErr <- err
				return
			}
			if f.GetSent() != nil {
				b.answered <- struct{}{}
			} else if e := f.GetError(); e != nil {
				b.readErr <- fmt.Errorf("channelbench: post refused: %s %s", e.Code, e.Message)
				return
			}
		}
	}()
	return nil
}

// bulkUsers writes accounts straight into the users table (one bcrypt hash at cost
// 4 for all), as an import would.
func (b *bench) bulkUsers(ctx context.Context, prefix string, n int) ([]string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), 4)
	if err != nil {
		return nil, err
	}
	pg, err := pgx.Connect(ctx, b.db)
	if err != nil {
		return nil, fmt.Errorf("channelbench: -database-url: %w", err)
	}
	defer pg.Close(ctx)
	ids := make([]string, n)
	rows := make([][]any, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%06d", prefix, i)
		rows[i] = []any{ids[i], ids[i], string(hash)}
	}
	_, err = pg.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "display_name", "password_hash"}, pgx.CopyFromRows(rows))
	return ids, err
}

func (b *bench) rest(ctx context.Context, method, path string, body, out any) error {
	p, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, bytes.NewReader(p))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.owner.Token)
	req.Header.Set("Content-Type", "application/json")
	return client.Do(req, out)
}

// dial connects a member, asks for its channels and reads its socket from then on.
func (b *bench) dial(ctx context.Context, token string) (*receiver, error) {
	conn, br, _, err := ws.Dialer{}.Dial(ctx, "ws"+strings.TrimPrefix(b.url, "http")+"/v1/ws?token="+token)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(clientFrame([]byte(`{"type":"channels"}`))); err != nil {
		return nil, err
	}
	r := &receiver{conn: conn, ready: make(chan struct{})}
	var src io.Reader = conn
	if br != nil {
		src = io.MultiReader(br, conn)
	}
	go b.read(r, src)
	return r, nil
}

// clientFrame masks payload as one client text frame.
func clientFrame(payload []byte) []byte {
	var buf bytes.Buffer
	f := ws.MaskFrameInPlace(ws.NewTextFrame(payload))
	_ = ws.WriteFrame(&buf, f)
	return buf.Bytes()
}

var (
	textKey = []byte(`"text":"t=`)
	idKey   = []byte(`"messageId":"`)
)

// read takes whole frames from src without decoding their JSON: the channels answer
// makes the socket ready; a message frame is timed by the send time in its text and
// counted once per id (ids grow, so one at or below the last is a repeat).
func (b *bench) read(r *receiver, src io.Reader) {
	buf := make([]byte, 32<<10)
	var have []byte
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		have = append(have, buf[:n]...)
		now := time.Now().UnixNano()
		for len(have) >= 2 {
			size, head := int(have[1]&0x7f), 2
			if size == 126 {
				if len(have) < 4 {
					break
				}
				size, head = int(have[2])<<8|int(have[3]), 4
			} else if size == 127 {
				if len(have) < 10 {
					break
				}
				size, head = int(uint64(have[6])<<24|uint64(have[7])<<16|uint64(have[8])<<8|uint64(have[9])), 10
			}
			if len(have) < head+size {
				break
			}
			b.frame(r, have[head:head+size], now)
			have = have[head+size:]
		}
		have = append(have[:0:0], have...)
	}
}

func (b *bench) frame(r *receiver, p []byte, now int64) {
	b.seen.Add(1)
	if bytes.HasPrefix(p, []byte(`{"type":"channels"`)) {
		close(r.ready)
		return
	}
	i := bytes.Index(p, textKey)
	j := bytes.Index(p, idKey)
	if i < 0 || j < 0 {
		return
	}
	sent, _ := strconv.ParseInt(string(p[i+len(textKey):i+len(textKey)+bytes.IndexByte(p[i+len(textKey):], '"')]), 10, 64)
	id, _ := strconv.ParseInt(string(p[j+len(idKey):j+len(idKey)+bytes.IndexByte(p[j+len(idKey):], '"')]), 10, 64)
	if id <= r.last {
		r.dup.Add(1)
		return
	}
	r.last = id
	r.got.Add(1)
	b.lat.add(time.Duration(now - sent))
}

// run posts at rate for d and reports one Markdown row.
func (b *bench) run(ctx context.Context, rate float64, d time.Duration, nodePID int) (string, error) {
	b.lat.reset()
	before := make([]int64, len(b.socks))
	for i, r := range b.socks {
		before[i] = r.got.Load()
	}
	dupBefore := b.dups()
	rowsBefore, msgRowsBefore, err := b.rows(ctx)
	if err != nil {
		return "", err
	}
	node0, _ := loadgen.ReadProc(nodePID)
	self0, seen0 := loadgen.SelfCPU(), b.seen.Load()
	answered, readErr := b.answered, b.readErr
	start := time.Now()
	posts, inFlight := 0, 0
	for time.Since(start) < d {
		if rate > 0 {
			if next := start.Add(time.Duration(float64(posts) / rate * float64(time.Second))); time.Until(next) > 0 {
				time.Sleep(time.Until(next))
			}
		} else {
			for inFlight >= b.window {
				<-answered
				inFlight--
			}
		}
		text := "t=" + strconv.FormatInt(time.Now().UnixNano(), 10)
		f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
			Id: fmt.Sprintf("p%d-%d", start.UnixNano(), posts), Channel: b.channel, Text: text}}}
		if err := b.post.Write(f); err != nil {
			return "", err
		}
		posts++
		inFlight++
		select {
		case err := <-readErr:
			return "", err
		default:
		}
	}
	elapsed := time.Since(start)
	for ; inFlight > 0; inFlight-- {
		select {
		case <-answered:
		case err := <-readErr:
			return "", err
		case <-time.After(30 * time.Second):
			return "", errors.New("channelbench: posts not answered")
		}
	}
	want := int64(posts) * int64(len(b.socks))
	deadline := time.Now().Add(30 * time.Second)
	var got int64
	for {
		got = 0
		for i, r := range b.socks {
			got += r.got.Load() - before[i]
		}
		if got >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lastAt := time.Since(start)
	self1, seen1 := loadgen.SelfCPU(), b.seen.Load()
	node1, _ := loadgen.ReadProc(nodePID)
	time.Sleep(11 * time.Second) // PostgreSQL's statistics lag up to 10 s
	rowsAfter, msgRowsAfter, err := b.rows(ctx)
	if err != nil {
		return "", err
	}
	nodeCPU := "n/a"
	if nodePID > 0 && got > 0 {
		nodeCPU = fmt.Sprintf("%.2f µs", (node1.CPUSec-node0.CPUSec)*1e6/float64(got))
	}
	label := strconv.FormatFloat(rate, 'f', -1, 64)
	if rate == 0 {
		label = fmt.Sprintf("as fast as it goes (window %d)", b.window)
	}
	p50, p99, pmax := b.lat.quantile(0.5), b.lat.quantile(0.99), b.lat.max()
	return fmt.Sprintf("| %s | %.1f | %.0f | %s | %s | %s | %d | %d | %s | %.2f | %.2f | %.2f µs |\n",
		label, float64(posts)/elapsed.Seconds(), float64(got)/lastAt.Seconds(), ms(p50), ms(p99), ms(pmax),
		want-got, b.dups()-dupBefore, nodeCPU, float64(rowsAfter-rowsBefore)/float64(posts),
		float64(msgRowsAfter-msgRowsBefore)/float64(posts),
		float64((self1-self0).Nanoseconds())/1e3/float64(max(seen1-seen0, 1))), nil
}

func (b *bench) dups() int64 {
	var n int64
	for _, r := range b.socks {
		n += r.dup.Load()
	}
	return n
}

// rows is what PostgreSQL has written (inserted, updated and deleted rows, every
// table), and the channel's message rows.
func (b *bench) rows(ctx context.Context) (all, msgs int64, err error) {
	pg, err := pgx.Connect(ctx, b.db)
	if err != nil {
		return 0, 0, err
	}
	defer pg.Close(ctx)
	err = pg.QueryRow(ctx, `SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables),
		(SELECT count(*) FROM conversation_events WHERE conversation = $1 AND kind = 0)`, "channel:"+b.channel).Scan(&all, &msgs)
	return all, msgs, err
}

func (b *bench) close() {
	for _, r := range b.socks {
		_ = r.conn.Close()
	}
	_ = b.post.Drop()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// parallel runs f(0..n-1) with at most par at once; the first error wins.
func parallel(par, n int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// hist is a latency histogram of 10 µs buckets up to 10 s, safe for concurrent
// adds.
type hist struct {
	buckets [1_000_000]atomic.Int64
	top     atomic.Int64
}

func (h *hist) add(d time.Duration) {
	i := max(int(d/(10*time.Microsecond)), 0)
	if i >= len(h.buckets) {
		i = len(h.buckets) - 1
	}
	h.buckets[i].Add(1)
	for {
		t := h.top.Load()
		if int64(d) <= t || h.top.CompareAndSwap(t, int64(d)) {
			return
		}
	}
}

func (h *hist) reset() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.top.Store(0)
}

func (h *hist) quantile(q float64) time.Duration {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total-1)) + 1
	var seen int64
	for i := range h.buckets {
		if seen += h.buckets[i].Load(); seen >= rank {
			return time.Duration(i+1) * 10 * time.Microsecond
		}
	}
	return h.max()
}

func (h *hist) max() time.Duration { return time.Duration(h.top.Load()) }
