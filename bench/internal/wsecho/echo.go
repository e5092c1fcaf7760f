package wsecho

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// drainTimeout bounds how long the frames still in flight at the end of the
// traffic may take to come back.
const drainTimeout = 5 * time.Second

// sent is one frame in flight: its payload and when it was written.
type sent struct {
	p  []byte
	at time.Time
}

// traffic is one echo run over a set of connections.
type traffic struct {
	window, size int
	stop         chan struct{} // closed when the writers must stop
	over         atomic.Bool   // set at stop: later echoes are checked but not counted
	rtt          *loadgen.Histogram
	frames       atomic.Uint64 // echoes received before stop
	bytes        atomic.Uint64
	mismatches   atomic.Uint64
	errs         errorLog
}

// echoStats is what a traffic run measured.
type echoStats struct {
	Frames     uint64
	Bytes      uint64
	Mismatches uint64
	RTT        *loadgen.Histogram
	Wall       time.Duration // from the start to the stop
}

// runEcho keeps window frames of size bytes in flight on every connection for d
// (or until ctx ends), then stops writing and waits (at most drainTimeout) for the
// echoes in flight.
func runEcho(ctx context.Context, clients []*client, window, size int, d time.Duration, errs *errorLog) echoStats {
	t := &traffic{window: window, size: size, stop: make(chan struct{}), rtt: loadgen.NewHistogram()}
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.conn(i, c)
		}()
	}
	timer := time.NewTimer(d)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	t.over.Store(true)
	wall := time.Since(start)
	close(t.stop)
	// Bound the drain: a write or read still blocked then fails with a timeout.
	deadline := time.Now().Add(drainTimeout)
	for _, c := range clients {
		_ = c.conn.SetDeadline(deadline)
	}
	wg.Wait()
	for _, c := range clients {
		_ = c.conn.SetDeadline(time.Time{})
	}
	errs.merge(&t.errs)
	return echoStats{Frames: t.frames.Load(), Bytes: t.bytes.Load(), Mismatches: t.mismatches.Load(), RTT: t.rtt,
		Wall: wall}
}

// conn drives one connection: a writer goroutine that sends while it has a free
// buffer, and this goroutine, which reads the echoes in order and frees the buffers.
func (t *traffic) conn(idx int, c *client) {
	free := make(chan *sent, t.window)
	inflight := make(chan *sent, t.window)
	for range t.window {
		free <- &sent{p: make([]byte, t.size)}
	}
	go func() {
		defer close(inflight)
		if err := t.write(idx, c, free, inflight); err != nil {
			t.errs.add(fmt.Errorf("conn %d: writing: %w", idx, err))
		}
	}()
	if err := t.read(c, free, inflight); err != nil {
		t.errs.add(fmt.Errorf("conn %d: reading: %w", idx, err))
		for range inflight { // let the writer finish
		}
	}
}

// write sends frames until stop, each with a payload unique to (idx, seq).
func (t *traffic) write(idx int, c *client, free <-chan *sent, inflight chan<- *sent) error {
	for seq := uint64(0); ; seq++ {
		var s *sent
		select {
		case <-t.stop:
			return nil
		case s = <-free:
		}
		fill(s.p, idx, seq)
		s.at = time.Now()
		inflight <- s // never blocks: there are only window buffers
		if err := c.writeFrame(s.p); err != nil {
			return err
		}
	}
}

// read takes the frames in flight in the order they were sent, reads each echo
// and compares it, until the writer has stopped and everything came back.
func (t *traffic) read(c *client, free chan<- *sent, inflight <-chan *sent) error {
	br := bufio.NewReaderSize(c.r, 4096) // larger payloads are read past it
	buf := make([]byte, t.size)
	for s := range inflight {
		p, err := c.readFrame(br, buf)
		if err != nil {
			return err
		}
		now := time.Now()
		if !bytes.Equal(p, s.p) {
			t.mismatches.Add(1)
		}
		t.rtt.Record(now.Sub(s.at))
		if !t.over.Load() {
			t.frames.Add(1)
			t.bytes.Add(uint64(len(p)))
		}
		free <- s
	}
	return nil
}

// fill writes a pattern that differs per connection and per frame.
func fill(p []byte, idx int, seq uint64) {
	x := uint64(idx)*0x9e3779b97f4a7c15 ^ seq*0xbf58476d1ce4e5b9 | 1 // xorshift needs x != 0
	for i := range p {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		p[i] = byte(x)
	}
}

// errorLog counts errors and keeps the first few.
type errorLog struct {
	mu    sync.Mutex
	n     uint64
	first []string
}

const keepErrors = 5

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.first) < keepErrors {
		l.first = append(l.first, err.Error())
	}
}

func (l *errorLog) merge(o *errorLog) {
	o.mu.Lock()
	n, first := o.n, append([]string(nil), o.first...)
	o.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += n
	for _, e := range first {
		if len(l.first) < keepErrors {
			l.first = append(l.first, e)
		}
	}
}

func (l *errorLog) count() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
