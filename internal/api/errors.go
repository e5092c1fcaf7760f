package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// statusOf is the HTTP status of each error reason.
var statusOf = map[parleypb.ErrorReason]int{
	parleypb.ErrorReason_BAD_REQUEST:  http.StatusBadRequest,
	parleypb.ErrorReason_UNAUTHORIZED: http.StatusUnauthorized,
	parleypb.ErrorReason_FORBIDDEN:    http.StatusForbidden,
	parleypb.ErrorReason_NOT_FOUND:    http.StatusNotFound,
	parleypb.ErrorReason_CONFLICT:     http.StatusConflict,
	parleypb.ErrorReason_TOO_LARGE:    http.StatusRequestEntityTooLarge,
	parleypb.ErrorReason_RATE_LIMITED: http.StatusTooManyRequests,
	parleypb.ErrorReason_UNAVAILABLE:  http.StatusServiceUnavailable,
	parleypb.ErrorReason_INTERNAL:     http.StatusInternalServerError,
}

// maxBodyBytes caps a request body; a larger one is answered with too_large.
const maxBodyBytes = 64 << 10

// errorf is an error whose reason and message the client may see: a grain error,
// as grains answer them.
func errorf(r parleypb.ErrorReason, message string) error { return parleypb.Errorf(r, "%s", message) }

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError answers with status and the body {"error":{"code","message"}}.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	var body errorBody
	body.Error.Code, body.Error.Message = code, message
	writeJSON(w, status, body)
}

// classify maps an error to what the client sees: the one place that turns Go
// errors into PROTOCOL.md reasons. internal reports that err must be logged because
// its text is withheld (or it is an outage).
func classify(err error) (reason parleypb.ErrorReason, message string, internal bool) {
	var ge *parleypb.GrainError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ge):
		internal := ge.Reason == parleypb.ErrorReason_INTERNAL || ge.Reason == parleypb.ErrorReason_UNAVAILABLE
		if ge.Reason == parleypb.ErrorReason_INTERNAL {
			return ge.Reason, "internal error", true
		}
		return ge.Reason, ge.Message, internal
	case errors.As(err, &tooBig):
		return parleypb.ErrorReason_TOO_LARGE, "request body too large", false
	case errors.Is(err, auth.ErrInvalidToken):
		return parleypb.ErrorReason_UNAUTHORIZED, "missing or invalid token", false
	case errors.Is(err, persistence.ErrNotFound):
		return parleypb.ErrorReason_NOT_FOUND, "not found", false
	case errors.Is(err, persistence.ErrConflict):
		return parleypb.ErrorReason_CONFLICT, "conflict", false
	case errors.Is(err, persistence.ErrUnavailable):
		return parleypb.ErrorReason_UNAVAILABLE, "store unavailable, try again", true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return parleypb.ErrorReason_UNAVAILABLE, "service unavailable, try again", true
	}
	return parleypb.ErrorReason_INTERNAL, "internal error", true
}

// fail answers r with err mapped by classify, logging errors whose text the
// client does not see.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	reason, message, internal := classify(err)
	if internal {
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the client went away
		}
		a.log.Log(r.Context(), level, "request failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	if reason == parleypb.ErrorReason_UNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	var limited *rateLimited
	if errors.As(err, &limited) {
		w.Header().Set("Retry-After", retryAfter(limited.retry))
	}
	WriteError(w, statusOf[reason], reason.Code(), message)
}

// decodeBody reads r's JSON body (at most maxBodyBytes) into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errorf(parleypb.ErrorReason_BAD_REQUEST, "reading request body failed")
	}
	if !utf8.Valid(data) {
		// encoding/json would quietly turn the bad bytes into U+FFFD.
		return errorf(parleypb.ErrorReason_BAD_REQUEST, "request body is not valid UTF-8")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errorf(parleypb.ErrorReason_BAD_REQUEST, "request body is not a valid JSON object of the expected shape")
	}
	return nil
}

// writeJSON answers with status and v as JSON. HTML characters are not escaped.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a programming error (an unencodable type) gets here.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
