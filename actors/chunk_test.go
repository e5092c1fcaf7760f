package actors

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/proto/parleypb"
)

func TestFirstChunkBoundsBytes(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	var msgs []*parleypb.Message
	for range 5 {
		msgs = append(msgs, &parleypb.Message{Text: big})
	}
	require.Len(t, firstChunk(msgs), 2, "two 100 KiB texts fit in 256 KiB, three do not")
	require.Len(t, firstChunk(msgs[:1]), 1)
	huge := []*parleypb.Message{{Text: strings.Repeat("x", 1<<20)}, {Text: "y"}}
	require.Len(t, firstChunk(huge), 1, "an oversized first message still goes alone")
	require.Empty(t, firstChunk(nil))
}
