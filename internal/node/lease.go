package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
)

// The node id lease lasts leaseTTL, renewed every leaseRenew (a variable for tests).
const leaseTTL = 30 * time.Second

var leaseRenew = 10 * time.Second

// nodeLease holds this node's Snowflake node id and its generator.
type nodeLease struct {
	postgres.NodeLease
	store *postgres.Store
	gen   *ids.Generator
}

// takeNodeID leases a node id (want, or any free one when want < 0). Ids are issued
// above every timestamp an earlier holder of the id reserved, so a restart that gets
// the same id, even with a clock that stepped back, never repeats an id.
func takeNodeID(ctx context.Context, store *postgres.Store, want int) (*nodeLease, error) {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	holder := host + "/" + hex.EncodeToString(b[:])
	l, err := store.AcquireNodeID(ctx, holder, want, leaseTTL)
	if err != nil {
		return nil, err
	}
	gen, err := ids.New(int64(l.NodeID), ids.WithFloor(l.FloorMs))
	if err != nil {
		return nil, err
	}
	nl := &nodeLease{NodeLease: l, store: store, gen: gen}
	// Reserve ahead before issuing anything: a crash before the first renewal must
	// still leave the next holder a floor above our ids.
	if err := store.RenewNodeID(ctx, l, leaseTTL, nl.reserve()); err != nil {
		return nil, err
	}
	return nl, nil
}

// reserve is the highest id timestamp this node may reach before its next renewal.
func (l *nodeLease) reserve() int64 {
	now := time.Now().UnixMilli() - ids.Epoch.UnixMilli()
	return max(now, l.gen.LastMillis()) + (leaseTTL + leaseRenew).Milliseconds()
}

// renew extends the lease every leaseRenew until ctx ends, and again every second
// after a failed renewal (the store may be down: the lease holds for leaseTTL). It
// returns ErrLeaseLost if another holder took the node id: this node must stop
// issuing ids at once.
func (l *nodeLease) renew(ctx context.Context, log *slog.Logger) error {
	t := time.NewTimer(leaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := l.store.RenewNodeID(cx, l.NodeLease, leaseTTL, l.reserve())
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, persistence.ErrConflict):
			return fmt.Errorf("%w: %v", ErrLeaseLost, err)
		case err != nil:
			log.Error("renewing node id lease", slog.Any("error", err))
			t.Reset(time.Second)
		default:
			t.Reset(leaseRenew)
			cx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := l.store.DeleteStaleOnline(cx); err != nil && ctx.Err() == nil {
				log.Warn("removing the online rows of dead nodes", slog.Any("error", err))
			}
			cancel()
		}
	}
}

// ErrLeaseLost means another node holds this node's id now (its lease expired while
// the store was out of reach): ids issued from here on could repeat that node's.
var ErrLeaseLost = errors.New("node: node id lease lost")

func (l *nodeLease) release() {
	cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.store.ReleaseNodeID(cx, l.NodeLease, l.reserve())
}
