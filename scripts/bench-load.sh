#!/usr/bin/env bash
# scripts/bench-load.sh OUT.md — the short standard load scenario of `make bench`, against
# $DATABASE_URL: Postgres's own insert ceiling on our table shape, then one node
# (automanaged, loopback) driven by cmd/loadgen: 1:1 traffic at a fixed rate and a
# 200-member group. Appends its Markdown to OUT.md. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
: "${DATABASE_URL:?DATABASE_URL must name the database to use}"
BIN=bin
mkdir -p "$BIN"
go build -o "$BIN/node" ./cmd/node
go build -o "$BIN/loadgen" ./cmd/loadgen
go build -o "$BIN/pgceiling" ./cmd/pgceiling
export PARLEY_TOKEN_SECRET=bench-secret-0123456789abcdef0123456789
export PARLEY_CONFIG=$BIN/bench-load.yaml
sed -e 's/^  bcryptCost: .*/  bcryptCost: 4/' -e 's/^  frameRate: .*/  frameRate: 5000/' \
	-e 's/^  frameBurst: .*/  frameBurst: 10000/' -e 's/^  level: info/  level: warn/' cluster.yaml >"$PARLEY_CONFIG"
trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT

{
	printf '\n## Load: Postgres ceiling, then one node under cmd/loadgen\n\n'
	"$BIN/pgceiling" -db "$DATABASE_URL" -method both -writers 4 -duration 5s
} | tee -a "$out"
scripts/cluster.sh stop >/dev/null
scripts/cluster.sh start 1 >&2
run() {
	local md
	md=$(mktemp)
	"$BIN/loadgen" -url http://127.0.0.1:8080 -node-pid auto -md "$md" "$@" >/dev/null
	tee -a "$out" <"$md"
	rm -f "$md"
}
run -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64
run -scenario group -groups 1 -members 200 -rate 100 -duration 5s -register-par 64
