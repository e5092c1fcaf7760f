package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// workerDispatcher runs actors' mailboxes on goroutines kept between runs. Proto.Actor's
// default dispatcher starts a goroutine each time a mailbox has messages; that
// goroutine's stack then grows, by copying, through the grain's calls, which cost ~16 %
// of a node's CPU under 1:1 traffic (runtime.copystack in the profile). A kept
// goroutine has grown its stack already. Schedule never waits: with no idle worker it
// starts one, so an actor that blocks cannot starve the others; a worker idle for
// workerIdle exits.
type workerDispatcher struct {
	runs       chan func()
	throughput int
}

const workerIdle = 10 * time.Second

// mailboxes is the dispatcher of every Parley actor in the process; 300 messages per
// run is Proto.Actor's default throughput.
var mailboxes = newWorkerDispatcher(300)

func newWorkerDispatcher(throughput int) *workerDispatcher {
	return &workerDispatcher{runs: make(chan func()), throughput: throughput}
}

var _ actor.Dispatcher = (*workerDispatcher)(nil)

// Schedule hands fn to an idle worker, or starts one.
func (d *workerDispatcher) Schedule(fn func()) {
	select {
	case d.runs <- fn:
	default:
		go d.work(fn)
	}
}

// Throughput is how many messages a mailbox processes before it yields its worker.
func (d *workerDispatcher) Throughput() int { return d.throughput }

func (d *workerDispatcher) work(fn func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(workerIdle)
		select {
		case fn = <-d.runs:
		case <-idle.C:
			return
		}
	}
}
