package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/persistence"
)

// Error codes of PROTOCOL.md.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeRateLimited  = "rate_limited"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// statusOf is the HTTP status of each error code.
var statusOf = map[string]int{
	CodeBadRequest:   http.StatusBadRequest,
	CodeUnauthorized: http.StatusUnauthorized,
	CodeForbidden:    http.StatusForbidden,
	CodeNotFound:     http.StatusNotFound,
	CodeConflict:     http.StatusConflict,
	CodeTooLarge:     http.StatusRequestEntityTooLarge,
	CodeRateLimited:  http.StatusTooManyRequests,
	CodeUnavailable:  http.StatusServiceUnavailable,
	CodeInternal:     http.StatusInternalServerError,
}

// maxBodyBytes caps a request body; a larger one is answered with too_large.
const maxBodyBytes = 64 << 10

// clientError is an error whose code and message the client may see.
type clientError struct {
	code, message string
}

func (e *clientError) Error() string { return e.code + ": " + e.message }

func errorf(code, message string) error { return &clientError{code: code, message: message} }

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

// classify maps an error to what the client sees: the one place that turns
// Go errors into PROTOCOL.md codes. internal reports that err must be logged
// because its text is withheld.
func classify(err error) (code, message string, internal bool) {
	var ce *clientError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ce):
		return ce.code, ce.message, false
	case errors.As(err, &tooBig):
		return CodeTooLarge, "request body too large", false
	case errors.Is(err, auth.ErrInvalidToken):
		return CodeUnauthorized, "missing or invalid token", false
	case errors.Is(err, persistence.ErrNotFound):
		return CodeNotFound, "not found", false
	case errors.Is(err, persistence.ErrConflict):
		return CodeConflict, "conflict", false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable, "service unavailable, try again", true
	}
	return CodeInternal, "internal error", true
}

// fail answers r with err mapped by classify, logging errors whose text the
// client does not see.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, message, internal := classify(err)
	if internal {
		level := slog.LevelError
		if r.Context().Err() != nil {
			level = slog.LevelDebug // the client went away
		}
		a.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if code == CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	WriteError(w, statusOf[code], code, message)
}

// decodeBody reads r's JSON body (at most maxBodyBytes) into v.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errorf(CodeBadRequest, "reading request body failed")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errorf(CodeBadRequest, "request body is not a valid JSON object of the expected shape")
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
