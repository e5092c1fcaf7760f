#!/usr/bin/env bash
# scripts/cluster.sh start [N] | stop
# A local cluster of N nodes (default 3) on loopback with the automanaged provider,
# sharing the PostgreSQL of `make run`. Node i (1-based) serves REST + WebSocket on
# 127.0.0.1:(8079+i), admin on 127.0.0.1:(8179+i), membership health on 28000+i.
# Env PARLEY_CONFIG: the nodes' configuration file (default cluster.yaml).
# Every node lists $PARLEY_CLUSTER_SLOTS peer slots (default 12), so that nodes can
# join later: `scripts/cluster.sh add` starts the next one.
# The nodes talk over mutual TLS (cluster.tls) with throwaway certificates that
# cmd/parley-certs writes into .pgdata/cluster/certs when missing (a CA and one
# certificate per slot, valid a year for 127.0.0.1 and localhost).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.pgdata/cluster
CERTS=$PWD/$DIR/certs
PG_DIR=${PG_RUN_DIR:-$PWD/.pgdata/run}
PG_PORT=${PG_RUN_PORT:-55432}
SLOTS=${PARLEY_CLUSTER_SLOTS:-12}

peers() {
  local p=() i
  for ((i = 1; i <= SLOTS; i++)); do p+=("127.0.0.1:$((28000 + i))"); done
  (IFS=,; echo "${p[*]}")
}

make_certs() { # the CA and node1..node$SLOTS certificates; kept while valid
  go build -o bin/parley-certs ./cmd/parley-certs
  bin/parley-certs -dir "$CERTS" -n "$SLOTS"
}

start_node() { # i
  local i=$1
  if [[ -f $DIR/node$i.pid ]] && kill -0 "$(cat "$DIR/node$i.pid")" 2>/dev/null; then
    echo "node $i already running (pid $(cat "$DIR/node$i.pid"))" >&2
    return
  fi
  DATABASE_URL=$DB PARLEY_CLUSTER_PROVIDER=automanaged PARLEY_AUTOMANAGED_PORT=$((28000 + i)) \
    PARLEY_AUTOMANAGED_PEERS=$(peers) \
    PARLEY_CLUSTER_TLS_CERT=$CERTS/node$i.pem PARLEY_CLUSTER_TLS_KEY=$CERTS/node$i-key.pem \
    PARLEY_CLUSTER_TLS_CA=$CERTS/ca.pem \
    nohup bin/node -config "${PARLEY_CONFIG:-cluster.yaml}" -http "127.0.0.1:$((8079 + i))" -admin "127.0.0.1:$((8179 + i))" \
    >"$DIR/node$i.log" 2>&1 &
  echo $! >"$DIR/node$i.pid"
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$((8079 + i))/healthz" >/dev/null 2>&1; then
      echo "node $i: http://127.0.0.1:$((8079 + i)) (WebSocket /v1/ws), admin http://127.0.0.1:$((8179 + i)), log $DIR/node$i.log"
      return
    fi
    if ! kill -0 "$(cat "$DIR/node$i.pid")" 2>/dev/null; then
      echo "node $i exited; see $DIR/node$i.log" >&2
      tail -5 "$DIR/node$i.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "node $i did not become healthy; see $DIR/node$i.log" >&2
  exit 1
}

case ${1:-} in
start)
  n=${2:-3}
  ((n <= SLOTS)) || { echo "$n nodes need PARLEY_CLUSTER_SLOTS >= $n" >&2; exit 2; }
  mkdir -p "$DIR"
  DB=${DATABASE_URL:-$(scripts/pg.sh start "$PG_DIR" "$PG_PORT")}
  go build -o bin/node ./cmd/node
  make_certs
  for ((i = 1; i <= n; i++)); do start_node "$i"; done
  ;;
add)
  mkdir -p "$DIR"
  DB=${DATABASE_URL:-$(scripts/pg.sh start "$PG_DIR" "$PG_PORT")}
  i=1
  while [[ -f $DIR/node$i.pid ]] && kill -0 "$(cat "$DIR/node$i.pid")" 2>/dev/null; do i=$((i + 1)); done
  ((i <= SLOTS)) || { echo "all $SLOTS slots are running" >&2; exit 1; }
  make_certs
  start_node "$i"
  ;;
stop)
  for f in "$DIR"/node*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  echo "cluster stopped"
  ;;
*)
  echo "usage: scripts/cluster.sh start [N] | add | stop" >&2
  exit 2
  ;;
esac
