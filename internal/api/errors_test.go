package api_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

var _ api.Store = (*postgres.Store)(nil)

// brokenStore fails every call with an error whose text must stay server-side.
type brokenStore struct{}

var errSecret = errors.New("pq: connection to 10.0.0.7 refused (secret detail)")

func (brokenStore) CreateUser(context.Context, persistence.User) error { return errSecret }
func (brokenStore) User(context.Context, string) (persistence.User, error) {
	return persistence.User{}, errSecret
}
func (brokenStore) AddDevice(context.Context, string, string, int64) error { return errSecret }
func (brokenStore) Receipts(context.Context, string) ([]persistence.Watermark, error) {
	return nil, errSecret
}
func (brokenStore) DeviceGeneration(context.Context, string, string) (int64, error) {
	return 0, errSecret
}
func (brokenStore) RevokeDevice(context.Context, string, string) (int64, error) { return 0, errSecret }
func (brokenStore) History(context.Context, string, int64, int64, int) ([]*parleypb.Message, bool, error) {
	return nil, false, errSecret
}
func (brokenStore) HistoryAfter(context.Context, string, int64, int64, int) ([]*parleypb.Message, bool, error) {
	return nil, false, errSecret
}

func TestInternalErrorsAreHidden(t *testing.T) {
	secret, err := auth.NewSecret()
	require.NoError(t, err)
	signer, err := auth.NewSigner(secret, time.Hour)
	require.NoError(t, err)
	token, err := signer.Issue("alice", "d1")
	require.NoError(t, err)
	var logs bytes.Buffer
	mux := http.NewServeMux()
	api.New(api.Options{Store: brokenStore{}, Signer: signer, BcryptCost: 4,
		Log: slog.New(slog.NewTextHandler(&logs, nil))}).Register(mux)

	cases := []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"username":"alice","password":"` + password + `"}`},
		{"POST", "/v1/sessions", `{"username":"alice","password":"` + password + `"}`},
		{"GET", "/v1/users/alice", ""},
		{"GET", "/v1/conversations/dm:alice:bob/messages", ""},
		{"DELETE", "/v1/sessions/current", ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			logs.Reset()
			r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			r.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			requireError(t, w.Code, w.Body.Bytes(), http.StatusInternalServerError, "internal")
			require.NotContains(t, w.Body.String(), "secret")
			require.Contains(t, logs.String(), "secret detail", "logged server-side")
		})
	}
}
