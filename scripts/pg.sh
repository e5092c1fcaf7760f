#!/usr/bin/env bash
# scripts/pg.sh — throwaway / local PostgreSQL clusters.
#
#   scripts/pg.sh start DIR PORT   start (initdb first if DIR/data is missing) a server on
#                                  127.0.0.1:PORT with its socket in DIR, create database
#                                  `parley`, and print its DSN as the only line on stdout
#   scripts/pg.sh stop DIR         fast shutdown; no error if it is not running
#   scripts/pg.sh destroy DIR      stop, then rm -rf DIR
#
# Env PG_OPTS: extra server settings, e.g. PG_OPTS="fsync=off synchronous_commit=off",
# each passed as `-c NAME=VALUE` (values cannot contain spaces or quotes).
#
# As root, PostgreSQL refuses to run, so every pg command runs as user `postgres`
# (runuser -u postgres --) and DIR is owned by `postgres`. Diagnostics go to stderr;
# the server log is DIR/server.log, initdb's output DIR/initdb.log.
set -euo pipefail

die() {
	echo "pg.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start DIR PORT | stop DIR | destroy DIR" >&2
	exit 2
}

pg_bindir() {
	local dirs
	dirs=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1 || true)
	if [[ -n $dirs && -x $dirs/initdb ]]; then
		echo "$dirs"
	elif command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/initdb ]]; then
		pg_config --bindir
	elif command -v initdb >/dev/null; then
		dirname "$(command -v initdb)"
	else
		die "PostgreSQL server binaries not found (run scripts/deps.sh)"
	fi
}

# as_pg CMD...: run CMD as the cluster owner: `postgres` when we are root, else ourselves.
as_pg() {
	if ((EUID == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# running: is a server running on DIR/data? (pg_ctl status: 0 running, 3 not, 4 no data dir)
running() {
	[[ -d $DIR/data ]] || return 1
	as_pg "$PGBIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

# make_traversable: as root, give `postgres` search permission on every ancestor of DIR.
make_traversable() {
	((EUID == 0)) || return 0
	runuser -u postgres -- test -x "$DIR" 2>/dev/null && return 0
	local path="" part
	local -a parts
	IFS=/ read -r -a parts <<<"${DIR#/}"
	for part in "${parts[@]}"; do
		path+=/$part
		[[ -d $path ]] || break
		if ! runuser -u postgres -- test -x "$path" 2>/dev/null; then
			chmod o+x "$path"
			echo "pg.sh: chmod o+x $path (so that user postgres can reach $DIR)" >&2
		fi
	done
}

dsn() {
	printf 'postgres://postgres@127.0.0.1:%s/parley?sslmode=disable\n' "$1"
}

cmd_start() {
	local port=$1
	if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
		die "bad port: $port"
	fi
	# A unix socket path is limited to 107 bytes: DIR/.s.PGSQL.PORT must fit.
	((${#DIR} + 19 <= 107)) || die "DIR is too long for a unix socket path: $DIR"

	mkdir -p "$DIR"
	if ((EUID == 0)); then
		id -u postgres >/dev/null 2>&1 || die "user postgres does not exist (run scripts/deps.sh)"
		chown postgres:postgres "$DIR"
		if [[ -e $DIR/data && $(stat -c %U "$DIR/data") != postgres ]]; then
			chown -R postgres:postgres "$DIR/data"
		fi
		make_traversable
	fi

	if running; then
		# Report the port it really listens on (line 4 of postmaster.pid).
		local actual
		actual=$(as_pg sed -n 4p "$DIR/data/postmaster.pid" 2>/dev/null || true)
		if [[ $actual =~ ^[0-9]+$ && $actual != "$port" ]]; then
			echo "pg.sh: server in $DIR is already running on port $actual, not $port" >&2
			port=$actual
		fi
		dsn "$port"
		return 0
	fi

	if [[ ! -d $DIR/data ]]; then
		if ! as_pg "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 \
			--locale=C.UTF-8 --no-sync >"$DIR/initdb.log" 2>&1; then
			cat "$DIR/initdb.log" >&2
			die "initdb failed (log: $DIR/initdb.log)"
		fi
	fi

	local opts="-p $port -k '$DIR' -c listen_addresses=127.0.0.1 -c max_connections=300"
	local -a extra
	read -r -a extra <<<"${PG_OPTS:-}"
	local o
	for o in "${extra[@]}"; do
		[[ $o == *=* && $o != *[\'\"\\\$\`]* ]] || die "bad PG_OPTS entry: $o (want NAME=VALUE)"
		opts+=" -c $o"
	done

	# server.log must be writable by the server's user.
	if ((EUID == 0)); then
		touch "$DIR/server.log"
		chown postgres:postgres "$DIR/server.log"
	fi
	if ! as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 -o "$opts" start >/dev/null; then
		tail -n 20 "$DIR/server.log" >&2 || true
		die "pg_ctl start failed (log: $DIR/server.log)"
	fi

	local out
	if ! out=$(as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres parley 2>&1); then
		[[ $out == *"already exists"* ]] || die "createdb failed: $out"
	fi
	dsn "$port"
}

cmd_stop() {
	[[ -d $DIR ]] || return 0
	running || return 0
	if ! as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop >/dev/null; then
		die "pg_ctl stop failed (log: $DIR/server.log)"
	fi
}

cmd_destroy() {
	[[ -e $DIR ]] || return 0
	[[ -d $DIR ]] || die "not a directory: $DIR"
	# Refuse to wipe a directory that is not a cluster dir made by this script
	# (protects against `scripts/pg.sh destroy .` and the like).
	local entry
	for entry in "$DIR"/* "$DIR"/.[!.]*; do
		[[ -e $entry ]] || continue
		case ${entry##*/} in
		data | server.log | initdb.log | .s.PGSQL.*) ;;
		*) die "refusing to remove $DIR: unexpected entry ${entry##*/}" ;;
		esac
	done
	cmd_stop
	rm -rf "$DIR"
}

(($# >= 2)) || usage
cmd=$1
DIR=$(realpath -m -- "$2")
[[ $DIR != / ]] || die "refusing to use / as DIR"
[[ $DIR != *"'"* ]] || die "DIR must not contain a single quote: $DIR"
PGBIN=$(pg_bindir)
cd / # as user postgres, a cwd it cannot read gives "could not change directory" warnings

case $cmd in
start)
	(($# == 3)) || usage
	cmd_start "$3"
	;;
stop)
	(($# == 2)) || usage
	cmd_stop
	;;
destroy)
	(($# == 2)) || usage
	cmd_destroy
	;;
*) usage ;;
esac
