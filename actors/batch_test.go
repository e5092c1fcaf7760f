package actors

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/proto/parleypb"
)

func posts(texts ...string) []*change {
	out := make([]*change, len(texts))
	for i, t := range texts {
		out[i] = &change{post: &parleypb.PostRequest{Text: t}}
	}
	return out
}

// One append takes the posts at the head of the queue up to its bounds: bytes,
// count, and the first group change.
func TestBatchLenBounds(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	require.Equal(t, 2, batchLen(posts(big, big, big, big)), "two 100 KiB texts fit in 256 KiB, three do not")
	require.Equal(t, 1, batchLen(posts(strings.Repeat("x", 1<<20), "y")), "an oversized first post still goes alone")
	require.Equal(t, maxBatch, batchLen(posts(make([]string, maxBatch+10)...)))
	withOp := append(posts("a", "b"), &change{op: &parleypb.GroupRequest{}})
	require.Equal(t, 2, batchLen(append(withOp, posts("c")...)), "a group change ends the batch")
	require.Zero(t, batchLen(nil))
}
