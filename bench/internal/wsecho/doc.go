// Package wsecho is the "bare gobwas/ws server" reference that Parley's benchmarks
// compare against: the simplest idiomatic echo server on github.com/gobwas/ws, and a
// driver that measures its raw frame echo rate and its process memory per idle
// connection the way bench/internal/loadgen measures a Parley node.
//
// # The server
//
// [Server] accepts TCP connections, upgrades each with ws.Upgrade on the net.Conn
// and then runs one goroutine per connection that reads a data frame with
// wsutil.ReadClientData and writes it back with wsutil.WriteServerMessage. There is
// no buffering, no pooling and no netpoll: one parked goroutine per idle socket.
// Control frames (ping, close) are answered by wsutil. [ServeMain] is the body of
// `wsecho -serve ADDR`; it listens on loopback only and stops by itself after a
// lifetime.
//
// # The driver
//
// [Run] starts the server as a child process (so that its RSS is the server's
// alone), waits for it to listen on a free loopback port, warms it up with one
// connection, and then opens [Config.Conns] client connections spread over source
// addresses 127.0.0.2, 127.0.0.3, … with IP_BIND_ADDRESS_NO_PORT and SO_LINGER 0
// (RST on close, so no TIME_WAIT is left behind). Every connection proves it is live
// with one echoed frame before it counts as up. Then, by [Config.Mode]:
//
//   - idle: hold the connections without traffic for [Config.Hold] and report
//     (server RSS when all are up − RSS before)/conns, as loadgen does, and the
//     same figure again at the end of the hold;
//   - echo: each connection keeps [Config.Window] binary frames of [Config.Size]
//     bytes in flight for [Config.Duration]; every echo is checked to be
//     byte-identical to what was sent, and the result has echoed frames/s and the
//     round-trip p50/p99/p99.9/max.
//
// # Limits
//
// A process here may hold at most 20,000 open files and that cannot be raised
// (shared/research/machine.md §4). The server is one process, so it cannot hold
// more than about 19,990 connections whoever the clients are; the driver therefore
// keeps all clients in its own single process and caps [Config.Conns] at
// [MaxConns] (19,000). Everything is loopback only and bounded in time: the server
// child gets a lifetime, dies with its parent (Pdeathsig) and is stopped explicitly
// when [Run] returns.
package wsecho
