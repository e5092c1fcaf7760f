package membership

import (
	"errors"
	"log/slog"

	"github.com/parleychat/parley/internal/config"
)

func newZooKeeper(config.Cluster, *slog.Logger) (*Membership, error) {
	return nil, errors.New("membership: the zookeeper provider is not built yet")
}
