#!/usr/bin/env bash
# scripts/bench-scale.sh [quick|ceilings|idle|cluster|dm|sustain|receipts|push|channel|channel-cluster|channelbench|group|storm|catchup|steady|soak|all]...
#
# The benchmarks of docs/BENCHMARKS.md, one command each. They use nodes started by
# scripts/cluster.sh (automanaged provider, loopback) and bench/cmd/loadgen, against
# $DATABASE_URL if set, else their own durable PostgreSQL (default settings) in
# .pgdata/bench on port 55434, and append their Markdown to $BENCH_OUT (default
# bench/results/DATE-scale.md).
#
#   quick     the short scenario of `make bench` (about two minutes): Postgres's ceiling,
#             1:1 at 1,000 msgs/s over 200 connections, a 200-member group at 100 posts/s,
#             receipts' rows per message (1:1 at 1,000 msgs/s without, then with them), push,
#             and a 2,000-member channel with 1,000 members online at 10 posts/s for 10 s
#   ceilings  Postgres's insert ceiling on our table shape (COPY, 1000-row INSERT) and a
#             bare gobwas/ws echo server's frame rate and idle memory
#   idle      one node holding 5k, 10k and 19k idle connections (fresh node each)
#   cluster   10 nodes holding 180k idle connections together
#   dm        1:1 traffic at rising rates (p99 send-to-delivery against 20 ms)
#   sustain   the most 1:1 msgs/s one node sustains with p99 send-to-delivery <= 50 ms:
#             rising fixed rates (400 connections, 10 s each; SUSTAIN_RATES overrides
#             the list) until p99 exceeds 50 ms or delivered falls under 97 % of offered
#   receipts  the cost of receipts, on one node: at each of RECEIPTS_RATES (1000 2000
#             3000), twice, 1:1 without them, then with every recipient acknowledging
#             each message (received) and reading every 4th (read); then the capacity
#             (-rate 0 -window 16) without and with, RECEIPTS_ROUNDS times (default 2),
#             each with the steal time of its measured phase. Each run's rows written per
#             message delivered, from PostgreSQL's table statistics (pg_stat_user_tables)
#   push      the cost of push, on one node: one-way 1:1 where each recipient has a
#             webhook push target (loadgen -push-sink is the gateway), at each of
#             PUSH_RATES (1000 2000 3000), twice, recipients online, then offline (every
#             message makes a push); then the capacity both ways, twice
#   channel   issue 13's benchmark on one node: a CHANNEL_MEMBERS (100,000)-member broadcast
#             channel, CHANNEL_ONLINE (19,000) of them online (two loadgen workers: the owner's
#             socket is one more), the owner posting for CHANNEL_DURATION (20s) at each of
#             CHANNEL_RATES (1 10) posts/s, then at each of CHANNEL_SUSTAIN_RATES (15 20 25 30 40
#             50 60 80 100; "" skips) until p99 post->delivery exceeds 100 ms, deliveries fall
#             under 97 % of rate x online, or a post goes missing: the last rate that held is "as
#             fast as it sustains". Each run: posts/s, deliveries/s, p50/p99/max post->delivery,
#             missing and duplicated deliveries, node CPU per delivery (socket writes included),
#             node RSS, rows written per post (pg_stat_user_tables, in loadgen) and loadgen's
#             CPU per frame. The users (-users-prefix CHANNEL_PREFIX, default lgchan) and their
#             channel are made by the first run and reused by the next ones, and by later
#             invocations on the same database. A rate of 0 posts as fast as 16 unanswered
#             posts allow. First, with no node running, the bare loopback fan-out ceiling
#             at CHANNEL_RATES (bench/cmd/fanceiling: one 280-byte write per socket per
#             burst to CHANNEL_ONLINE sockets, read by a second process), so that the run's
#             figures read against what the kernel alone allows on these cores
#   channel-cluster  the same figures for a 4-node cluster: the same 100,000-member channel
#             shape with 19,000 members online on each node (76,000 connections over five
#             loadgen workers; members go round robin over the nodes), posts at each of
#             CHANNEL_CLUSTER_RATES (10) posts/s for CHANNEL_DURATION
#   channelbench  the same channel on one node through bench/cmd/channelbench instead of
#             loadgen (members bulk-loaded into PostgreSQL, one client process): CHANNEL_MEMBERS,
#             CHANNEL_ONLINE, posts at each of CHANNEL_RATES (1,10,0: 0 is as fast as 16
#             unanswered posts allow) for 20 s, after the same ceiling as `channel`
#   group     one 500-member group, all online, at rising post rates
#   storm     50k clients (on 4 nodes) reconnect and sync 20 missed messages each
#   catchup   the same on one node: 2,000 clients, 20 missed messages each, 512 dials
#             in flight (CATCHUP_DIAL_PAR)
#   steady    1:1 at STEADY_RATE msgs/s (default 3000) over 400 connections on one node
#             for STEADY_MINUTES (default 10), node RSS and Go heap every 10 s
#   soak      (not in `all`) SOAK_MINUTES (default 30) of mixed 1:1, group, reconnecting
#             and slow-reader load on 3 nodes that bench/cmd/soak starts itself (loopback
#             ports 27101-27163, mutual TLS), one SIGKILLed and started again every
#             KILL_EVERY (default 5m); at the end every acked message must be in each
#             recipient's sync queue exactly once and the nodes' summed RSS flat within
#             ±10 % after the warm-up. Its own durable PostgreSQL in .pgdata/soak/pg on
#             port 55461 (PG_SOAK_DIR, PG_SOAK_PORT) when it runs alone; node logs and
#             result.json in .pgdata/soak. SOAK_REV=<commit> builds the node from that
#             commit (git archive) instead of the working tree. Exits 1 if a check failed.
#
# BENCH_SED, if set, is one more sed expression applied to the nodes' config (e.g.
# 's/^  committers: .*/  committers: 1/') to compare settings.
#
# Every run scrapes the nodes' GET /metrics before and after its measured phase
# (loadgen -metrics auto; set PARLEY_ADMIN_TOKEN if the nodes need one).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_DIR=${PG_BENCH_DIR:-$PWD/.pgdata/bench}
PG_PORT=${PG_BENCH_PORT:-55434}
SOAK_DIR=$PWD/.pgdata/soak
if [[ " $* " == " soak " && -z ${DATABASE_URL:-} ]]; then
	# The soak alone gets a PostgreSQL of its own, stopped when it ends (its data is kept).
	PG_DIR=${PG_SOAK_DIR:-$SOAK_DIR/pg}
	PG_PORT=${PG_SOAK_PORT:-55461}
	trap 'scripts/pg.sh stop "$PG_DIR" || true' EXIT
fi
OUT=${BENCH_OUT:-bench/results/$(date +%F)-scale.md}
BIN=bin
export PARLEY_TOKEN_SECRET=${PARLEY_TOKEN_SECRET:-bench-secret-0123456789abcdef0123456789}
export PARLEY_CONFIG=$BIN/bench.yaml
# The nodes' webhook push gateway: loadgen -push-sink serves it during the push runs.
PUSH_SINK=127.0.0.1:8199
export PARLEY_PUSH_WEBHOOK_SECRET=${PARLEY_PUSH_WEBHOOK_SECRET:-bench-webhook-secret-0123456789abcdef}

setup() {
	scripts/deps.sh
	mkdir -p "$BIN" "$(dirname "$OUT")"
	go build -o "$BIN/node" ./cmd/node
	go build -o "$BIN/loadgen" ./bench/cmd/loadgen
	go build -o "$BIN/pgceiling" ./bench/cmd/pgceiling
	go build -o "$BIN/channelbench" ./bench/cmd/channelbench
	go build -o "$BIN/fanceiling" ./bench/cmd/fanceiling
	# listen.maxConns 19,500 (of the 20,000 open files): 19,000 members of a channel and
	# the sockets that post to them.
	# Cheap password hashes (the runs register thousands of users), a frame rate and
	# a user send budget that let one sender post hundreds of messages/s, quiet logs,
	# and a heartbeat deadline past the longest run (loadgen's clients do not ping).
	sed -e 's/^  bcryptCost: .*/  bcryptCost: 4/' -e 's/^  frameRate: .*/  frameRate: 5000/' \
		-e 's/^  userSends: .*/  userSends: {rate: 5000, burst: 10000}/' \
		-e 's/^  frameBurst: .*/  frameBurst: 10000/' -e 's/^  level: info/  level: warn/' \
		-e 's/^  deadAfter: .*/  deadAfter: 1h/' -e 's/^  maxConns: 19000/  maxConns: 19500/' -e "s|^    url: \"\"|    url: http://$PUSH_SINK/push|" \
		${BENCH_SED:+-e "$BENCH_SED"} cluster.yaml >"$PARLEY_CONFIG"
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

loadgen() { # args...: one run, its Markdown appended to OUT; $LOADGEN_JSON, if set, gets its JSON
	local md pg
	md=$(mktemp)
	# PostgreSQL's CPU too, when DATABASE_URL names a loopback port.
	pg=$(sed -nE 's|^postgres(ql)?://[^@/]*@127\.0\.0\.1:([0-9]+)/.*|:\2|p' <<<"$DATABASE_URL")
	"$BIN/loadgen" -node-pid auto -metrics auto ${pg:+-pg-pid "$pg"} -md "$md" ${LOADGEN_JSON:+-json "$LOADGEN_JSON"} "$@" >/dev/null
	cat "$md" >>"$OUT"
	cat "$md"
	rm -f "$md"
}

# rowsWritten: the rows PostgreSQL has inserted, updated and deleted (all tables;
# receipts and device_cursors), as "all receipts cursors". A backend reports its
# counts when it goes idle, at most every 10 s: the caller waits 11 s first.
rowsWritten() {
	psql "$DATABASE_URL" -Atc "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0),
		coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del) FILTER (WHERE relname LIKE 'receipts%'), 0),
		coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del) FILTER (WHERE relname = 'device_cursors'), 0)
		FROM pg_stat_user_tables" | tr '|' ' '
}

# receiptsRun label json args...: one dm run, then the rows it wrote per message delivered.
receiptsRun() {
	local label=$1 json=$2 before after
	shift 2
	sleep 11
	before=$(rowsWritten)
	LOADGEN_JSON=$json loadgen "$@"
	sleep 11
	after=$(rowsWritten)
	awk -v label="$label" -v b="$before" -v a="$after" '
		/^  "delivered":/ { gsub(/,/, "", $2); d = $2 + 0 }
		END {
			split(b, x, " "); split(a, y, " ")
			if (d > 0) printf "%s: %.2f rows written per message delivered (receipts %.2f, cursors %.2f), %d delivered\n", label, (y[1] - x[1]) / d, (y[2] - x[2]) / d, (y[3] - x[3]) / d, d
		}' "$json" | tee -a "$OUT"
}

# passes rate json: prints and tells whether a 1:1 run at rate kept p99 send-to-delivery <= 50 ms and
# delivered >= 97 % of the offered rate (from loadgen's JSON result).
passes() {
	awk -v rate="$1" '
		/^  "deliveredPerSec":/ { gsub(/,/, "", $2); delivered = $2 + 0 }
		/^  "deliveryLatency": \{/ { lat = 1 }
		lat && /"p99Ms":/ { gsub(/,/, "", $2); p99 = $2 + 0; seen = 1; lat = 0 }
		END {
			printf "rate %d: p99 send-to-delivery %.1f ms, delivered %.0f msgs/s (%.1f %%)\n", rate, p99, delivered, 100 * delivered / rate
			exit !(seen && p99 <= 50 && delivered >= 0.97 * rate)
		}' "$2"
}

# pushRun label json args...: one one-way dm run with push targets, then its
# acknowledged rate and p99 send-to-sent.
pushRun() {
	local label=$1 json=$2
	shift 2
	LOADGEN_JSON=$json loadgen -push webhook -push-sink "$PUSH_SINK" "$@"
	awk -v label="$label" '
		/^  "ackedPerSec":/ { gsub(/,/, "", $2); acked = $2 + 0 }
		/^  "sentLatency": \{/ { lat = 1 }
		lat && /"p99Ms":/ { gsub(/,/, "", $2); p99 = $2 + 0; lat = 0 }
		END { printf "%s: acked %.0f msgs/s, p99 send-to-sent %.1f ms\n", label, acked, p99 }' "$json" | tee -a "$OUT"
}

quick() {
	section "Load: Postgres ceiling, then one node under bench/cmd/loadgen"
	"$BIN/pgceiling" -db "$DATABASE_URL" -method both -writers 4 -duration 5s | tee -a "$OUT"
	local url
	url=$(nodes 1)
	loadgen -url "$url" -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64
	loadgen -url "$url" -scenario group -groups 1 -members 200 -rate 100 -duration 5s -register-par 64
	local json
	json=$(mktemp)
	section "Receipts: 1:1 at 1,000 msgs/s without them, then with received on every message and read on every 4th"
	receiptsRun "without receipts" "$json" -url "$url" -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64
	receiptsRun "with receipts" "$json" -url "$url" -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64 -read-every 4
	section "Push: one-way 1:1 at 1,000 msgs/s to recipients online, then offline with a webhook target"
	pushRun "recipients online" "$json" -url "$url" -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64
	pushRun "recipients offline" "$json" -url "$url" -scenario dm -conns 200 -rate 1000 -duration 5s -register-par 64 -push-offline
	section "Channel: 2,000 members, 1,000 of them online, 10 posts/s for 10 s"
	channelRun 10 1000 "$json" -url "$url" -members 2000 -online 1000 -duration 10s || true
	rm -f "$json"
}

push() {
	section "Push: one-way 1:1, recipients online against offline with a webhook target, alternating on one node"
	local url json rate round
	json=$(mktemp)
	url=$(nodes 1)
	"$BIN/loadgen" -url "$url" -scenario dm -conns 400 -rate 1000 -duration 5s -register-par 64 >/dev/null
	for rate in ${PUSH_RATES:-1000 2000 3000}; do
		for round in 1 2; do
			pushRun "round $round, online, $rate msgs/s" "$json" -url "$url" -scenario dm -conns 400 -rate "$rate" \
				-duration 10s -register-par 64
			pushRun "round $round, offline, $rate msgs/s" "$json" -url "$url" -scenario dm -conns 400 -rate "$rate" \
				-duration 10s -register-par 64 -push-offline
		done
	done
	for round in 1 2; do
		pushRun "round $round, capacity, online" "$json" -url "$url" -scenario dm -conns 400 -rate 0 -window 16 \
			-duration 10s -register-par 64
		pushRun "round $round, capacity, offline" "$json" -url "$url" -scenario dm -conns 400 -rate 0 -window 16 \
			-duration 10s -register-par 64 -push-offline
	done
	rm -f "$json"
}

# channelRun rate online json args...: one loadgen channel run (loadgen reads its rows
# written per post from pg_stat_user_tables), then a line on whether it held, appended to
# OUT: p99 post->delivery <= 100 ms, deliveries >= 97 % of rate x online and none missing
# (the exit status; a rate of 0, as fast as the window allows, holds when none is missing).
channelRun() {
	local rate=$1 online=$2 json=$3
	shift 3
	: >"$json" # a failed run leaves no figures behind
	LOADGEN_JSON=$json loadgen -scenario channel -rate "$rate" -database-url "$DATABASE_URL" -register-par 64 \
		-drain 30s "$@"
	awk -v rate="$rate" -v online="$online" '
		/^  "deliveredPerSec":/ { gsub(/,/, "", $2); d = $2 + 0 }
		/^  "lost":/ { gsub(/,/, "", $2); lost = $2 + 0 }
		/^  "deliveryLatency": \{/ { lat = 1 }
		lat && /"p99Ms":/ { gsub(/,/, "", $2); p99 = $2 + 0; seen = 1; lat = 0 }
		END {
			want = rate * online
			printf "%s posts/s to %d members online: p99 post->delivery %.1f ms, %.0f deliveries/s", rate, online, p99, d
			if (want > 0) printf " (%.1f %% of %d)", 100 * d / want, want
			printf ", %d deliveries missing\n", lost
			exit !(seen && lost == 0 && (want == 0 || (p99 <= 100 && d >= 0.97 * want)))
		}' "$json" | tee -a "$OUT"
}

# fanceilingRun online rates duration: the bare loopback fan-out ceiling (no node): one
# frame to each of online sockets per burst, at each rate, written and read by two
# processes on these cores, so a channel run's figures read against it.
fanceilingRun() {
	section "Loopback fan-out ceiling: $1 sockets, bursts at $2 per second, $3 each"
	"$BIN/fanceiling" -conns "$1" -rates "$2" -duration "$3" | tee -a "$OUT"
}

channel() {
	local members=${CHANNEL_MEMBERS:-100000} online=${CHANNEL_ONLINE:-19000} duration=${CHANNEL_DURATION:-20s}
	local url json rate rates passed=0 args
	rates=${CHANNEL_RATES:-1 10}
	scripts/cluster.sh stop >/dev/null
	fanceilingRun "$online" "$(echo $rates | tr ' ' ',')" "$duration"
	section "Channel: $members members, $online of them online on one node, posts for $duration at each rate"
	url=$(nodes 1)
	json=$(mktemp)
	args=(-url "$url" -members "$members" -online "$online" -duration "$duration" -window 16
		-users-prefix "${CHANNEL_PREFIX:-lgchan}")
	for rate in ${rates//,/ }; do # space- or comma-separated, as channelbench takes them
		channelRun "$rate" "$online" "$json" "${args[@]}" || true
	done
	for rate in ${CHANNEL_SUSTAIN_RATES-15 20 25 30 40 50 60 80 100}; do
		if ! channelRun "$rate" "$online" "$json" "${args[@]}"; then break; fi
		passed=$rate
	done
	rm -f "$json"
	printf '\n**Sustained: %s posts/s, %s deliveries/s** (the highest of CHANNEL_SUSTAIN_RATES with p99 post->delivery <= 100 ms, >= 97 %% delivered and none missing; 0 = none)\n' \
		"$passed" "$(awk -v r="$passed" -v n="$online" 'BEGIN { printf "%.0f", r * n }')" | tee -a "$OUT"
}

channel_cluster() {
	local members=${CHANNEL_MEMBERS:-100000} per=${CHANNEL_ONLINE:-19000} duration=${CHANNEL_DURATION:-20s}
	local online url json rate
	online=$((4 * per))
	section "Channel on 4 nodes: $members members, $per of them online on each node ($online), posts for $duration"
	url=$(nodes 4)
	json=$(mktemp)
	for rate in ${CHANNEL_CLUSTER_RATES:-10}; do
		channelRun "$rate" "$online" "$json" -url "$url" -members "$members" -online "$online" -duration "$duration" \
			-window 16 -dial-par 32 -users-prefix "${CHANNEL_PREFIX:-lgchan}c" || true
	done
	rm -f "$json"
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

sustain() {
	section "1:1 sustained: the most msgs/s one node holds with p99 send-to-delivery <= 50 ms"
	local url json rate passed=0
	url=$(nodes 1)
	json=$(mktemp)
	for rate in ${SUSTAIN_RATES:-1000 2000 3000 4000 5000 6000 8000 10000 12000 14000 16000 20000 25000 30000 40000 50000}; do
		LOADGEN_JSON=$json loadgen -url "$url" -scenario dm -conns 400 -rate "$rate" -duration 10s -register-par 64
		if ! passes "$rate" "$json" | tee -a "$OUT"; then break; fi
		passed=$rate
	done
	rm -f "$json"
	printf '\n**Sustained: %s msgs/s** (the highest rate with p99 send-to-delivery <= 50 ms and >= 97 %% delivered; 0 = none)\n' \
		"$passed" | tee -a "$OUT"
}

receipts() {
	section "Receipts: 1:1 without them and with them, alternating on one node"
	local url json rate round
	json=$(mktemp)
	url=$(nodes 1)
	# Unmeasured: a fresh node's first seconds (grain activations, plan caches).
	"$BIN/loadgen" -url "$url" -scenario dm -conns 400 -rate 1000 -duration 5s -register-par 64 -read-every 4 >/dev/null
	for rate in ${RECEIPTS_RATES:-1000 2000 3000}; do
		for round in 1 2; do
			receiptsRun "round $round, without receipts, $rate msgs/s" "$json" -url "$url" -scenario dm -conns 400 \
				-rate "$rate" -duration 10s -register-par 64
			passes "$rate" "$json" | tee -a "$OUT" || true
			receiptsRun "round $round, with receipts, $rate msgs/s" "$json" -url "$url" -scenario dm -conns 400 \
				-rate "$rate" -duration 10s -register-par 64 -read-every 4
			passes "$rate" "$json" | tee -a "$OUT" || true
		done
	done
	# Capacity: as fast as a window of 16 unanswered sends per sender allows, for
	# RECEIPTS_ROUNDS rounds (default 2), each with the share of the machine other
	# tenants took (steal).
	for ((round = 1; round <= ${RECEIPTS_ROUNDS:-2}; round++)); do
		for flags in "" "-read-every 4"; do
			receiptsRun "round $round, capacity${flags:+ with receipts}" "$json" -url "$url" -scenario dm -conns 400 \
				-rate 0 -window 16 -duration 10s -register-par 64 $flags
			awk '/^  "ackedPerSec":/ { gsub(/,/, "", $2); a = $2 }
				/^    "stealPercent":/ { gsub(/,/, "", $2); st = $2 }
				END { printf "acked %.0f msgs/s (steal %.1f %%)\n", a, st }' "$json" | tee -a "$OUT"
		done
	done
	rm -f "$json"
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

catchup() {
	section "Catch-up on one node: 2,000 clients, 20 missed messages each, reconnecting at once"
	# 512 dials in flight: with loadgen's default 64 the figure was the client's dial rate
	# (~1,980 conns/s), not the node's.
	loadgen -url "$(nodes 1)" -scenario storm -conns 2000 -members 500 -messages 20 -duration 120s -register-par 64 \
		-dial-par "${CATCHUP_DIAL_PAR:-512}"
}

# channelbenchRun members online rates duration: one node, one channel (bench/cmd/channelbench).
channelbenchRun() {
	local url md
	url=$(nodes 1)
	md=$(mktemp)
	"$BIN/channelbench" -url "$url" -database-url "$DATABASE_URL" -members "$1" -online "$2" -rates "$3" \
		-duration "$4" -node-pid "$(cat .pgdata/cluster/node1.pid 2>/dev/null || echo 0)" -md "$md" >/dev/null
	tee -a "$OUT" <"$md"
	rm -f "$md"
}

channelbench() {
	scripts/cluster.sh stop >/dev/null
	fanceilingRun "${CHANNEL_ONLINE:-19000}" "$(echo "${CHANNEL_RATES:-1,10,0}" | tr ' ' ',')" 20s
	section "Channel (channelbench): ${CHANNEL_MEMBERS:-100000} members, ${CHANNEL_ONLINE:-19000} online on one node, posts at each rate for 20 s"
	channelbenchRun "${CHANNEL_MEMBERS:-100000}" "${CHANNEL_ONLINE:-19000}" "${CHANNEL_RATES:-1,10,0}" 20s
}

steady() {
	local rate=${STEADY_RATE:-3000} minutes=${STEADY_MINUTES:-10}
	section "Steady 1:1 load: one node, $rate msgs/s over 400 connections for $minutes min"
	loadgen -url "$(nodes 1)" -scenario dm -conns 400 -rate "$rate" -duration "${minutes}m" -sample-every 10s \
		-warmup 2m -register-par 64
}

soak() {
	local minutes=${SOAK_MINUTES:-30} every=${KILL_EVERY:-5m} node=$BIN/node yaml=cluster.yaml src="" status=0
	section "Soak: $minutes min of mixed load on 3 nodes, a node SIGKILLed every $every"
	if [[ -n ${SOAK_REV:-} ]]; then # the node of one commit, not of the working tree
		src=$(mktemp -d)
		git archive "$SOAK_REV" | tar -x -C "$src"
		(cd "$src" && go build -o bin/node ./cmd/node)
		node=$src/bin/node yaml=$src/cluster.yaml
		printf 'Node built from %s (%s).\n\n' "$SOAK_REV" "$(git rev-parse --short "$SOAK_REV")" | tee -a "$OUT"
	fi
	go build -o "$BIN/soak" ./bench/cmd/soak
	go build -o "$BIN/parley-certs" ./cmd/parley-certs
	mkdir -p "$SOAK_DIR"
	"$BIN/parley-certs" -dir "$SOAK_DIR/certs" -n 3
	# Cheap password hashes for the registrations; every limit keeps its default.
	sed -e 's/^  bcryptCost: .*/  bcryptCost: 4/' "$yaml" >"$BIN/soak.yaml"
	"$BIN/soak" -node-bin "$node" -node-config "$BIN/soak.yaml" -nodes 3 -certs "$SOAK_DIR/certs" \
		-logs "$SOAK_DIR/logs" -duration "${minutes}m" -kill-every "$every" -md "$SOAK_DIR/result.md" \
		-json "$SOAK_DIR/result.json" >/dev/null || status=$?
	[[ -z $src ]] || rm -rf "$src"
	if [[ -s $SOAK_DIR/result.md ]]; then
		tee -a "$OUT" <"$SOAK_DIR/result.md"
		rm -f "$SOAK_DIR/result.md"
	fi
	return "$status"
}

# Every scenario but the soak (which starts its own nodes) uses scripts/cluster.sh's nodes.
for what in "$@"; do
	[[ $what == soak ]] || { trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT; break; }
done
(($# > 0)) || { trap 'scripts/cluster.sh stop >/dev/null 2>&1 || true' EXIT; set -- all; }
setup
for what in "$@"; do
	case $what in
	quick | ceilings | idle | cluster | dm | sustain | receipts | push | channel | channelbench | group | storm | catchup | steady | soak) "$what" ;;
	channel-cluster) channel_cluster ;;
	all) ceilings; idle; cluster; dm; sustain; receipts; push; channel; channel_cluster; channelbench; group; storm; catchup; steady ;;
	*) echo "usage: $0 [quick|ceilings|idle|cluster|dm|sustain|receipts|push|channel|channel-cluster|channelbench|group|storm|catchup|steady|soak|all]..." >&2; exit 2 ;;
	esac
done
echo "bench-scale: wrote $OUT" >&2
