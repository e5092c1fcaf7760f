package actors

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// roleStore answers ChannelRoles from a map and counts the lookups; the rest of
// Store is not used by mentions.
type roleStore struct {
	Store
	members map[string]bool
	lookups int
	asked   int // names looked up
}

func (s *roleStore) ChannelRoles(_ context.Context, _ string, users []string) (map[string]int, error) {
	s.lookups++
	s.asked += len(users)
	out := map[string]int{}
	for _, u := range users {
		if s.members[u] {
			out[u] = persistence.ChannelMember
		}
	}
	return out, nil
}

func TestChannelMentions(t *testing.T) {
	st := &roleStore{members: map[string]bool{"bob": true, "carol": true, "d.e-f": true, "x1": true, "x2": true, "x3": true}}
	d := &Deps{Store: st, Settings: Settings{ChannelMentions: 3, RequestTimeout: time.Second}}
	open := &channel{info: persistence.Channel{ID: "channel:c", Owner: "alice", Mode: persistence.ChannelOpen},
		admins: map[string]bool{"adm": true}}
	cases := []struct {
		text string
		want []string
	}{
		{"no mention here", nil},
		{"hi @bob", []string{"bob"}},
		{"@bob, @carol and @bob again", []string{"bob", "carol"}},
		{"hi @bob.", []string{"bob"}},
		{"dotted @d.e-f- name", []string{"d.e-f"}},
		{"mail bob@carol.com is no mention", nil},
		{"nor B@bob, nor é@bob", nil},
		{"@bobX and @bobé name no one", nil},
		{"(@bob) and @carol!", []string{"bob", "carol"}},
		{"@alice mentions herself", nil},
		{"@nobody is no member", nil},
		{"@adm is an admin", []string{"adm"}},
		{"@Bob is not a user id", nil},
		{"@x1 @x2 @x3 @bob: at most three", []string{"x1", "x2", "x3"}},
		{"a lone @ and @@bob", []string{"bob"}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, open.mentions(d, "alice", c.text), c.text)
	}

	st.lookups, st.asked = 0, 0
	open.known = nil
	require.Empty(t, open.mentions(d, "alice", "@n1 @n2 @n3 @n4 @n5 @n6 @n7 @n8 @bob"))
	require.Equal(t, 1, st.lookups, "one store read")
	require.Equal(t, 6, st.asked, "names are bounded at twice the limit")
	st.lookups = 0
	require.Equal(t, []string{"bob", "carol"}, open.mentions(d, "alice", "@bob @carol"))
	require.Equal(t, []string{"bob", "carol"}, open.mentions(d, "alice", "@bob @carol"))
	require.Equal(t, 1, st.lookups, "members found are remembered")

	broadcast := &channel{info: persistence.Channel{ID: "channel:b", Owner: "alice", Mode: persistence.ChannelBroadcast}}
	require.Nil(t, broadcast.mentions(d, "alice", "hi @bob"), "broadcast channels push no one")
	d.Settings.ChannelMentions = 0
	require.Nil(t, open.mentions(d, "alice", "hi @bob"), "0 turns mentions off")
}

func TestBatchAloneWithMentions(t *testing.T) {
	post := &parleypb.PostRequest{Text: "hi"}
	plain := func() *change { return &change{post: post} }
	ment := &change{post: post, mentions: []string{"bob"}}
	require.Equal(t, 1, batchLen([]*change{ment, plain(), plain()}))
	require.Equal(t, 2, batchLen([]*change{plain(), plain(), ment, plain()}))
}
