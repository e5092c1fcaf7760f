package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

type historyAnswer struct {
	Messages []json.RawMessage `json:"messages"`
	More     bool              `json:"more"`
}

// history serves GET /v1/conversations/{id}/messages?before=&after=&limit=.
func (a *API) history(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	a.historyOf(w, r, claims, r.PathValue("id"))
}

// historyOf answers a history page of conv: without after, the limit messages just
// before before (or the newest); with after, the limit oldest above it (and below
// before, if given). more says whether more lie beyond the page in its direction.
func (a *API) historyOf(w http.ResponseWriter, r *http.Request, claims auth.Claims, conv string) {
	floor, err := a.readable(r.Context(), conv, claims.UserID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	before, limit, err := a.pageParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var after int64
	if s := r.URL.Query().Get("after"); s != "" {
		after, err = strconv.ParseInt(s, 10, 64)
		if err != nil || after < 0 {
			a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "after must be a message id"))
			return
		}
	}
	var msgs []*parleypb.Message
	var more bool
	if after > 0 {
		msgs, more, err = a.store.HistoryAfter(r.Context(), conv, max(after, floor), before, limit)
	} else {
		msgs, more, err = a.store.History(r.Context(), conv, before, floor, limit)
	}
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

type receiptJSON struct {
	User      string `json:"user"`
	Delivered string `json:"delivered"`
	Read      string `json:"read"`
}

type receiptsAnswer struct {
	Receipts       []receiptJSON `json:"receipts"`
	DeliveredToAll string        `json:"deliveredToAll"`
	ReadByAll      string        `json:"readByAll"`
}

// receipts serves GET /v1/conversations/{id}/receipts: every member's delivered
// and read watermarks (message ids as decimal strings, "0" for none) and the lowest
// of them over the members other than the caller.
func (a *API) receipts(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	conv := r.PathValue("id")
	if _, err := a.readable(r.Context(), conv, claims.UserID); err != nil {
		a.fail(w, r, err)
		return
	}
	ws, err := a.store.Receipts(r.Context(), conv)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if id, _ := convid.Parse(conv); id.Kind == convid.Direct {
		ws = withMembers(ws, id.Members) // a member with no receipt yet has none
	}
	out := receiptsAnswer{Receipts: make([]receiptJSON, len(ws))}
	for i, x := range ws {
		out.Receipts[i] = receiptJSON{User: x.User, Delivered: strconv.FormatInt(x.Delivered, 10),
			Read: strconv.FormatInt(x.Read, 10)}
	}
	delivered, read := persistence.ByAll(ws, claims.UserID)
	out.DeliveredToAll, out.ReadByAll = strconv.FormatInt(delivered, 10), strconv.FormatInt(read, 10)
	writeJSON(w, http.StatusOK, out)
}

// withMembers adds a zero watermark for each member that ws lacks, in user order.
func withMembers(ws []persistence.Watermark, members []string) []persistence.Watermark {
	for _, m := range members {
		if !slices.ContainsFunc(ws, func(w persistence.Watermark) bool { return w.User == m }) {
			ws = append(ws, persistence.Watermark{User: m})
		}
	}
	slices.SortFunc(ws, func(a, b persistence.Watermark) int { return strings.Compare(a.User, b.User) })
	return ws
}

// readable checks that user may read conv (a member of the direct conversation or
// of the group) and returns the message id its history starts after: a group
// member's join, 0 otherwise.
func (a *API) readable(ctx context.Context, conv, user string) (after int64, err error) {
	id, err := convid.Parse(conv)
	switch {
	case err != nil:
		return 0, errorf(parleypb.ErrorReason_BAD_REQUEST, "malformed conversation id")
	case id.Kind == convid.Channel:
		return 0, a.channelMember(ctx, conv, user) // a member reads the whole channel
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
