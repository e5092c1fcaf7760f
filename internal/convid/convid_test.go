package convid

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		id, kind string
		members  []string
		group    string
		bad      bool
	}{
		{id: "dm:alice:bob", kind: Direct, members: []string{"alice", "bob"}},
		{id: "dm:bob:alice", bad: true},
		{id: "dm:alice:alice", bad: true},
		{id: "dm:Alice:bob", bad: true},
		{id: "dm:alice", bad: true},
		{id: "group:g1", kind: Group, group: "g1"},
		{id: "group:", bad: true},
		{id: "group:a:b", bad: true},
		{id: "group:a b", bad: true},
		{id: "group:" + strings.Repeat("g", 65), bad: true},
		{id: "dm:a.b:a_b", kind: Direct, members: []string{"a.b", "a_b"}},
		{id: "dm:alice:bob:carol", bad: true},
		{id: "dm::bob", bad: true},
		{id: "chan:x", bad: true},
		{id: "", bad: true},
	} {
		t.Run(tc.id, func(t *testing.T) {
			kind, members, group, err := Parse(tc.id)
			if tc.bad {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.kind, kind)
			require.Equal(t, tc.members, members)
			require.Equal(t, tc.group, group)
		})
	}
	require.Equal(t, "dm:alice:bob", DirectID("bob", "alice"))
	require.Equal(t, "dm:alice:bob", DirectID("alice", "bob"))
}
