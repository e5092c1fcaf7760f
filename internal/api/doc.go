// Package api serves the REST endpoints of PROTOCOL.md ("stateless tier"):
// accounts (POST /v1/users), sessions (POST /v1/sessions), user profiles
// (GET /v1/users/{id}) and conversation history
// (GET /v1/conversations/{id}/messages).
//
// It owns no state of its own: accounts and messages live in the [Store],
// tokens are issued and checked by an [auth.Signer], and live presence comes
// from a [Presence] function. An [API] is immutable after [New] and its
// handlers are safe for concurrent use.
//
// # Errors
//
// Every error answer is {"error":{"code":"...","message":"..."}} with a code
// of PROTOCOL.md. Handlers return Go errors; one function maps them to a
// status and code, and internal errors are logged and shown to the client only
// as "internal error". [WriteError], [BearerToken] and [UpgradeToken] are
// exported for the node's WebSocket upgrade and admin endpoint, which answer
// the same way.
//
// Conversation ids are parsed by package convid.
package api
