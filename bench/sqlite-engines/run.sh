#!/usr/bin/env bash
# The SQLite engines side by side, in one run (issue 16, docs/PERFORMANCE.md
# "The SQLite engine"). For each candidate it builds idbridge from a
# temporary git worktree of HEAD with only the engine swapped, and measures,
# on SQLite:
#   - the SCIM load (bench/scim/run.sh sqlite): userName-eq filter GET req/s
#     and p99, POST /Users req/s (each with its outbox row), the 1,000-member
#     group PATCH (median), peak RSS over the run with 100k users;
#   - the Connect route (bench/connect/run.sh sqlite): /api/admin/site req/s;
#   - the binary's size (CGO_ENABLED=0, -ldflags "-s -w"; no -trimpath, so
#     that it shares the build cache with the load tests' builds),
#     start-to-ready with an existing data dir and idle RSS (bench/readyprobe);
#   - the whole `go test -count=1 ./...` suite's wall time (SUITE=1).
# and writes one Markdown table (also to $OUT when set).
#
#   bench/sqlite-engines/run.sh [CANDIDATE...]
#
# Candidates (default: all three, in this order):
#   glebarez   today's before issue 16: glebarez/go-sqlite v1.21.2 on
#              modernc.org/sqlite v1.23.1 (SQLite 3.41)
#   modernc    glebarez/go-sqlite v1.23.0 on modernc.org/sqlite v1.62.0
#   ncruces    github.com/ncruces/go-sqlite3 v0.37.0 (ncruces.go.txt: its
#              driver under idbridge's own GORM dialector,
#              app/store/sqlite_dialect.go; the file on main)
# The glebarez and modernc candidates keep glebarez/sqlite's GORM dialector
# (it translates their drivers' errors); run.sh adds it to go.mod for them.
# A candidate is HEAD with app/store/sqlite_engine.go replaced by
# bench/sqlite-engines/<engine>.go.txt and its modules set with `go get`;
# committed code keeps only the chosen engine. The tuning on HEAD (pools,
# pragmas, batching) applies to every candidate alike.
#
# Environment: WARMUP (s, default 3) and DURATION (s, default 10) per route,
# CONNECTIONS (32), THREADS (2), RUNS (start-to-ready runs, default 10),
# SUITE (1: time `go test ./...` per candidate, ~3-5 min each; 0 skips it),
# OUT (a file for the Markdown table). With the defaults the three
# candidates take about 25 minutes on a quiet 2-core machine, the suite
# most of it (about 12 with SUITE=0). Run it on a quiet machine: every
# figure is one run of wrk on 127.0.0.1, sharing the cores with idbridge.
# Only 127.0.0.1 is used; every run is bounded.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
export WARMUP=${WARMUP:-3} DURATION=${DURATION:-10} CONNECTIONS=${CONNECTIONS:-32} THREADS=${THREADS:-2}
RUNS=${RUNS:-10}
SUITE=${SUITE:-1}
OUT=${OUT:-}

if [ $# -gt 0 ]; then candidates=("$@"); else candidates=(glebarez modernc ncruces); fi
for c in "${candidates[@]}"; do
	case $c in glebarez | modernc | ncruces) ;; *) echo "run.sh: unknown candidate $c" >&2; exit 2 ;; esac
done
command -v wrk >/dev/null || { echo "run.sh: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

tmp=$(mktemp -d)
worktrees=()
cleanup() {
	for w in "${worktrees[@]}"; do git -C "$root" worktree remove --force "$w" >/dev/null 2>&1 || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# engine CANDIDATE swaps the engine in the current directory (a worktree).
engine() {
	case $1 in
	glebarez)
		cp "$root/bench/sqlite-engines/glebarez.go.txt" app/store/sqlite_engine.go
		go get github.com/glebarez/sqlite@v1.11.0 github.com/glebarez/go-sqlite@v1.21.2 modernc.org/sqlite@v1.23.1 modernc.org/libc@v1.22.5 \
			modernc.org/mathutil@v1.5.0 modernc.org/memory@v1.5.0 >/dev/null 2>&1
		;;
	modernc)
		cp "$root/bench/sqlite-engines/glebarez.go.txt" app/store/sqlite_engine.go
		go get github.com/glebarez/sqlite@v1.11.0 github.com/glebarez/go-sqlite@v1.23.0 modernc.org/sqlite@v1.62.0 >/dev/null 2>&1
		;;
	ncruces)
		cp "$root/bench/sqlite-engines/ncruces.go.txt" app/store/sqlite_engine.go
		go get github.com/ncruces/go-sqlite3@v0.37.0 >/dev/null 2>&1
		;;
	esac
	go mod tidy >/dev/null 2>&1
}

field() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

echo "# SQLite engines side by side"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr); $(go env GOVERSION); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "load: $CONNECTIONS connections, $THREADS wrk threads, ${WARMUP}s warm-up + ${DURATION}s per route; HEAD $(git rev-parse --short HEAD)"

rows=()
for c in "${candidates[@]}"; do
	w=$tmp/wt-$c
	git worktree add --detach "$w" HEAD >/dev/null 2>&1
	worktrees+=("$w")
	echo
	echo "== $c"
	(cd "$w" && engine "$c")
	sqlite_version=$(cd "$w" && go list -m all 2>/dev/null | awk '$1 == "modernc.org/sqlite" || $1 == "github.com/ncruces/go-sqlite3" || $1 == "github.com/glebarez/go-sqlite" { printf "%s %s; ", $1, $2 }')
	echo "modules: $sqlite_version"
	(cd "$w" && CGO_ENABLED=0 go build -tags nomsgpack -ldflags "-s -w" -o "$tmp/idbridge-$c" . && go build -o "$tmp/readyprobe" ./bench/readyprobe)
	size=$(stat -c %s "$tmp/idbridge-$c")
	"$tmp/readyprobe" -bin "$tmp/idbridge-$c" -runs 1 -data "$tmp/data-$c" -q >/dev/null # create and migrate
	ready=$("$tmp/readyprobe" -bin "$tmp/idbridge-$c" -runs "$RUNS" -data "$tmp/data-$c" -q | grep '^READY')
	rss=$("$tmp/readyprobe" -bin "$tmp/idbridge-$c" -runs 3 -data "$tmp/data-$c" -rss -q | grep '^RSS')
	echo "binary $size bytes; $ready; $rss"

	(cd "$w" && bash bench/scim/run.sh sqlite) >"$tmp/scim-$c.out" 2>&1 || true
	grep -E '^(GET|POST|group|server RSS|users)' "$tmp/scim-$c.out" || tail -5 "$tmp/scim-$c.out"
	s=$(grep '^sqlite |' "$tmp/scim-$c.out" || true)
	get_rps=$(sed -n 's/.*filter GET \([0-9.]*\) req\/s p99 \([0-9.]*\) ms.*/\1/p' <<<"$s")
	get_p99=$(sed -n 's/.*filter GET \([0-9.]*\) req\/s p99 \([0-9.]*\) ms.*/\2/p' <<<"$s")
	post_rps=$(sed -n 's/.*| POST \([0-9.]*\)\/s.*/\1/p' <<<"$s")
	patch=$(sed -n 's/.*PATCH 1000 members median \([0-9.]*\) ms.*/\1/p' <<<"$s")
	peak=$(sed -n 's/.*peak RSS \([0-9]*\) MB.*/\1/p' <<<"$s")

	(cd "$w" && bash bench/connect/run.sh sqlite) >"$tmp/connect-$c.out" 2>&1 || true
	k=$(grep -m1 '^sqlite | healthz' "$tmp/connect-$c.out" || true)
	echo "connect: ${k:-$(tail -3 "$tmp/connect-$c.out")}"
	connect_rps=$(sed -n 's/.*verified \([0-9.]*\) req\/s.*/\1/p' <<<"$k")

	suite=skipped
	if [ "$SUITE" = 1 ]; then
		t0=$(date +%s)
		if (cd "$w" && go test -count=1 ./... >"$tmp/suite-$c.out" 2>&1); then
			suite="$(($(date +%s) - t0)) s"
		else
			suite="$(($(date +%s) - t0)) s (FAILED: $(grep -c '^FAIL' "$tmp/suite-$c.out") FAIL lines)"
			grep '^\(FAIL\|---\)' "$tmp/suite-$c.out" | head -20
		fi
		echo "suite: $suite"
	fi
	rows+=("| $c | ${get_rps%.*} | $get_p99 | ${post_rps%.*} | $patch | $peak | ${connect_rps%.*} | $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }') | $(field p50_ms "$ready") | $(field idle_vmrss_mib_max "$rss") | $suite |")
	git -C "$root" worktree remove --force "$w" >/dev/null 2>&1 || true
done

table=$(
	echo "| engine | filter GET req/s | filter GET p99 ms | POST /Users req/s | PATCH 1,000 members ms (median) | peak RSS MB (100k users) | Connect /api/admin/site req/s | binary MiB | start-to-ready ms (p50) | idle RSS MiB | go test ./... |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
)
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "$table"
if [ -n "$OUT" ]; then echo "$table" >"$OUT"; fi
