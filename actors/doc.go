// Package actors holds Parley's actors: the Conversation grain (the single writer of
// one conversation, direct or group), the User grain (a user's live connections) —
// virtual actors of the Proto.Actor cluster, one per identity, wherever they live —
// and the connection actor (one per WebSocket, on the node holding it).
//
// # The path of a message
//
// The connection asks the conversation grain to post; the grain assigns the message
// id and appends the batch of posts waiting to the store, which commits the messages
// and, in the same transaction, a range entry in every member's sync queue (the
// queue's seqs are assigned there, under the queue's row lock). Only then does the
// grain answer sent, and push the new entries, with their seqs, to each member's user
// grain, which relays them to its connections. A push is best effort: the entries
// are in the queues already, and a connection that misses one reads the gap from the
// store when the next push shows it, or at its next sync.
//
// # Rules
//
// Each actor is one type switch over ctx.Message(); its state is touched only inside
// Receive, so it holds no locks. An actor never blocks on another grain: it asks with
// ask (a future, continued with ReenterAfter, under one retry policy); Call is the
// blocking form for callers outside actors (REST). Writes to the store are submitted
// to the group commit, whose outcome comes back to the actor as a message; short reads
// (activation, sync and history pages, gap fills) run inline, bounded by the request
// timeout.
//
// Every request between actors is idempotent, because Proto.Actor re-executes a
// request whose reply timed out: posts carry the client's message id, attaches the
// connection's PID, pushes the seqs the entries took.
package actors
