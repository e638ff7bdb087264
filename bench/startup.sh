#!/usr/bin/env bash
# Startup and memory of the release binary:
#   - builds the static binary (CGO_ENABLED=0, -trimpath -ldflags "-s -w")
#     and reports its size;
#   - start-to-ready on SQLite: from exec to the first 200 on /readyz (polled
#     every 0.5 ms), with a fresh data dir each run (key generated, database
#     created and migrated) and again with an existing one, by
#     bench/readyprobe (RUNS runs: mean, p50, p90, max); with hyperfine when
#     installed, the whole cycle (exec, ready, SIGTERM, exit) once more;
#   - idle RSS: VmRSS from /proc/<pid>/status after ready + 2 s idle;
#   - the same on PostgreSQL (existing database) when PG_URL answers.
#
#   bench/startup.sh            # RUNS=20 by default
#
# On a shared machine set QUIET_MAX (cores, e.g. 0.15): before each section
# the script waits, up to QUIET_WAIT s (default 600), until other processes
# use less than that.
#
# Goals (docs/PERFORMANCE.md): ready <= 300 ms on SQLite, idle RSS <= 40 MB,
# binary <= 40 MB. Only 127.0.0.1 is used; every run is bounded.
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

QUIET_MAX=${QUIET_MAX:-}
QUIET_WAIT=${QUIET_WAIT:-600}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# wait_quiet waits until the machine uses less than QUIET_MAX cores.
wait_quiet() {
	[ -n "$QUIET_MAX" ] || return 0
	local deadline=$((SECONDS + QUIET_WAIT)) a b busy hz
	hz=$(getconf CLK_TCK)
	while :; do
		a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat)
		sleep 2
		b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat)
		busy=$(awk -v a="$a" -v b="$b" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz / 2 }')
		if awk -v b="$busy" -v m="$QUIET_MAX" 'BEGIN { exit !(b < m) }'; then
			echo "(machine quiet: $busy cores busy)"
			return 0
		fi
		if [ $SECONDS -ge $deadline ]; then
			echo "(warning: machine still busy, $busy cores, after ${QUIET_WAIT}s; measuring anyway)"
			return 0
		fi
	done
}

echo "# idbridge startup and memory"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr); $(go env GOVERSION)"

CGO_ENABLED=0 go build -trimpath -tags nomsgpack -ldflags "-s -w" -o "$tmp/idbridge" . # as the Dockerfile
go build -o "$tmp/readyprobe" ./bench/readyprobe
bytes=$(stat -c %s "$tmp/idbridge")
static=$(go version -m "$tmp/idbridge" | awk '$2 == "CGO_ENABLED=0" { print "static (CGO_ENABLED=0)" }')
echo
echo "== binary"
awk -v b="$bytes" -v s="$static" 'BEGIN { printf "size: %d bytes = %.1f MiB (%.1f MB), %s\n", b, b / 1048576, b / 1e6, s }'

echo
echo "== SQLite, fresh data dir per run (generates the dev key, creates and migrates the database)"
wait_quiet
"$tmp/readyprobe" -bin "$tmp/idbridge" -runs "$RUNS" -fresh -q

echo
echo "== SQLite, existing data dir"
wait_quiet
"$tmp/readyprobe" -bin "$tmp/idbridge" -runs 1 -data "$tmp/data" -q >/dev/null # create it
"$tmp/readyprobe" -bin "$tmp/idbridge" -runs "$RUNS" -data "$tmp/data" -q

if command -v hyperfine >/dev/null; then
	echo
	echo "== hyperfine: exec, ready, SIGTERM, exit (the whole cycle, through readyprobe -runs 1)"
	wait_quiet
	hyperfine --style basic --runs "$RUNS" --warmup 2 \
		-n "sqlite, fresh data dir" "$tmp/readyprobe -bin $tmp/idbridge -runs 1 -fresh -q" \
		-n "sqlite, existing data dir" "$tmp/readyprobe -bin $tmp/idbridge -runs 1 -data $tmp/data -q" 2>&1 |
		grep -Ev '^\s*$'
fi

echo
echo "== idle RSS after ready + 2 s (SQLite, existing data dir; 3 runs)"
wait_quiet
"$tmp/readyprobe" -bin "$tmp/idbridge" -runs 3 -data "$tmp/data" -rss
echo
echo "== idle RSS after ready + 2 s (SQLite, fresh data dir; 3 runs)"
wait_quiet
"$tmp/readyprobe" -bin "$tmp/idbridge" -runs 3 -fresh -rss -q

# PostgreSQL: a fresh database, migrated by the first start, then measured
# as an existing one (how a replica restarts).
if command -v psql >/dev/null && psql "$PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
	db=idbridge_startup_$$
	psql "$PG_URL" -qc "CREATE DATABASE $db" >/dev/null
	dropdb() { psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; }
	trap 'dropdb; rm -rf "$tmp"' EXIT
	dburl=$(sed -E "s#(postgres(ql)?://[^/]*)/[^?]*#\1/$db#" <<<"$PG_URL")
	keys="k1:$(head -c 32 /dev/urandom | base64)"
	pg=(-env "IDBRIDGE_DATABASE_URL=$dburl" -env "IDBRIDGE_ENCRYPTION_KEYS=$keys")
	echo
	echo "== PostgreSQL, existing database (informational; the goal is for SQLite)"
	wait_quiet
	"$tmp/readyprobe" -bin "$tmp/idbridge" -runs 1 -data "$tmp/pgdata" "${pg[@]}" -q >/dev/null # migrate
	"$tmp/readyprobe" -bin "$tmp/idbridge" -runs "$RUNS" -data "$tmp/pgdata" "${pg[@]}" -q
	"$tmp/readyprobe" -bin "$tmp/idbridge" -runs 3 -data "$tmp/pgdata" "${pg[@]}" -rss -q | grep '^RSS'
else
	echo
	echo "== PostgreSQL: skipped ($PG_URL does not answer)"
fi
