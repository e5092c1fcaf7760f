package loadgen

import "fmt"

// ChannelStats is a channel run's own figures, over every worker.
type ChannelStats struct {
	ID          string `json:"id"`
	Followers   int    `json:"followers"`   // members set up following the channel
	PrevGaps    uint64 `json:"prevGaps"`    // live messages whose prev was not the member's last id (a client would pull history)
	NoEndMarker uint64 `json:"noEndMarker"` // members that never got the end marker (a loss too)
	MarkerAcked bool   `json:"markerAcked"` // the end marker was answered sent
	// MarkerDeliveries is the end marker's deliveries: not in Result.Delivered,
	// but in the node's work per delivery (it cost the nodes what a post does).
	MarkerDeliveries uint64 `json:"markerDeliveries"`
	// PostsMissed is the posts answered sent that some member never got.
	PostsMissed uint64 `json:"postsMissed"`
}

// channelTotals holds every worker's deliveries against the posts the owner
// had answered sent: each one was owed to every member set up.
func (res *Result) channelTotals(workers []*WorkerResult) {
	c := &ChannelStats{}
	var acked bitset
	for _, w := range workers {
		c.Followers += w.Followers
		c.PrevGaps += w.PrevGaps
		c.NoEndMarker += w.NoEndMarker
		c.MarkerDeliveries += w.EndSeen
		if w.ChannelAcked != nil {
			acked, c.ID, c.MarkerAcked = *w.ChannelAcked, w.ChannelID, w.MarkerAcked
		}
	}
	followers := uint64(c.Followers)
	res.Expected, res.Lost = 0, 0
	for word, bits := range acked {
		for b := range 64 {
			if bits&(1<<b) == 0 {
				continue
			}
			n := word*64 + b
			var got uint64
			for _, w := range workers {
				if n < len(w.ChannelGot) {
					got += uint64(w.ChannelGot[n])
				}
			}
			res.Expected += followers
			if got < followers {
				res.Lost += followers - got
				c.PostsMissed++
			}
		}
	}
	res.Channel = c
}

// nodeWork is what the nodes did in the measured phase for loadgen's clients:
// messages delivered and sent (a storm sends before it; a channel's end marker
// is a post and its deliveries too).
func (res *Result) nodeWork() (delivered, sent uint64) {
	delivered, sent = res.Delivered, res.Sent
	switch c := res.Channel; {
	case res.Scenario == ScenarioStorm:
		sent = 0 // posted before the measured reconnect
	case c != nil:
		delivered += c.MarkerDeliveries
		if c.MarkerAcked {
			sent++
		}
	}
	return delivered, sent
}

func (r *Result) channelRows(row rowFunc) {
	c := r.Channel
	if c == nil {
		c = &ChannelStats{}
	}
	row("channel", "%s (%s, %d members, the owner included; %d online following it)", c.ID, r.ChannelMode, r.Members, c.Followers)
	row("channel setup", "%.2f s (found or made, members added)", r.MembersSec)
	marker := "answered"
	if !c.MarkerAcked {
		marker = "**not answered**"
	}
	row("posts sent / acked", "%d / %d, **%.1f posts/s** (end marker %s)", r.Sent, r.Acked, r.AckedPerSec, marker)
	row("deliveries / owed", "%d / %d (missing %d, in %d posts; duplicates %d)", r.Delivered, r.Expected, r.Lost, c.PostsMissed, r.Duplicates)
	row("prev gaps / end marker missing", "%d / %d", c.PrevGaps, c.NoEndMarker)
	row("rate tokens missed", "%d", r.Missed)
	row("deliveries/s", "**%.0f** (over %.2f s)", r.DeliveredPerSec, r.TrafficSec)
	r.latencyRow(row, "post → sent", r.SentLatency)
	r.latencyRow(row, "post → delivery", r.DeliveryLatency)
}

// rowsRow is the rows written per post (channel) or message, with
// Config.DatabaseURL.
func (r *Result) rowsRow(row rowFunc) {
	s := r.Rows
	what := "message"
	if r.Scenario == ScenarioChannel {
		what = "post"
	}
	switch {
	case s == nil:
	case s.Error != "":
		row("rows written per "+what, "not measured: %s", s.Error)
	default:
		row("rows written per "+what, "**%.2f** (%d rows over %d %ss committed, pg_stat_user_tables; %s)",
			s.PerPost, s.Written, s.Posts, what, s.tablesByRows())
	}
}

func (r *Result) describeChannel(pace string) string {
	return fmt.Sprintf("a %s channel of %d members (the owner included), %d online, the owner posting %s for %s",
		r.ChannelMode, r.Members, r.Online, pace, r.Duration)
}
