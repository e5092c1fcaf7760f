package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Acceptance 1: two users send 1,000 messages each, interleaved: each gets sent for
// each of its own; both see all 2,000 exactly once, in messageId order, identically.
func TestInterleavedDirectChat(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)

	const each = 1000
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range each {
			require.NoError(t, ac.Write(sendFrame(fmt.Sprintf("a%d", i), bob.UserID, fmt.Sprintf("from alice %d", i))))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range each {
			require.NoError(t, bc.Write(sendFrame(fmt.Sprintf("b%d", i), alice.UserID, fmt.Sprintf("from bob %d", i))))
		}
	}()
	wg.Wait()

	for _, r := range []*reader{ar, br} {
		r.waitFor(t, 90*time.Second, "all sent and delivered", func(r *reader) bool {
			return len(r.sent) == each && len(r.messages) == 2*each
		})
	}
	aMsgs, _, aErrs, _ := ar.snapshot()
	bMsgs, _, bErrs, _ := br.snapshot()
	require.Empty(t, aErrs)
	require.Empty(t, bErrs)
	aIDs := requireStream(t, aMsgs, 1)
	bIDs := requireStream(t, bMsgs, 1)
	require.True(t, sorted(aIDs), "alice sees messageId order")
	require.Equal(t, aIDs, bIDs, "both sides see the same order")
	for _, r := range []*reader{ar, br} {
		r.mu.Lock()
		for _, s := range r.sent {
			require.NotZero(t, s.MessageId)
		}
		r.mu.Unlock()
	}
}
