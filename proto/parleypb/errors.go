package parleypb

import (
	"errors"
	"fmt"
)

// This file is written by hand, beside the generated code: it makes ErrorReason the
// one vocabulary of client-visible errors. A grain answers with a *GrainError (an
// error), REST maps its Code to an HTTP status, and the connection writes it as an
// error frame, so that a reason has one spelling everywhere (PROTOCOL.md's codes).

var reasonCodes = map[ErrorReason]string{
	ErrorReason_BAD_REQUEST:  "bad_request",
	ErrorReason_UNAUTHORIZED: "unauthorized",
	ErrorReason_FORBIDDEN:    "forbidden",
	ErrorReason_NOT_FOUND:    "not_found",
	ErrorReason_CONFLICT:     "conflict",
	ErrorReason_TOO_LARGE:    "too_large",
	ErrorReason_RATE_LIMITED: "rate_limited",
	ErrorReason_UNAVAILABLE:  "unavailable",
	ErrorReason_INTERNAL:     "internal",
}

// Code is the reason's PROTOCOL.md error code; "internal" for an unknown reason.
func (r ErrorReason) Code() string {
	if c, ok := reasonCodes[r]; ok {
		return c
	}
	return "internal"
}

// Errorf returns a grain error with reason r.
func Errorf(r ErrorReason, format string, args ...any) *GrainError {
	return &GrainError{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// Error makes a grain error an error: "code: message".
func (e *GrainError) Error() string { return e.Reason.Code() + ": " + e.Message }

// Code is the error's PROTOCOL.md code.
func (e *GrainError) Code() string { return e.Reason.Code() }

// Is matches another *GrainError of the same reason, so that
// errors.Is(err, &GrainError{Reason: ErrorReason_NOT_FOUND}) asks for the reason.
func (e *GrainError) Is(target error) bool {
	var t *GrainError
	return errors.As(target, &t) && t.Reason == e.Reason
}

// ReasonOf is the reason of a grain error in err's chain, or INTERNAL.
func ReasonOf(err error) ErrorReason {
	var e *GrainError
	if errors.As(err, &e) {
		return e.Reason
	}
	return ErrorReason_INTERNAL
}
