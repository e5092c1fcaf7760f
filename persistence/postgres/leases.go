package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/parleychat/parley/persistence"
)

// maxNodeID is the largest Snowflake node id (10 bits).
const maxNodeID = 1023

// NodeLease is a held Snowflake node id.
type NodeLease struct {
	NodeID int
	Holder string
	// FloorMs is the highest id timestamp (ms since the id epoch) an earlier holder of
	// this id may have used; the new holder must issue ids above it.
	FloorMs int64
}

// AcquireNodeID takes a node id for holder until ttl from now: want if want >= 0
// (persistence.ErrConflict if another live holder has it), else the lowest id that is
// free or whose lease expired.
func (s *Store) AcquireNodeID(ctx context.Context, holder string, want int, ttl time.Duration) (NodeLease, error) {
	const take = `INSERT INTO node_leases (node_id, holder, expires_at) VALUES ($1, $2, now() + $3::interval)
		ON CONFLICT (node_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
		WHERE node_leases.expires_at < now() OR node_leases.holder = EXCLUDED.holder
		RETURNING reserved_ms`
	interval := fmt.Sprintf("%d milliseconds", ttl.Milliseconds())
	try := func(id int) (NodeLease, bool, error) {
		var floor int64
		err := s.pool.QueryRow(ctx, take, id, holder, interval).Scan(&floor)
		if mapErr(err) == persistence.ErrNotFound {
			return NodeLease{}, false, nil
		}
		if err != nil {
			return NodeLease{}, false, fmt.Errorf("leasing node id %d: %w", id, mapErr(err))
		}
		return NodeLease{NodeID: id, Holder: holder, FloorMs: floor}, true, nil
	}
	if want >= 0 {
		l, ok, err := try(want)
		if err == nil && !ok {
			err = fmt.Errorf("node id %d is held by another live node: %w", want, persistence.ErrConflict)
		}
		return l, err
	}
	var free int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(min(n), -1) FROM generate_series(0, $1) n
		WHERE NOT EXISTS (SELECT 1 FROM node_leases l WHERE l.node_id = n AND l.expires_at >= now())`,
		maxNodeID).Scan(&free)
	if err != nil {
		return NodeLease{}, fmt.Errorf("finding a free node id: %w", mapErr(err))
	}
	for id := free; id >= 0 && id <= maxNodeID; id++ {
		l, ok, err := try(id)
		if err != nil || ok {
			return l, err
		}
	}
	return NodeLease{}, fmt.Errorf("no free node id: %w", persistence.ErrConflict)
}

// RenewNodeID extends the lease and records reservedMs, the highest id timestamp the
// holder may use until the next renewal. persistence.ErrConflict if the lease is lost.
func (s *Store) RenewNodeID(ctx context.Context, l NodeLease, ttl time.Duration, reservedMs int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE node_leases SET expires_at = now() + $3::interval,
		reserved_ms = GREATEST(reserved_ms, $4) WHERE node_id = $1 AND holder = $2`,
		l.NodeID, l.Holder, fmt.Sprintf("%d milliseconds", ttl.Milliseconds()), reservedMs)
	if err != nil {
		return fmt.Errorf("renewing node id %d: %w", l.NodeID, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("node id %d lease lost: %w", l.NodeID, persistence.ErrConflict)
	}
	return nil
}

// ReleaseNodeID gives the id back, keeping reservedMs for the next holder.
func (s *Store) ReleaseNodeID(ctx context.Context, l NodeLease, reservedMs int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE node_leases SET expires_at = now() - interval '1 second',
		reserved_ms = GREATEST(reserved_ms, $3) WHERE node_id = $1 AND holder = $2`, l.NodeID, l.Holder, reservedMs)
	return mapErr(err)
}
