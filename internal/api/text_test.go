package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/proto/parleypb"
)

// echoGroups answers every group request as if it succeeded, counting calls.
func echoGroups(calls *atomic.Int32) func(*api.Options) {
	return func(o *api.Options) {
		o.Groups = func(_ context.Context, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error) {
			calls.Add(1)
			return &parleypb.GroupResponse{Group: req.Group, Name: req.Name, Owner: req.By,
				Members: append([]string{req.By}, req.Members...)}, nil
		}
	}
}

// Finding 14: names shown to other users refuse control, bidi and zero-width
// characters and invalid UTF-8.
func TestNameHygiene(t *testing.T) {
	var calls atomic.Int32
	e := mustStart(t, nil, echoGroups(&calls))
	e.mustUser(t, "alice", "Alice")
	token, _ := e.mustLogin(t, "alice", "")

	bad := []struct{ name, json string }{
		{"NUL newline HTML", `a\u0000\n<script>`},
		{"newline", `a\nb`},
		{"RLO and ZWSP", `admin\u202e\u200b`},
		{"isolate", `a\u2066b`},
		{"BOM", `\ufeffbob`},
		{"raw invalid UTF-8", "a\xffb"},
	}
	for _, c := range bad {
		t.Run("displayName "+c.name, func(t *testing.T) {
			status, _, body := e.call(t, "POST", "/v1/users", "",
				`{"username":"mallory","password":"`+password+`","displayName":"`+c.json+`"}`)
			requireError(t, status, body, http.StatusBadRequest, "bad_request")
		})
		t.Run("group name "+c.name, func(t *testing.T) {
			status, _, body := e.call(t, "POST", "/v1/groups", token, `{"name":"`+c.json+`","members":[]}`)
			requireError(t, status, body, http.StatusBadRequest, "bad_request")
		})
	}
	require.Zero(t, calls.Load(), "a refused name never reaches the group grain")

	status, _, body := e.call(t, "POST", "/v1/users", "",
		`{"username":"zoe","password":"`+password+`","displayName":"Zoë 張 🎉 <b>"}`)
	require.Equal(t, http.StatusCreated, status, string(body))
	status, _, body = e.call(t, "POST", "/v1/groups", token, `{"name":" Café <b> مرحبا ","members":[]}`)
	require.Equal(t, http.StatusCreated, status, string(body))
	require.Contains(t, string(body), `"name":"Café <b> مرحبا"`)
	require.EqualValues(t, 1, calls.Load())
}

// A group id that is not the server's shape (here not even UTF-8) is 404 without
// a lookup, and a conversation id naming it is 400.
func TestMalformedGroupPath(t *testing.T) {
	var calls atomic.Int32
	e := mustStart(t, nil, echoGroups(&calls))
	e.mustUser(t, "alice", "Alice")
	token, _ := e.mustLogin(t, "alice", "")
	status, _, body := e.call(t, "GET", "/v1/groups/%FF", token, "")
	requireError(t, status, body, http.StatusNotFound, "not_found")
	status, _, body = e.call(t, "GET", "/v1/conversations/group:%FF/messages", token, "")
	requireError(t, status, body, http.StatusBadRequest, "bad_request")
	require.Zero(t, calls.Load())
}
