package convid

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	g := NewGroupID()
	for _, tc := range []struct {
		id   string
		want ID
		bad  bool
	}{
		{id: "dm:alice:bob", want: ID{Kind: Direct, Members: []string{"alice", "bob"}}},
		{id: "dm:bob:alice", bad: true},
		{id: "dm:alice:alice", bad: true},
		{id: "dm:Alice:bob", bad: true},
		{id: "dm:alice", bad: true},
		{id: "group:" + g, want: ID{Kind: Group, Group: g}},
		{id: "group:abcdefghijklmnop", want: ID{Kind: Group, Group: "abcdefghijklmnop"}},
		{id: "group:g1", bad: true},
		{id: "group:", bad: true},
		{id: "group:abcdefghijklmno1", bad: true}, // 1 is not base32
		{id: "group:ABCDEFGHIJKLMNOP", bad: true},
		{id: "group:abcdefghijklmnopq", bad: true},
		{id: "group:abcdefgh:jklmnop", bad: true},
		{id: "group:abcdefgh\x00jklmnop", bad: true},
		{id: "group:" + strings.Repeat("g", 65), bad: true},
		{id: "dm:a.b:a_b", want: ID{Kind: Direct, Members: []string{"a.b", "a_b"}}},
		{id: "dm:alice:bob:carol", bad: true},
		{id: "dm::bob", bad: true},
		{id: "chan:x", bad: true},
		{id: "channel:" + g, want: ID{Kind: Channel, Group: g}},
		{id: "channel:abc", bad: true},
		{id: "channel:ABCDEFGHIJKLMNOP", bad: true},
		{id: "", bad: true},
	} {
		t.Run(tc.id, func(t *testing.T) {
			id, err := Parse(tc.id)
			if tc.bad {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, id)
		})
	}
	require.Equal(t, "dm:alice:bob", DirectID("bob", "alice"))
	require.Equal(t, "dm:alice:bob", DirectID("alice", "bob"))
	require.Equal(t, "group:"+g, GroupID(g))
}

func TestNewGroupIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		g := NewGroupID()
		require.True(t, ValidGroupID(g), g)
		require.False(t, seen[g])
		seen[g] = true
	}
}
