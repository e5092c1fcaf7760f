package loadgen

import (
	"errors"
	"fmt"
)

// Channel modes (the server's).
const (
	ChannelBroadcast = "broadcast"
	ChannelOpen      = "open"
)

// channelDefaults fills and checks a channel run's sizes: Members (default
// 100,000, the owner included), Online (default 19,000) and the mode.
func (cfg *Config) channelDefaults() error {
	if cfg.Members == 0 {
		cfg.Members = 100000
	}
	if cfg.Online == 0 {
		cfg.Online = min(19000, cfg.Members-1)
	}
	if cfg.ChannelMode == "" {
		cfg.ChannelMode = ChannelBroadcast
	}
	switch {
	case cfg.ChannelMode != ChannelBroadcast && cfg.ChannelMode != ChannelOpen:
		return fmt.Errorf("loadgen: -channel-mode %q is not broadcast or open", cfg.ChannelMode)
	case cfg.Members < 2 || cfg.Online < 1 || cfg.Online > cfg.Members-1:
		return errors.New("loadgen: a channel run needs -members >= 2 and 1 <= -online <= -members - 1 (the owner is a member too)")
	case cfg.Conns != 0 && cfg.Conns != cfg.Online:
		return fmt.Errorf("loadgen: -conns %d is not -online (%d); leave it out", cfg.Conns, cfg.Online)
	}
	cfg.Conns = cfg.Online
	return nil
}

// channelProcs picks the workers of a channel run: the online members spread
// evenly, worker 0 holding the owner's socket too.
func (cfg *Config) channelProcs() error {
	if cfg.Procs <= 0 {
		cfg.Procs = (cfg.Online + 1 + MaxConnsPerProc - 1) / MaxConnsPerProc
	}
	cfg.Procs = min(cfg.Procs, cfg.Online)
	for i, s := range split(cfg.Online, cfg.Procs, 1) {
		if i == 0 {
			s++ // the owner
		}
		if s > MaxConnsPerProc {
			return fmt.Errorf("loadgen: worker %d would hold %d sockets, over %d per process (the open-file cap); use more -procs, or -procs 0 to choose",
				i, s, MaxConnsPerProc)
		}
	}
	return nil
}

// offline is each worker's members that stay offline.
func (cfg *Config) offline() []int { return split(cfg.Members-1-cfg.Online, cfg.Procs, 1) }

// channelUsers is each worker's members, online and offline (the owner aside).
func (cfg *Config) channelUsers() []int {
	out := cfg.shares()
	for i, n := range cfg.offline() {
		out[i] += n
	}
	return out
}

// channelName names the run's channel after its users: runs with the same
// users (-users-prefix and sizes) find and reuse it.
func (cfg *Config) channelName() string {
	return fmt.Sprintf("loadgen %s %s %d %d/%d", cfg.UsersPrefix, cfg.ChannelMode, cfg.Members, cfg.Online, cfg.Procs)
}

// channelWorkers gives each worker its channel share: its offline members, the
// channel's name, mode and owner, and worker 0 every worker's members. The
// owner posts at the whole rate.
func (cfg *Config) channelWorkers(out []WorkerConfig) {
	users, off := cfg.channelUsers(), cfg.offline()
	owner := fmt.Sprintf("%s-0-%d", cfg.UsersPrefix, users[0])
	for i := range out {
		o := &out[i]
		o.Rate, o.Offline, o.ChannelName, o.ChannelMode, o.Owner = cfg.Rate, off[i], cfg.channelName(), cfg.ChannelMode, owner
	}
	out[0].ChannelUsers = users
}
