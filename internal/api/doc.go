// Package api serves the REST endpoints of PROTOCOL.md ("stateless tier"):
// accounts (POST /v1/users), sessions (POST /v1/sessions, and logout with
// DELETE /v1/sessions/current), user profiles (GET /v1/users/{id}), groups and
// conversation history (GET /v1/conversations/{id}/messages). Logins and
// sign-ups are throttled per source address and per account ([Throttle]).
//
// Its only state is bounded: the throttles' buckets and the token-generation
// cache of its [auth.Sessions]. Accounts and messages live in the [Store],
// tokens are issued, checked and revoked by the auth.Sessions, and live
// presence comes from a [Presence] function. An [API] is not changed after
// [New], and its handlers are safe for concurrent use.
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
