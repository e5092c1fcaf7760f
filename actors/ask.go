package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"

	"github.com/parleychat/parley/proto/parleypb"
)

// reply is every grain response: it may carry the grain's error.
type reply interface{ GetError() *parleypb.GrainError }

// The one retry policy of grain requests. A request is tried up to askTries times
// within the request timeout: again after a transport failure (a timeout, or a
// cached PID of an activation that is gone, which is dropped from the cache) and
// after an unavailable answer (the grain is reloading or moving), after askBackoff.
// Every request between actors is idempotent, so a retry is safe; callers never
// retry on their own.
const (
	askTries   = 3
	askBackoff = 50 * time.Millisecond
)

// attemptTimeout is one try's share of the request timeout: a request that reaches
// an activation as it stops is lost rather than refused, so waiting the whole
// timeout out on one try would be slow.
func (d *Deps) attemptTimeout() time.Duration {
	return max(d.Settings.RequestTimeout/askTries, 500*time.Millisecond)
}

// ask sends req to a grain and continues in ctx's actor (it never blocks it) with
// the reply as R, or with an error: the grain's *parleypb.GrainError, or an
// unavailable one when the grain could not be reached.
func ask[R reply](d *Deps, ctx actor.Context, identity, kind string, req any, done func(R, error)) {
	askTry(d, ctx, identity, kind, req, 1, done)
}

func askTry[R reply](d *Deps, ctx actor.Context, identity, kind string, req any, try int, done func(R, error)) {
	var zero R
	pid := d.pid(identity, kind)
	if pid == nil {
		done(zero, unreachable(kind, identity, errors.New("no activation")))
		return
	}
	f := ctx.RequestFuture(pid, req, d.attemptTimeout())
	ctx.ReenterAfter(f, func(res any, err error) {
		r, gerr := typed[R](res, err)
		switch {
		case err != nil:
			d.Cluster.PidCache.RemoveByValue(identity, kind, pid)
		case parleypb.ReasonOf(gerr) != parleypb.ErrorReason_UNAVAILABLE || gerr == nil:
			done(r, gerr)
			return
		}
		if try >= askTries {
			done(zero, orUnreachable(gerr, kind, identity, err))
			return
		}
		after(ctx, askBackoff*time.Duration(try-1), func() { askTry(d, ctx, identity, kind, req, try+1, done) })
	})
}

// typed turns a raw reply into R and its grain error.
func typed[R reply](res any, err error) (R, error) {
	var zero R
	if err != nil {
		return zero, nil
	}
	r, ok := res.(R)
	if !ok {
		return zero, parleypb.Errorf(parleypb.ErrorReason_INTERNAL, "unexpected answer %T", res)
	}
	if e := r.GetError(); e != nil {
		return zero, e
	}
	return r, nil
}

func unreachable(kind, identity string, err error) error {
	return fmt.Errorf("%w (%s/%s: %v)",
		parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "%s unavailable; try again", kind), kind, identity, err)
}

func orUnreachable(gerr error, kind, identity string, err error) error {
	if gerr != nil {
		return gerr
	}
	return unreachable(kind, identity, err)
}

// after continues in ctx's actor after d (at once when d is 0), without blocking it.
// It waits on a future, so it works in any actor without a message case of its
// own; ask's retries are rare. Connection.after, for the waits a connection runs
// many times a second, sends the actor a message instead.
func after(ctx actor.Context, d time.Duration, f func()) {
	if d <= 0 {
		f()
		return
	}
	ctx.ReenterAfter(actor.NewFuture(ctx.ActorSystem(), d), func(any, error) { f() })
}

// Call asks a grain from outside any actor (the REST tier), blocking, with the same
// policy as ask.
func Call[R reply](d *Deps, identity, kind string, req any) (R, error) {
	var zero R
	var gerr, err error
	for try := 1; try <= askTries; try++ {
		if try > 1 {
			time.Sleep(askBackoff * time.Duration(try-1))
		}
		var res any
		res, err = d.Cluster.Request(identity, kind, req,
			cluster.WithTimeout(d.attemptTimeout()), cluster.WithRetryCount(1))
		var r R
		r, gerr = typed[R](res, err)
		if err == nil && parleypb.ReasonOf(gerr) != parleypb.ErrorReason_UNAVAILABLE {
			return r, gerr
		}
		if err != nil {
			d.Cluster.PidCache.Remove(identity, kind)
		}
	}
	return zero, orUnreachable(gerr, kind, identity, err)
}
