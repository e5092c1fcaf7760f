#!/usr/bin/env bash
# scripts/bench-scale.sh [quick|ceilings|idle|cluster|dm|group|storm|all]...
#
# The benchmarks of docs/BENCHMARKS.md, one command each. They use nodes started by
# scripts/cluster.sh (automanaged provider, loopback) and bench/cmd/loadgen, against
# $DATABASE_URL if set, else their own durable PostgreSQL (default settings) in
# .pgdata/bench on port 55434, and append their Markdown to $BENCH_OUT (default
# bench/results/DATE-scale.md).
#
#   quick     the short scenario of `make bench` (about a minute): Postgres's ceiling,
#             1:1 at 1,000 msgs/s over 200 connections, a 200-member group at 100 posts/s
#   ceilings  Postgres's insert ceiling on our table shape (COPY, 1000-row INSERT) and a
#             bare gobwas/ws echo server's frame rate and idle memory
#   idle      one node holding 5k, 10k and 19k idle connections (fresh node each)
#   cluster   10 nodes holding 180k idle connections together
#   dm        1:1 traffic at rising rates (p99 send-to-delivery against 20 ms)
#   group     one 500-member group, all online, at rising post rates
#   storm     50k clients (on 4 nodes) reconnect and sync 20 missed messages each
set -euo pipefail
cd "$(dirname "$0")/.."

PG_DIR=${PG_BENCH_DIR:-$PWD/.pgdata/bench}
PG_PORT=${PG_BENCH_PORT:-55434}
OUT=${BENCH_OUT:-bench/results/$(date +%F)-scale.md}
BIN=bin
export PARLEY_TOKEN_SECRET=${PARLEY_TOKEN_SECRET:-bench-secret-0123456789abcdef0123456789}
export PARLEY_CONFIG=$BIN/bench.yaml

setup() {
	scripts/deps.sh
	mkdir -p "$BIN" "$(dirname "$OUT")"
	go build -o "$BIN/node" ./cmd/node
	go build -o "$BIN/loadgen" ./bench/cmd/loadgen
	go build -o "$BIN/pgceiling" ./bench/cmd/pgceiling
	# Cheap password hashes (the runs register thousands of users), a frame rate that
	# lets one sender post hundreds of messages/s, and quiet logs.
	sed -e 's/^  bcryptCost: .*/  bcryptCost: 4/' -e 's/^  frameRate: .*/  frameRate: 5000/' \
		-e 's/^  frameBurst: .*/  frameBurst: 10000/' -e 's/^  level: info/  level: warn/' cluster.yaml >"$PARLEY_CONFIG"
	DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh start "$PG_DIR" "$PG_PORT")}
	export DATABASE_URL
	[[ -s $OUT ]] || printf '# Scale benchmarks %s: %s, %s CPUs, %s GiB, %s\n' "$(date +%F)" "$(uname -m)" \
		"$(nproc)" "$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1048576))" "$(go version)" >"$OUT"
}

section() { printf '\n## %s\n\n' "$*" | tee -a "$OUT"; }

nodes() { # n: start n fresh nodes; prints their URLs comma-separated
	scripts/cluster.sh stop >/dev/null
	scripts/cluster.sh start "$1" >&2
	local u=() i
	for ((i = 1; i <= $1; i++)); do u+=("http://127.0.0.1:$((8079 + i))"); done
	(IFS=,; echo "${u[*]}")
}

loadgen() { # args...: one run, its Markdown appended to OUT
	local md
	md=$(mktemp)
	"$BIN/loadgen" -node-pid auto -md "$md" "$@" >/dev/null
	cat "$md" >>"$OUT"
	cat "$md"
	rm -f "$md"
}

quick() {
	section "Load: Postgres ceiling, then one node under bench/cmd/loadgen"
	"$BIN/pgceiling" -db "$DATABASE_URL" -method both -writers 4 -duration 5s | tee -a "$OUT"
	local url
	url=$(nodes 1)
	loadgen -url "$url" -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64
	loadgen -url "$url" -scenario group -groups 1 -members 200 -rate 100 -duration 5s -register-par 64
}

ceilings() {
	section "Ceilings: Postgres insert rate on our table shape, bare gobwas/ws echo"
	go build -o "$BIN/wsecho" ./bench/cmd/wsecho
	"$BIN/pgceiling" -db "$DATABASE_URL" -method both -writers 4 -duration 10s | tee -a "$OUT"
	"$BIN/wsecho" -echo -conns 100 -window 8 -size 64 -duration 10s | tee -a "$OUT"
	for n in 5000 19000; do "$BIN/wsecho" -idle -conns "$n" | tee -a "$OUT"; done
}

idle() {
	section "Idle connections on one node"
	for n in 5000 10000 19000; do
		loadgen -url "$(nodes 1)" -scenario idle -conns "$n" -duration 20s
	done
}

cluster() {
	section "Idle connections on a 10-node cluster"
	loadgen -url "$(nodes 10)" -scenario idle -conns 180000 -duration 30s -dial-par 32
}

dm() {
	section "1:1 traffic, one node, rising rates, and the Postgres ceiling they are held against"
	"$BIN/pgceiling" -db "$DATABASE_URL" -method both -writers 4 -duration 10s | tee -a "$OUT"
	local url
	url=$(nodes 1)
	for rate in 1000 2000 4000 8000 16000; do
		loadgen -url "$url" -scenario dm -conns 400 -rate "$rate" -duration 10s -register-par 64
	done
	loadgen -url "$url" -scenario dm -conns 400 -rate 0 -window 16 -duration 10s -register-par 64
}

group() {
	section "Group fan-out: one 500-member group, all online"
	local url
	url=$(nodes 1)
	for rate in 50 100 200 400; do
		loadgen -url "$url" -scenario group -groups 1 -members 500 -rate "$rate" -duration 10s -register-par 64
	done
}

storm() {
	# A node holds at most ~19k sockets (the 20,000 open-file cap): 50k need 4 nodes.
	section "Reconnect storm: 50k clients on 4 nodes, 20 missed messages each"
	loadgen -url "$(nodes 4)" -scenario storm -conns 50000 -members 500 -messages 20 -duration 120s -register-par 64
}

trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT
setup
(($# > 0)) || set -- all
for what in "$@"; do
	case $what in
	quick | ceilings | idle | cluster | dm | group | storm) "$what" ;;
	all) ceilings; idle; cluster; dm; group; storm ;;
	*) echo "usage: $0 [quick|ceilings|idle|cluster|dm|group|storm|all]..." >&2; exit 2 ;;
	esac
done
echo "bench-scale: wrote $OUT" >&2
