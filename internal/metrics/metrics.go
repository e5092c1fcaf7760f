// Package metrics holds a node's Prometheus metrics: what flows through the gateway,
// the grains and the group commit, and how long each stage of a message's path takes.
// The admin listener serves them at GET /metrics in Prometheus text format.
//
// A *Metrics is safe for concurrent use. A nil *Metrics is valid and records nothing,
// so that tests and tools may leave it out.
package metrics

import (
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Stage names a step of a message's path; each has a histogram of its duration
// (parley_stage_seconds{stage}), one sample per message (per member for the stages
// after the commit). Stages that cross nodes compare their clocks.
type Stage int

// The stages, in path order. The commit writes every member's queue, so "member
// enqueue committed" is the commit itself. StageDelivery is the whole path of one
// delivery, from the sender's frame decoded to the member's socket written.
const (
	StageGrain    Stage = iota // send frame decoded → its post reaches the conversation grain
	StageCommit                // post at the grain → its commit done, back at the grain (queueing, batching, the write, fsync)
	StageSent                  // commit done → `sent` written to the sender's socket
	StageFanout                // commit done → the entry reaches the member's user grain
	StageDeliver               // commit done → the entry written to a member's socket (fanout included)
	StageDelivery              // send frame decoded → the entry written to a member's socket
	numStages
)

var stageNames = [numStages]string{"grain", "commit", "sent", "fanout", "deliver", "delivery"}

func (s Stage) String() string { return stageNames[s] }

// Frame types counted in and out (PROTOCOL.md's type names; "bad" is a frame that did
// not decode).
var frameTypes = []string{"send", "sync", "received", "read", "history", "typing", "presence", "ping", "channels",
	"sent", "message", "synced", "receipt", "pong", "error", "bad", "other"}

// Metrics are a node's metrics, registered in their own registry.
type Metrics struct {
	reg *prometheus.Registry

	connections prometheus.Gauge
	framesIn    map[string]prometheus.Counter
	framesOut   map[string]prometheus.Counter
	posted      prometheus.Counter
	committed   prometheus.Counter
	delivered   prometheus.Counter
	stages      [numStages]prometheus.Observer

	commitSeconds prometheus.Observer
	commitWait    prometheus.Observer
	commitOps     prometheus.Observer
	commitRows    prometheus.Observer
	commitErrors  prometheus.Counter

	pushes [numPushEvents]prometheus.Counter
}

// PushEvent is what happened to a push notification.
type PushEvent int

const (
	PushDecided   PushEvent = iota // due to a device (a collapsed burst counts once), taken to be sent
	PushSent                       // accepted by its provider
	PushRetried                    // failed, to be tried again
	PushFailed                     // given up: past the deadline, or refused by the provider
	PushDisabled                   // its target said invalid or unregistered, and was cleared
	PushCancelled                  // not sent: a device of the user was connected by then
	numPushEvents
)

var pushNames = [numPushEvents]string{"decided", "sent", "retried", "failed", "disabled", "cancelled"}

// latencyBuckets go from 50 µs to about 19 s in steps of √2, so that a quantile
// interpolated within a bucket is off by at most that factor.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, math.Sqrt2, 38)

// New returns the metrics of one node, with the Go runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := factory{reg}
	m := &Metrics{reg: reg,
		connections: f.gauge("parley_connections", "Open WebSocket connections on this node."),
		posted:      f.counter("parley_messages_posted_total", "Messages posted to this node's conversation grains."),
		committed:   f.counter("parley_messages_committed_total", "Messages committed by this node's conversation grains."),
		delivered: f.counter("parley_messages_delivered_total",
			"Message frames written to this node's sockets (live pushes and sync replays)."),
		commitSeconds: f.histogram("parley_commit_seconds", "Duration of one group commit.", latencyBuckets),
		commitWait: f.histogram("parley_commit_wait_seconds",
			"How long a write waited for a committer to take it (submitted → its commit began).", latencyBuckets),
		commitOps: f.histogram("parley_commit_ops", "Operations (grain appends, cursor moves, ...) in one group commit.",
			prometheus.ExponentialBuckets(1, 2, 12)),
		commitRows: f.histogram("parley_commit_rows", "Rows written by one group commit.",
			prometheus.ExponentialBuckets(1, 2, 16)),
		commitErrors: f.counter("parley_commit_errors_total", "Group commits that failed."),
	}
	in := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_frames_in_total",
		Help: "Client frames read, by type."}, []string{"type"})
	out := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "parley_frames_out_total",
		Help: "Server frames written, by type."}, []string{"type"})
	reg.MustRegister(in, out)
	m.framesIn, m.framesOut = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, t := range frameTypes {
		m.framesIn[t], m.framesOut[t] = in.WithLabelValues(t), out.WithLabelValues(t)
	}
	for e := range numPushEvents {
		m.pushes[e] = f.counter("parley_push_"+pushNames[e]+"_total", "Push notifications "+pushNames[e]+" by this node.")
	}
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "parley_stage_seconds",
		Help: "Duration of each stage of a message's path (see internal/metrics.Stage).", Buckets: latencyBuckets},
		[]string{"stage"})
	reg.MustRegister(stages)
	for s := range numStages {
		m.stages[s] = stages.WithLabelValues(s.String())
	}
	return m
}

type factory struct{ reg *prometheus.Registry }

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Observer {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// GaugeFunc registers a gauge whose value is read from f at each scrape, with
// constant labels (e.g. grains active by kind).
func (m *Metrics) GaugeFunc(name, help string, labels map[string]string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
}

// Handler serves the metrics in Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Connected counts a socket opening (+1) or closing (-1).
func (m *Metrics) Connected(delta int) {
	if m != nil {
		m.connections.Add(float64(delta))
	}
}

// FrameIn counts a client frame read, by its PROTOCOL.md type.
func (m *Metrics) FrameIn(typ string) {
	if m != nil {
		count(m.framesIn, typ)
	}
}

// FrameOut counts a server frame written, by its PROTOCOL.md type.
func (m *Metrics) FrameOut(typ string) {
	if m != nil {
		count(m.framesOut, typ)
		if typ == "message" {
			m.delivered.Inc()
		}
	}
}

// FramesOut counts n frames of one type written at once.
func (m *Metrics) FramesOut(typ string, n int) {
	if m != nil {
		c, ok := m.framesOut[typ]
		if !ok {
			c = m.framesOut["other"]
		}
		c.Add(float64(n))
		if typ == "message" {
			m.delivered.Add(float64(n))
		}
	}
}

func count(by map[string]prometheus.Counter, typ string) {
	c, ok := by[typ]
	if !ok {
		c = by["other"]
	}
	c.Inc()
}

// Posted counts messages that reached a conversation grain.
func (m *Metrics) Posted(n int) {
	if m != nil {
		m.posted.Add(float64(n))
	}
}

// Committed counts messages committed by a conversation grain.
func (m *Metrics) Committed(n int) {
	if m != nil {
		m.committed.Add(float64(n))
	}
}

// Since records the time from start (Unix ns; 0 = unknown, not recorded) to now
// for a stage.
func (m *Metrics) Since(s Stage, start int64) {
	if m == nil || start <= 0 {
		return
	}
	if d := time.Now().UnixNano() - start; d >= 0 {
		m.stages[s].Observe(float64(d) / 1e9)
	}
}

// Commit records one group commit: its duration, its ops and rows, and whether it
// failed.
func (m *Metrics) Commit(d time.Duration, ops, rows int, err error) {
	if m == nil {
		return
	}
	m.commitSeconds.Observe(d.Seconds())
	m.commitOps.Observe(float64(ops))
	m.commitRows.Observe(float64(rows))
	if err != nil {
		m.commitErrors.Inc()
	}
}

// CommitWait records how long a write waited for its commit to begin.
func (m *Metrics) CommitWait(d time.Duration) {
	if m != nil {
		m.commitWait.Observe(d.Seconds())
	}
}

// Now is the clock the stage timestamps use (Unix ns).
func Now() int64 { return time.Now().UnixNano() }

// Push counts n push notifications that met event e.
func (m *Metrics) Push(e PushEvent, n int) {
	if m != nil && n > 0 {
		m.pushes[e].Add(float64(n))
	}
}
