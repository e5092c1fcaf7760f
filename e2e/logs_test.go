package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Security review, finding 10: a client's values never reach the node's log whole.
// Long ids in typing, send and history frames are refused before any grain sees
// them (typing parses its group id like send), and the log does not grow with them.
func TestClientValuesDoNotSizeTheLog(t *testing.T) {
	n := startNode(t, fastConfig)
	alice := newUser(t, n, "alice")
	ac := dial(t, n, alice)
	ar := startReader(ac)
	syncNow(t, ac, ar, nil)
	long := strings.Repeat("a", 60000)
	before := len(n.Log())
	frames := []string{
		`{"type":"typing","group":"` + long + `"}`,
		`{"type":"typing","to":"` + long + `"}`,
		`{"type":"send","id":"s1","group":"` + long + `","text":"hi"}`,
		`{"type":"send","id":"s2","to":"` + long + `","text":"hi"}`,
		`{"type":"history","id":"h1","conversation":"group:` + long + `"}`,
		`{"type":"history","id":"h2","conversation":"dm:` + long + `:x"}`,
		`{"type":"send","id":"` + long[:64] + "\u0000" + `","to":"bob","text":"hi"}`,
	}
	for i := range 10 {
		for _, f := range frames {
			require.NoError(t, ac.WriteRaw(1, []byte(f)), "frame %d", i)
		}
	}
	ar.waitFor(t, 20*time.Second, "every frame answered", func(r *reader) bool { return len(r.errors) == 10*len(frames) })
	_, _, errs, _ := ar.snapshot()
	for _, e := range errs {
		require.Equal(t, "bad_request", e.Code, "%s: %s", e.Id, e.Message)
		require.Less(t, len(e.Message), 200, "an error message does not echo the value")
	}
	grown := len(n.Log()) - before
	require.NotContains(t, n.Log(), strings.Repeat("a", 100))
	require.Less(t, grown, 4096, fmt.Sprintf("the log grew by %d bytes for %d frames of 60 KB", grown, 10*len(frames)))
}
