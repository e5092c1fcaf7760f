#!/usr/bin/env bash
# scripts/deps.sh [proto] [zookeeper] [chromium] — install the system packages the project needs
# (idempotent).
#
#   always:          PostgreSQL server binaries (Debian postgresql, postgresql-contrib),
#                    a C compiler for `go test -race` (gcc, libc6-dev) and GNU make
#   with `proto`:    protoc (Debian protobuf-compiler) and protoc-gen-go at exactly the
#                    version of google.golang.org/protobuf in go.mod, in $(go env GOPATH)/bin
#   with `zookeeper`: the ZooKeeper server jars (Debian zookeeper, which brings a Java
#                    runtime; not zookeeperd, whose service would listen on every
#                    interface). The tests start their own server on loopback.
#   with `chromium`: the headless browser of the browser client's test (Debian
#                    chromium; e2e/browser_test.go drives it with chromedp).
#
# Packages are installed with apt-get when running as root; otherwise the script says
# what is missing and exits 1. It prints one line per thing it installs, nothing else
# when everything is already there.
set -euo pipefail

usage() {
	echo "usage: $0 [proto] [zookeeper] [chromium]" >&2
	exit 2
}

want_proto=false
want_zookeeper=false
want_chromium=false
for arg in "$@"; do
	case $arg in
	proto) want_proto=true ;;
	zookeeper) want_zookeeper=true ;;
	chromium) want_chromium=true ;;
	*) usage ;;
	esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

have_initdb() {
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

have_cc() {
	local cc
	cc=$(go env CC 2>/dev/null || true)
	command -v "${cc:-gcc}" >/dev/null
}

# --- apt packages -------------------------------------------------------------------
missing=()
have_initdb || missing+=(postgresql postgresql-contrib)
have_cc || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
if $want_proto; then
	command -v protoc >/dev/null || missing+=(protobuf-compiler)
fi
if $want_zookeeper; then
	[[ -f /usr/share/java/zookeeper.jar ]] || missing+=(zookeeper)
fi
if $want_chromium; then
	command -v chromium >/dev/null || missing+=(chromium)
fi

if ((${#missing[@]} > 0)); then
	if ((EUID != 0)); then
		echo "deps: missing system packages; install them with:" >&2
		echo "  sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	log=$(mktemp)
	trap 'rm -f "$log"' EXIT
	if ! { apt-get -qq update && apt-get -qq install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		cat "$log" >&2
		echo "deps: apt-get install ${missing[*]} failed" >&2
		exit 1
	fi
	for pkg in "${missing[@]}"; do
		echo "deps: installed $pkg ($(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || echo '?'))"
	done
	if ! have_initdb; then
		echo "deps: postgresql installed but no /usr/lib/postgresql/*/bin/initdb" >&2
		exit 1
	fi
fi

# --- protoc-gen-go ------------------------------------------------------------------
if $want_proto; then
	version=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
	gopath=$(go env GOPATH)
	bindir=${gopath%%:*}/bin
	current=$("$bindir/protoc-gen-go" --version 2>/dev/null || true)
	if [[ $current != "protoc-gen-go $version" ]]; then
		GOBIN=$bindir go install "google.golang.org/protobuf/cmd/protoc-gen-go@$version"
		echo "deps: installed protoc-gen-go $version in $bindir"
	fi
fi
