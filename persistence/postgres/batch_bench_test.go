package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// BenchmarkCommitBatch is what one group commit costs as a function of what it
// carries: ops conversation appends of msgs messages each, to recipients users each
// (2: 1:1 traffic among 400 users; 500: a post to a 500-member group), committed as
// the committer commits them (the row locks, the one append statement, COMMIT with
// its WAL flush). µs/msg and µs/recipient are the figures: Postgres's own cost per
// message at a batch size, which bounds what a node can sustain whatever it does.
func BenchmarkCommitBatch(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.DatabaseURL(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run := fmt.Sprintf("cb%d", time.Now().UnixNano()%1e9)
	users := func(kind string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s-%s%d", run, kind, i)
			if err := s.CreateUser(ctx, persistence.User{ID: out[i], DisplayName: out[i], PasswordHash: "x"}); err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	pairs := users("p", 400)
	group := users("g", 500)
	versions := map[string]int64{}
	var id int64 = time.Now().UnixNano() / 1e3
	for _, c := range []struct{ ops, msgs, recipients int }{
		{1, 1, 2}, {10, 1, 2}, {100, 1, 2}, {100, 4, 2}, {200, 2, 2}, {1, 1, 500}, {4, 1, 500},
	} {
		b.Run(fmt.Sprintf("ops=%d/msgs=%d/recipients=%d", c.ops, c.msgs, c.recipients), func(b *testing.B) {
			next := 0 // the next conversation, round robin
			for b.Loop() {
				ops := make([]op, c.ops)
				for i := range ops {
					var conv string
					var rcpt []string
					if c.recipients == 2 {
						p := next % (len(pairs) / 2)
						next++
						rcpt = []string{pairs[2*p], pairs[2*p+1]}
						conv = "dm:" + rcpt[0] + ":" + rcpt[1]
					} else {
						conv = fmt.Sprintf("group:%s-%d", run, i)
						rcpt = group
					}
					a := persistence.ConversationAppend{Conversation: conv, Expected: uint64(versions[conv]), Recipients: rcpt}
					for range c.msgs {
						id++
						a.Messages = append(a.Messages, &parleypb.Message{MessageId: id, Conversation: conv, From: rcpt[0],
							ClientId: fmt.Sprint(id), Text: "benchmark text of a typical short chat message", Ts: id})
					}
					w, err := newConvWrite(a)
					if err != nil {
						b.Fatal(err)
					}
					locks := make([]string, len(rcpt))
					for j, u := range rcpt {
						locks[j] = persistence.UserStream(u)
					}
					ops[i] = op{kind: kindConversation, key: persistence.ConversationStream(conv), locks: locks, arg: w}
				}
				if err := s.committer.commit(ops); err != nil {
					b.Fatal(err)
				}
				for _, o := range ops {
					w := o.arg.(*convWrite)
					if w.version == nil {
						b.Fatalf("%s: version conflict", w.conv)
					}
					versions[w.conv] = *w.version
				}
			}
			per := float64(b.Elapsed().Microseconds()) / float64(b.N)
			b.ReportMetric(per/float64(c.ops*c.msgs), "µs/msg")
			b.ReportMetric(per/float64(c.ops*c.recipients), "µs/recipient")
		})
	}
}
