package loadgen

import (
	"fmt"
	"time"
)

// Latency is a summary of one histogram, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	P50Ms  float64 `json:"p50Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
	MeanMs float64 `json:"meanMs"`
}

// Summarize gives a histogram's percentiles, in milliseconds.
func Summarize(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return Latency{Count: h.Count(), P50Ms: ms(h.Quantile(0.50)), P99Ms: ms(h.Quantile(0.99)),
		P999Ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()), MeanMs: ms(h.Mean())}
}

// PhaseTime is how long the workers took to reach a phase after its release.
type PhaseTime struct {
	Phase string  `json:"phase"`
	Sec   float64 `json:"sec"`
}

// Result is the merged outcome of a run.
type Result struct {
	Started     time.Time `json:"started"`
	Scenario    string    `json:"scenario"`
	URLs        []string  `json:"urls"`
	Conns       int       `json:"conns"`
	Groups      int       `json:"groups,omitempty"`
	Members     int       `json:"members,omitempty"`
	Senders     int       `json:"senders,omitempty"`
	Messages    int       `json:"messages,omitempty"` // storm: messages each client missed
	Online      int       `json:"online,omitempty"`   // channel: members connected (Conns)
	ChannelMode string    `json:"channelMode,omitempty"`
	Procs       int       `json:"procs"`
	SrcIPs      int       `json:"srcIps"`
	Rate        float64   `json:"rate"`
	Duration    string    `json:"duration"`
	Encoding    string    `json:"encoding"`
	UsersPrefix string    `json:"usersPrefix"`
	MintedAuth  bool      `json:"mintedAuth"` // tokens minted with the token secret, no logins

	Phases      []PhaseTime `json:"phases"`
	ConnsUp     int         `json:"connsUp"` // open at the end of the measured phase
	SetupUp     int         `json:"setupUp"` // set up (dial, upgrade, sync answered) in the connect phase
	SetupErrors uint64      `json:"setupErrors"`
	DialRetries uint64      `json:"dialRetries"` // connects tried again after a failure (e.g. 1011 unavailable)
	Resent      uint64      `json:"resent"`      // sends repeated with the same id after "unavailable"
	RegisterSec float64     `json:"registerSec"` // registering or logging in all users, and making the groups
	SetupSec    float64     `json:"setupSec"`    // dialing and syncing all connections
	SetupRate   float64     `json:"setupRate"`   // connections/s
	SettleSec   float64     `json:"settleSec,omitempty"`
	MembersSec  float64     `json:"membersSec,omitempty"` // channel: finding or making it and adding its members
	MeasuredSec float64     `json:"measuredSec"`          // the measured phase's wall time, release to the last report
	TrafficSec  float64     `json:"trafficSec"`           // traffic start to the last answer or delivery

	Sent            uint64            `json:"sent"`
	Acked           uint64            `json:"acked"`
	Expected        uint64            `json:"expected"` // deliveries owed to connected members (storm: to the clients)
	Delivered       uint64            `json:"delivered"`
	Lost            uint64            `json:"lost"`
	Duplicates      uint64            `json:"duplicates"`
	Echoes          uint64            `json:"echoes"`
	ReadEvery       int               `json:"readEvery,omitempty"`   // the receipts load: see Config.ReadEvery
	Push            string            `json:"push,omitempty"`        // the push load: see Config.Push
	PushOffline     bool              `json:"pushOffline,omitempty"` // the recipients stayed offline
	AcksOut         uint64            `json:"acksOut,omitempty"`     // received frames written
	ReadsOut        uint64            `json:"readsOut,omitempty"`    // read frames written
	ReceiptsIn      uint64            `json:"receiptsIn,omitempty"`  // receipt frames received
	AcksDropped     uint64            `json:"acksDropped,omitempty"` // acknowledgements loadgen could not keep up with
	Missed          uint64            `json:"missed"`
	WriteErrors     uint64            `json:"writeErrors"`
	Closes          uint64            `json:"closes"`
	ErrorFrames     map[string]uint64 `json:"errorFrames"`
	Errors          uint64            `json:"errors"` // every kind above that is a failure, summed
	AckedPerSec     float64           `json:"ackedPerSec"`
	DeliveredPerSec float64           `json:"deliveredPerSec"`
	SentLatency     Latency           `json:"sentLatency"`
	DeliveryLatency Latency           `json:"deliveryLatency"`

	// Storm: clients caught up, the time until the last was (from the start of
	// the reconnect), and each client's catch-up time from the reconnect's start
	// and from its own dial.
	CaughtUp         uint64  `json:"caughtUp,omitempty"`
	NotCaughtUp      uint64  `json:"notCaughtUp,omitempty"`
	StormSec         float64 `json:"stormSec,omitempty"`
	CatchUpLatency   Latency `json:"catchUpLatency"`
	ReconnectLatency Latency `json:"reconnectLatency"`

	// Channel: see ChannelStats. Rows: what the nodes wrote in the measured
	// phase, with Config.DatabaseURL.
	Channel *ChannelStats `json:"channel,omitempty"`
	Rows    *RowStats     `json:"rows,omitempty"`

	Loadgen SelfStats    `json:"loadgen"`
	Node    *NodeStats   `json:"node,omitempty"`
	Host    *HostStats   `json:"host,omitempty"` // the machine's and PostgreSQL's CPU over the measured phase
	Metrics *NodeMetrics `json:"metrics,omitempty"`
	// Samples are the nodes through the measured phase (Config.SampleEvery),
	// Steady those from the warm-up on.
	Samples        []Sample `json:"samples,omitempty"`
	Steady         *Steady  `json:"steady,omitempty"`
	SampleWarnings []string `json:"sampleWarnings,omitempty"`
	FirstErrors    []string `json:"firstErrors,omitempty"`
}

// SelfStats is the load generator's own cost in the measured phase, so that a
// figure can be told apart from loadgen's own limits: on a machine it shares
// with the nodes, every µs it spends per frame is taken from them.
type SelfStats struct {
	// CPUSec is the user+sys CPU time of every worker process in the measured
	// phase (with -procs 1 the worker is this process, so the parent's own
	// bookkeeping is in it too), and CPUPercent the same over the phase's wall
	// time (100 = one core).
	CPUSec     float64 `json:"cpuSec"`
	CPUPercent float64 `json:"cpuPercent"`
	// FramesIn is the WebSocket messages the connections received in the phase,
	// and USPerFrame the CPU time over them, in µs.
	FramesIn   uint64  `json:"framesIn"`
	USPerFrame float64 `json:"usPerFrame"`
	// SlowDecodes counts the JSON frames (whole run) that the fast scan left to
	// the full decoder; more than a few means the server's frames changed shape.
	SlowDecodes uint64 `json:"slowDecodes"`
}

// finish derives the per-frame and per-core figures.
func (s *SelfStats) finish(measuredSec float64) {
	if s.FramesIn > 0 {
		s.USPerFrame = 1e6 * s.CPUSec / float64(s.FramesIn)
	}
	if measuredSec > 0 {
		s.CPUPercent = 100 * s.CPUSec / measuredSec
	}
}

func newResult(cfg Config) *Result {
	r := &Result{Started: time.Now(), Scenario: cfg.Scenario, URLs: cfg.URLs, Conns: cfg.Conns, Procs: cfg.Procs,
		SrcIPs: cfg.SrcIPs, Rate: cfg.Rate, Duration: cfg.Duration.String(), Encoding: cfg.Encoding,
		UsersPrefix: cfg.UsersPrefix, MintedAuth: cfg.TokenSecret != "", ErrorFrames: map[string]uint64{},
		ReadEvery: cfg.ReadEvery, Push: cfg.Push, PushOffline: cfg.PushOffline}
	switch cfg.Scenario {
	case ScenarioGroup:
		r.Groups, r.Members, r.Senders = cfg.Groups, cfg.Members, cfg.Senders
	case ScenarioStorm:
		r.Members, r.Messages = cfg.Members, cfg.Messages
	case ScenarioChannel:
		r.Members, r.Online, r.ChannelMode = cfg.Members, cfg.Online, cfg.ChannelMode
	}
	return r
}

// merge adds up the workers' results.
func (r *runner) merge() (*Result, error) {
	res := r.res
	hists := [4]*Histogram{NewHistogram(), NewHistogram(), NewHistogram(), NewHistogram()}
	for i, w := range r.results {
		if w == nil {
			return nil, fmt.Errorf("loadgen: worker %d gave no result", i)
		}
		res.add(w)
		for j, h := range []histJSON{w.SentHist, w.DeliverHist, w.CatchUpHist, w.OwnHist} {
			hists[j].Merge(histFromJSON(h))
		}
		if w.FirstError != "" {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("worker %d: %s", i, w.FirstError))
		}
	}
	res.SentLatency, res.DeliveryLatency = Summarize(hists[0]), Summarize(hists[1])
	posts := res.Acked
	if res.Scenario == ScenarioChannel {
		res.channelTotals(r.results)
		if res.Channel.MarkerAcked {
			posts++ // the end marker is a post too, in the measured phase
		}
	}
	res.Rows = r.rows.result(posts)
	if res.SetupSec > 0 {
		res.SetupRate = float64(res.SetupUp) / res.SetupSec
	}
	if res.TrafficSec > 0 {
		res.AckedPerSec = float64(res.Acked) / res.TrafficSec
		res.DeliveredPerSec = float64(res.Delivered) / res.TrafficSec
	}
	if res.Scenario == ScenarioStorm {
		res.CatchUpLatency, res.ReconnectLatency = Summarize(hists[2]), Summarize(hists[3])
		res.NotCaughtUp = uint64(res.Conns) - min(uint64(res.Conns), res.CaughtUp)
		res.StormSec = hists[2].Max().Seconds()
	}
	res.Errors = res.errorCount()
	res.Loadgen.finish(res.MeasuredSec)
	delivered, sent := res.nodeWork()
	res.Node = r.node.finish(phaseCounts{conns: res.SetupUp, measured: res.MeasuredSec, delivered: delivered, sent: sent})
	res.Host = r.host.finish(delivered)
	res.Metrics = r.metrics.result()
	return res, nil
}

func (res *Result) add(w *WorkerResult) {
	res.ConnsUp += w.ConnsUp
	res.SetupUp += w.SetupUp
	res.SetupErrors += w.SetupErrors
	res.DialRetries += w.DialRetries
	res.Resent += w.Resent
	res.Sent += w.Sent
	res.Acked += w.Acked
	res.Expected += w.Expected
	res.Delivered += w.Delivered
	res.Lost += w.Lost
	res.Duplicates += w.Duplicates
	res.Echoes += w.Echoes
	res.AcksOut += w.AcksOut
	res.ReadsOut += w.ReadsOut
	res.ReceiptsIn += w.ReceiptsIn
	res.AcksDropped += w.AcksDropped
	res.Missed += w.Missed
	res.WriteErrors += w.WriteErrors
	res.Closes += w.Closes
	res.CaughtUp += w.CaughtUp
	for k, v := range w.ErrorFrames {
		res.ErrorFrames[k] += v
	}
	res.TrafficSec = max(res.TrafficSec, w.ActiveSec)
	res.Loadgen.CPUSec += w.CPUSec
	res.Loadgen.FramesIn += w.FramesIn
	res.Loadgen.SlowDecodes += w.SlowDecodes
}

// errorCount sums the failures: users not set up, error frames, broken
// sockets, failed writes, sends never answered, lost and repeated deliveries,
// and storm clients not caught up.
func (res *Result) errorCount() uint64 {
	n := res.SetupErrors + res.Closes + res.WriteErrors + res.Lost + res.Duplicates + res.NotCaughtUp
	if c := res.Channel; c != nil {
		n += c.PrevGaps + c.NoEndMarker
	}
	for _, v := range res.ErrorFrames {
		n += v
	}
	if res.Sent > res.Acked {
		n += res.Sent - res.Acked
	}
	return n
}
