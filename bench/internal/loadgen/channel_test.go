package loadgen

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// channelYAML is nodeYAML with a heartbeat deadline past a channel run: its
// members send nothing once they follow the channel, and the run holds them
// while it waits for PostgreSQL's statistics.
const channelYAML = nodeYAML + "presence:\n  deadAfter: 10m\n"

// TestChannelRun: a channel of 50 members, 20 of them online, the owner posting
// 10/s for 2 s: every online member gets every post exactly once, in the
// channel's order, and the report's figures are filled in (rows per post from
// the node's database). A second run with the same users, as fast as 4
// unanswered posts allow, finds the channel, registers nobody, and goes on
// from its last message.
func TestChannelRun(t *testing.T) {
	db := testenv.DatabaseURL(t)
	n := testenv.StartNode(t, db, channelYAML, "PARLEY_TOKEN_SECRET="+testSecret)
	pids, err := ListenerPIDs([]string{n.URL})
	require.NoError(t, err)
	cfg := Config{URLs: []string{n.URL}, Scenario: ScenarioChannel, Members: 50, Online: 20, Rate: 10,
		Duration: 2 * time.Second, Drain: 10 * time.Second, NodePIDs: pids, TokenSecret: testSecret,
		UsersPrefix: testenv.Name("ch"), DatabaseURL: db}
	res := run(t, cfg)
	requireChannelClean(t, res, 20)
	require.Equal(t, 1, res.Procs)
	require.InDelta(t, 20, float64(res.Acked), 2, "10 posts/s for 2 s")
	requireNodeStats(t, res, pids)
	requireSelfStats(t, res, res.Delivered+20+res.Acked+1) // the posts and the marker to 20 members, and their sent answers
	require.NotNil(t, res.Rows)
	require.Empty(t, res.Rows.Error)
	require.Equal(t, res.Acked+1, res.Rows.Posts, "the posts and the end marker")
	require.Positive(t, res.Rows.Written)
	require.InDelta(t, float64(res.Rows.Written)/float64(res.Rows.Posts), res.Rows.PerPost, 1e-9)
	require.Contains(t, res.Markdown(), "rows written per post")
	first := res.Channel.ID

	cfg.DatabaseURL, cfg.NodePIDs, cfg.Rate, cfg.Window, cfg.Duration = "", nil, 0, 4, time.Second
	res = run(t, cfg)
	requireChannelClean(t, res, 20)
	require.Equal(t, first, res.Channel.ID, "the same users' channel, found again")
	require.Less(t, res.RegisterSec, 5.0, "nobody registered again")
	require.Nil(t, res.Rows)
}

// requireChannelClean checks what every clean channel run gives: each post
// answered, delivered once to each of online members in order, and the
// figures of the report.
func requireChannelClean(t *testing.T, res *Result, online int) {
	t.Helper()
	requireClean(t, res)
	c := res.Channel
	require.NotNil(t, c)
	require.Len(t, c.ID, 16)
	require.Equal(t, online, c.Followers)
	require.Equal(t, online, res.ConnsUp)
	require.True(t, c.MarkerAcked, "the end marker was answered")
	require.Zero(t, c.NoEndMarker, "every member got the end marker")
	require.Zero(t, c.PrevGaps, "each live message's prev is the one before it")
	require.Zero(t, c.PostsMissed)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent, res.Acked)
	require.Equal(t, uint64(online)*res.Acked, res.Expected, "every post owed to every online member")
	require.Equal(t, res.Expected, res.Delivered, "and delivered to each once")
	require.Zero(t, res.Echoes, "the owner does not follow its channel")
	require.Positive(t, res.AckedPerSec)
	require.Positive(t, res.DeliveredPerSec)
	requireOrdered(t, res.SentLatency, res.Acked)
	requireOrdered(t, res.DeliveryLatency, res.Delivered)
	require.Less(t, res.DeliveryLatency.MaxMs, 10000.0, "the wall clock times a delivery within the run")
	md := res.Markdown()
	for _, s := range []string{"post → delivery", "deliveries/s", "posts/s", "prev gaps"} {
		require.Contains(t, md, s)
	}
}
