package api_test

import (
	"context"
	"sync"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// memStore is an in-memory api.Store for tests that need no database (fuzzing).
type memStore struct {
	mu      sync.Mutex
	users   map[string]persistence.User
	devices map[string]int64 // "user/device" -> token generation
}

func newMemStore() *memStore {
	return &memStore{users: map[string]persistence.User{}, devices: map[string]int64{}}
}

func (m *memStore) CreateUser(_ context.Context, u persistence.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[u.ID]; ok {
		return persistence.ErrConflict
	}
	m.users[u.ID] = u
	return nil
}

func (m *memStore) User(_ context.Context, id string) (persistence.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return persistence.User{}, persistence.ErrNotFound
	}
	return u, nil
}

func (m *memStore) AddDevice(_ context.Context, user, device string, _ int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.devices[user+"/"+device]; !ok {
		m.devices[user+"/"+device] = 0
	}
	return nil
}

func (m *memStore) DeviceGeneration(_ context.Context, user, device string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.devices[user+"/"+device], nil
}

func (m *memStore) RevokeDevice(_ context.Context, user, device string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.devices[user+"/"+device]++
	return m.devices[user+"/"+device], nil
}

func (m *memStore) Receipts(context.Context, string) ([]persistence.Watermark, error) {
	return nil, nil
}

func (m *memStore) History(context.Context, string, int64, int64, int) ([]*parleypb.Message, bool, error) {
	return nil, false, nil
}

func (m *memStore) HistoryAfter(context.Context, string, int64, int64, int) ([]*parleypb.Message, bool, error) {
	return nil, false, nil
}
