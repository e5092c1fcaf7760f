package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"time"

	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/persistence/postgres"
)

const (
	leaseTTL   = 30 * time.Second
	leaseRenew = 10 * time.Second
)

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

func (l *nodeLease) renew(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(leaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := l.store.RenewNodeID(cx, l.NodeLease, leaseTTL, l.reserve())
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Error("renewing node id lease", slog.Any("error", err))
		}
	}
}

func (l *nodeLease) release() {
	cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.store.ReleaseNodeID(cx, l.NodeLease, l.reserve())
}
