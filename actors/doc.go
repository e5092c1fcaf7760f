// Package actors holds Parley's actors: the User and Conversation grains (virtual
// actors of the Proto.Actor cluster, one per user and per conversation, wherever
// they live) and the connection actor (one per WebSocket, on the node holding it).
//
// Each actor is one type switch over ctx.Message(); its state is touched only inside
// Receive, so it holds no locks. Grains never block on another grain: they ask with a
// future and continue with ReenterAfter. Appends to the store, which wait for a group
// commit, run in a goroutine whose result comes back to the actor as a message;
// short reads (activation, sync and history pages, gap fills) run inline, bounded by
// the request timeout.
//
// Every request between actors is idempotent, because Proto.Actor re-executes a
// request whose reply timed out: posts carry the client's message id, enqueues carry
// message ids, acks carry cumulative positions.
package actors
