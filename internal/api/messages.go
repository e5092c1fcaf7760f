package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

type historyAnswer struct {
	Messages []json.RawMessage `json:"messages"`
	More     bool              `json:"more"`
}

// history serves GET /v1/conversations/{id}/messages?before=&limit=.
func (a *API) history(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	conv := r.PathValue("id")
	after, err := a.readable(r.Context(), conv, claims.UserID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	before, limit, err := a.pageParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	msgs, more, err := a.store.History(r.Context(), conv, before, after, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := historyAnswer{Messages: make([]json.RawMessage, len(msgs)), More: more}
	for i, m := range msgs {
		out.Messages[i] = wire.MessageJSON(m)
	}
	writeJSON(w, http.StatusOK, out)
}

// readable checks that user may read conv (a member of the direct conversation or
// of the group) and returns the message id its history starts after: a group
// member's join, 0 otherwise.
func (a *API) readable(ctx context.Context, conv, user string) (after int64, err error) {
	id, err := convid.Parse(conv)
	switch {
	case err != nil:
		return 0, errorf(parleypb.ErrorReason_BAD_REQUEST, "malformed conversation id")
	case id.Kind == convid.Group:
		res, err := a.group(ctx, &parleypb.GroupRequest{Op: parleypb.GroupRequest_MEMBERSHIP, Group: id.Group, By: user})
		if err != nil {
			return 0, err
		}
		return res.JoinedAt, nil
	case user != id.Members[0] && user != id.Members[1]:
		return 0, errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of this conversation")
	}
	return 0, nil
}

// pageParams reads ?before= (a message id; absent: the newest) and ?limit=
// (default Limits.HistoryDefault, clamped to Limits.HistoryMax).
func (a *API) pageParams(r *http.Request) (before int64, limit int, err error) {
	q := r.URL.Query()
	if s := q.Get("before"); s != "" {
		before, err = strconv.ParseInt(s, 10, 64)
		if err != nil || before < 1 {
			return 0, 0, errorf(parleypb.ErrorReason_BAD_REQUEST, "before must be a message id")
		}
	}
	limit = a.limits.HistoryDefault
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if errors.Is(err, strconv.ErrRange) && s[0] != '-' {
			limit, err = a.limits.HistoryMax, nil // too large for an int: clamp like any other
		}
		if err != nil || limit < 1 {
			return 0, 0, errorf(parleypb.ErrorReason_BAD_REQUEST, "limit must be a positive integer")
		}
	}
	return before, min(limit, a.limits.HistoryMax), nil
}
