package loadgen

import (
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Progress is a worker's running counters.
type Progress struct {
	ConnsUp   int64     `json:"connsUp"`
	Sent      uint64    `json:"sent"`
	Acked     uint64    `json:"acked"`
	Delivered uint64    `json:"delivered"`
	CaughtUp  uint64    `json:"caughtUp"`
	Errors    uint64    `json:"errors"`
	Delivery  *histJSON `json:"delivery,omitempty"`
}

// WorkerResult is the outcome of one worker, with raw histograms for merging.
type WorkerResult struct {
	Conns       int    `json:"conns"`
	ConnsUp     int    `json:"connsUp"`     // open at the end of the measured phase
	SetupUp     int    `json:"setupUp"`     // set up in the connect phase
	SetupErrors uint64 `json:"setupErrors"` // users that could not register, log in, connect or sync
	DialRetries uint64 `json:"dialRetries"` // connects tried again after a failure, as a client would
	Resent      uint64 `json:"resent"`      // sends repeated after "unavailable", as a client would
	Groups      int    `json:"groups"`
	Sent        uint64 `json:"sent"`
	Acked       uint64 `json:"acked"`
	Expected    uint64 `json:"expected"` // deliveries owed for the acked messages to the connected members
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"` // acked messages a connected member never got
	Duplicates  uint64 `json:"duplicates"`
	Echoes      uint64 `json:"echoes"`
	Missed      uint64 `json:"missed"` // rate tokens dropped because a connection was still busy
	WriteErrors uint64 `json:"writeErrors"`
	Closes      uint64 `json:"closes"` // connections closed by the server or failed while running
	// Storm: clients that got every message they missed, and when.
	CaughtUp    uint64            `json:"caughtUp"`
	ErrorFrames map[string]uint64 `json:"errorFrames"`
	ActiveSec   float64           `json:"activeSec"` // traffic start to the last delivery or ack
	SentHist    histJSON          `json:"sentHist"`
	DeliverHist histJSON          `json:"deliverHist"`
	CatchUpHist histJSON          `json:"catchUpHist"` // storm: reconnect phase start to caught up
	OwnHist     histJSON          `json:"ownHist"`     // storm: a client's own dial to caught up
	FirstError  string            `json:"firstError,omitempty"`
	// The worker process's own CPU time (user+sys) in the measured phase, and the
	// WebSocket messages its connections received in it.
	CPUSec      float64 `json:"cpuSec"`
	FramesIn    uint64  `json:"framesIn"`
	SlowDecodes uint64  `json:"slowDecodes"` // JSON frames the fast scan left to the full decoder (whole run)
	// With ReadEvery: received and read frames written, receipt frames received.
	AcksOut     uint64 `json:"acksOut,omitempty"`
	ReadsOut    uint64 `json:"readsOut,omitempty"`
	ReceiptsIn  uint64 `json:"receiptsIn,omitempty"`
	AcksDropped uint64 `json:"acksDropped,omitempty"`
	// Channel: by post number, this worker's members that got the post; its
	// members set up; live messages whose prev was not the member's last id;
	// members that never got the end marker; and, from the owner's worker, the
	// channel, the posts answered sent and whether the end marker was.
	ChannelGot   []uint32 `json:"channelGot,omitempty"`
	Followers    int      `json:"followers,omitempty"`
	PrevGaps     uint64   `json:"prevGaps,omitempty"`
	NoEndMarker  uint64   `json:"noEndMarker,omitempty"`
	EndSeen      uint64   `json:"endSeen,omitempty"` // members that got the end marker
	ChannelID    string   `json:"channelId,omitempty"`
	ChannelAcked *bitset  `json:"channelAcked,omitempty"`
	MarkerAcked  bool     `json:"markerAcked,omitempty"`
}

// counters are a worker's tallies, updated by every connection's goroutines.
type counters struct {
	connsUp, setupUp, setupErrors, dialRetries     atomic.Int64
	sent, acked, expected, delivered, dups, echoes atomic.Uint64
	missed, werrs, closes, errFrames, caught       atomic.Uint64
	resent, framesIn, slowDecodes                  atomic.Uint64
	acksOut, readsOut, receiptsIn, acksDropped     atomic.Uint64 // receipts load (ReadEvery)
	acksPending                                    atomic.Int64  // queued, not yet written
	lastActivity                                   atomic.Uint64 // ns since base
	sentHist, delivHist, catchHist, ownHist        *Histogram
	mu                                             sync.Mutex
	errCodes                                       map[string]uint64
	firstErr                                       string
	trafficStart                                   time.Duration // since base: the measured phase's start
	measuredCPU                                    time.Duration // this process's CPU time in the measured phase
	measuredFrames                                 uint64        // messages received in the measured phase
}

func (c *counters) init() {
	c.sentHist, c.delivHist, c.catchHist, c.ownHist = NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()
	c.errCodes = map[string]uint64{}
}

// fail keeps the first error's text for the report.
func (c *counters) fail(format string, args ...any) {
	c.mu.Lock()
	if c.firstErr == "" {
		c.firstErr = fmt.Sprintf(format, args...)
	}
	c.mu.Unlock()
}

func (c *counters) errorFrame(code string) {
	c.errFrames.Add(1)
	c.mu.Lock()
	c.errCodes[code]++
	c.mu.Unlock()
}

func (c *counters) errors() uint64 {
	return c.errFrames.Load() + c.closes.Load() + c.werrs.Load() + uint64(c.setupErrors.Load())
}

func (w *worker) progress() Progress {
	d := w.delivHist.Snapshot().toJSON()
	return Progress{ConnsUp: w.connsUp.Load(), Sent: w.sent.Load(), Acked: w.acked.Load(),
		Delivered: w.delivered.Load(), CaughtUp: w.caught.Load(), Errors: w.errors(), Delivery: &d}
}

func (w *worker) result() WorkerResult {
	w.mu.Lock()
	codes, first := maps.Clone(w.errCodes), w.firstErr
	w.mu.Unlock()
	res := WorkerResult{
		Conns: w.cfg.Conns, ConnsUp: int(w.connsUp.Load()), SetupUp: int(w.setupUp.Load()),
		SetupErrors: uint64(w.setupErrors.Load()), DialRetries: uint64(w.dialRetries.Load()), Resent: w.resent.Load(), Groups: len(w.groups),
		Sent: w.sent.Load(), Acked: w.acked.Load(), Expected: w.expected.Load(), Delivered: w.delivered.Load(),
		Lost: w.lost(), Duplicates: w.dups.Load(), Echoes: w.echoes.Load(), AcksOut: w.acksOut.Load(), ReadsOut: w.readsOut.Load(), ReceiptsIn: w.receiptsIn.Load(), AcksDropped: w.acksDropped.Load(), Missed: w.missed.Load(),
		WriteErrors: w.werrs.Load(), Closes: w.closes.Load(), CaughtUp: w.caught.Load(), ErrorFrames: codes,
		ActiveSec: (time.Duration(w.lastActivity.Load()) - w.trafficStart).Seconds(),
		SentHist:  w.sentHist.Snapshot().toJSON(), DeliverHist: w.delivHist.Snapshot().toJSON(),
		CatchUpHist: w.catchHist.Snapshot().toJSON(), OwnHist: w.ownHist.Snapshot().toJSON(), FirstError: first,
		CPUSec: w.measuredCPU.Seconds(), FramesIn: w.measuredFrames, SlowDecodes: w.slowDecodes.Load(),
	}
	if w.lay.channel {
		w.channelResult(&res)
	}
	return res
}

// lost counts, over every connected client, the messages its sources had
// answered sent that it never received.
func (w *worker) lost() uint64 {
	var n uint64
	for r := range w.lay.clients {
		rc := w.conns[r]
		if rc == nil {
			continue
		}
		for _, s := range w.lay.sources(r) {
			if sc := w.conns[s]; sc != nil {
				n += uint64(sc.ackedSet().missingFrom(rc.seenFrom(sc.user)))
			}
		}
	}
	return n
}
