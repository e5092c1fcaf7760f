// Package ids generates the 64-bit, roughly time-ordered identifiers used for
// messages and other entities in parley (a Snowflake-style scheme).
//
// # Layout
//
// An id is a non-negative int64 laid out, from the most significant bit, as
//
//	| 1 bit: 0 (sign) | 41 bits: ms since Epoch | 10 bits: node | 12 bits: sequence |
//
// The timestamp counts milliseconds since Epoch (2024-01-01T00:00:00Z), which
// covers about 69 years. The node id (0..MaxNode) must be unique among the
// generators running at the same time; the sequence numbers ids issued within
// the same millisecond by one node (up to 4096).
//
// Because the timestamp occupies the high bits, comparing two ids compares
// their timestamps first; ids from different nodes in the same millisecond
// are ordered by node id.
//
// # Guarantees and concurrency
//
// A Generator is safe for concurrent use by multiple goroutines (its state is
// guarded by a mutex) and never blocks or sleeps. Every id it issues, through
// Next or NextAfter, is strictly greater than every id it issued before, even
// if the wall clock steps backwards: the generator keeps a logical
// millisecond that never decreases, keeps issuing at that millisecond while
// the clock is behind it, and moves it forward by one when the 4096 sequence
// numbers of a millisecond are used up. Under sustained overload or a clock
// that went back, issued timestamps may therefore run slightly ahead of the
// wall clock.
//
// NextAfter additionally makes the id greater than a given id, typically the
// previous id in a conversation that may have been issued by another node
// whose clock is ahead; WithFloor lets a generator that takes over a node id
// start strictly above the high-water mark (LastMillis) persisted by the
// previous holder.
//
// Ordering guarantees hold per Generator. Two generators must never share a
// node id at the same time, or duplicate ids may result.
package ids
