package actors

import (
	"errors"

	"github.com/parleychat/parley/persistence"
)

// maxAppendFailures is how many appends in a row may fail (each followed by a
// reload) before a grain answers unavailable and stops.
const maxAppendFailures = 3

// writer is the single-writer discipline of one event stream, for the grain that
// owns the stream: changes queue while one append is in flight, and the next append
// takes what queued meanwhile, so that a busy grain writes bigger batches instead of
// more of them. When an append fails, the stream moved (another activation wrote:
// ErrConflict) or the outcome is unknown: the grain reloads the stream's end and
// appends the batch again (the store skips what did commit), up to maxAppendFailures
// in a row; after a conflict it also yields, stopping once its retried batch is in,
// and leaves the stream to the other activation. After that many failures the
// writer is broken: the grain answers unavailable and stops.
type writer[C any] struct {
	version  uint64 // the stream's version as last written or read
	pending  []C    // waiting for the next append
	inflight []C    // in the append under way
	failures int    // appends failed in a row
	yield    bool   // another activation appended
	broken   bool
}

// add queues a change.
func (w *writer[C]) add(c C) { w.pending = append(w.pending, c) }

// busy reports an append under way.
func (w *writer[C]) busy() bool { return len(w.inflight) > 0 }

// idle reports nothing queued or in flight.
func (w *writer[C]) idle() bool { return len(w.pending)+len(w.inflight) == 0 }

// take moves the first n pending changes in flight and returns them.
func (w *writer[C]) take(n int) []C {
	w.inflight = w.pending[:n:n]
	w.pending = append([]C(nil), w.pending[n:]...)
	return w.inflight
}

// pop removes the first pending change without an append (it needed none).
func (w *writer[C]) pop() C {
	c := w.pending[0]
	w.pending = w.pending[1:]
	return c
}

// succeeded ends the append in flight at version and returns its batch.
func (w *writer[C]) succeeded(version uint64) []C {
	batch := w.inflight
	w.inflight, w.failures, w.version = nil, 0, version
	return batch
}

// failed ends the append in flight with err. It reports whether to append again
// (the batch is back at the head of pending, and reload succeeded); otherwise the
// writer is broken and every change it held is returned, to be answered.
func (w *writer[C]) failed(err error, reload func() error) (retry bool, dropped []C) {
	batch := w.inflight
	w.inflight = nil
	w.failures++
	if errors.Is(err, persistence.ErrConflict) {
		w.yield = true
	}
	if w.failures <= maxAppendFailures && reload() == nil {
		w.pending = append(batch, w.pending...)
		return true, nil
	}
	return false, w.drain(batch)
}

// drain empties the writer, marks it broken, and returns what it held (extra first).
func (w *writer[C]) drain(extra []C) []C {
	out := append(append(extra, w.inflight...), w.pending...)
	w.inflight, w.pending, w.broken = nil, nil, true
	return out
}

// yielding reports that the grain should stop: another activation writes the
// stream and this one has nothing in flight.
func (w *writer[C]) yielding() bool { return w.yield && !w.busy() }
