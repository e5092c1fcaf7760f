package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gobwas/ws"

	"github.com/parleychat/parley/client"
)

// frameError is an error frame that answered a request on the WebSocket.
type frameError struct {
	code, message string
}

func (e *frameError) Error() string { return fmt.Sprintf("%s (%s)", e.message, e.code) }

// exitCode maps an error to the exit code scripts see (the package doc lists them).
func exitCode(err error) int {
	var x *exitError
	var api *client.APIError
	var fe *frameError
	var st ws.StatusError
	switch {
	case errors.As(err, &x):
		return x.code
	case errors.As(err, &api):
		if c := codeOf(api.Code); c != exitError1 {
			return c
		}
		return statusCode(api.Status)
	case errors.As(err, &fe):
		return codeOf(fe.code)
	case errors.As(err, &st):
		return statusCode(int(st))
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return exitError1
}

// codeOf maps a protocol error code.
func codeOf(code string) int {
	switch code {
	case "bad_request", "too_large":
		return exitUsage
	case "unauthorized":
		return exitUnauthed
	case "not_found":
		return exitNotFound
	case "forbidden":
		return exitForbidden
	case "conflict":
		return exitConflict
	}
	return exitError1
}

// statusCode maps an HTTP status (for answers without a protocol error code).
func statusCode(status int) int {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return exitUsage
	case http.StatusUnauthorized:
		return exitUnauthed
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusForbidden:
		return exitForbidden
	case http.StatusConflict:
		return exitConflict
	}
	return exitError1
}

// describe words an API error for people: the server's message, then its code.
func describe(err error) error {
	var api *client.APIError
	if errors.As(err, &api) {
		switch {
		case api.Message != "" && api.Code != "":
			return &apiErr{api: api, text: fmt.Sprintf("%s (%s)", api.Message, api.Code)}
		case api.Status == http.StatusUnauthorized:
			return &apiErr{api: api, text: "unauthorized: log in again (parley login)"}
		default:
			return &apiErr{api: api, text: fmt.Sprintf("the server answered %d %s", api.Status, http.StatusText(api.Status))}
		}
	}
	var st ws.StatusError
	if errors.As(err, &st) && int(st) == http.StatusUnauthorized {
		return &exitError{code: exitUnauthed, err: errors.New("the session was refused: log in again (parley login)")}
	}
	return err
}

// apiErr keeps the APIError (for the exit code) under a friendlier text.
type apiErr struct {
	api  *client.APIError
	text string
}

func (e *apiErr) Error() string { return e.text }
func (e *apiErr) Unwrap() error { return e.api }
