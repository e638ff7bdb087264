#!/usr/bin/env bash
# Load test of idbridge's Connect path: GET /healthz (no authentication)
# against GET /api/admin/site (context JWT verified with the site's shared
# secret, site from the in-process cache, admin answer cached for 60 s).
#
#   bench/connect/run.sh [sqlite] [postgres]      # default: both
#
# Environment: WARMUP (s, default 3), DURATION (s, default 15),
# CONNECTIONS (default 32), THREADS (wrk threads, default 2),
# PG_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
#
# Everything runs on 127.0.0.1, on this one machine: the load generator
# competes with idbridge for the same CPU cores, so the numbers are a floor
# for what idbridge does on a core of its own. Every run is bounded in time.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)

WARMUP=${WARMUP:-3}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

if [ $# -gt 0 ]; then backends=("$@"); else backends=(sqlite postgres); fi
for b in "${backends[@]}"; do
	case $b in sqlite | postgres) ;; *) echo "run.sh: unknown backend $b (want sqlite or postgres)" >&2; exit 2 ;; esac
done

if command -v wrk >/dev/null; then
	tool=wrk
elif command -v hey >/dev/null; then
	tool=hey
else
	echo "run.sh: neither wrk nor hey is installed (apt-get install -y wrk)" >&2
	exit 2
fi

tmp=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime of a process, in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

echo "# idbridge Connect load test"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr)"
echo "go: $(go env GOVERSION); load generator: $tool $( [ $tool = wrk ] && wrk -v 2>&1 | awk 'NR==1 { print $2 }')"
echo "load: $CONNECTIONS connections, $THREADS threads, ${WARMUP}s warm-up (discarded) + ${DURATION}s measured per route"
echo "note: load generator and server share this machine's $(nproc) cores, on 127.0.0.1"
echo

go build -o "$tmp/connect" ./bench/connect

# load NAME URL [AUTHORIZATION] runs the warm-up and the measured run and
# prints one RESULT line (see report.lua) for the measured one.
load() {
	local url=$2 auth=${3:-}
	local hdr=()
	if [ -n "$auth" ]; then hdr=(-H "Authorization: $auth"); fi
	if [ $tool = wrk ]; then
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${hdr[@]}" "$url" >/dev/null
		wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$root/bench/connect/report.lua" "${hdr[@]}" "$url" |
			grep '^RESULT'
	else
		hey -z "${WARMUP}s" -c "$CONNECTIONS" "${hdr[@]}" "$url" >/dev/null
		hey -z "${DURATION}s" -c "$CONNECTIONS" "${hdr[@]}" "$url" | awk '
			/Requests\/sec:/ { rps = $2 }
			/Total:/ && !total { total = $2 }
			/ 50%% in / || / 50% in / { p50 = $3 * 1000 }
			/ 90% in / { p90 = $3 * 1000 }
			/ 99% in / { p99 = $3 * 1000 }
			/Slowest:/ { max = $2 * 1000 }
			/\[2[0-9][0-9]\]/ { ok += $2 }
			/\[[13-5][0-9][0-9]\]/ { bad += $2 }
			END { printf "RESULT requests=%d seconds=%s rps=%s p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=nan max_ms=%.3f non2xx=%d err_connect=0 err_read=0 err_write=0 err_timeout=0\n", ok + bad, total, rps, p50, p90, p99, max, bad }'
	fi
}

field() { # field NAME "RESULT ..." prints the value of NAME=
	tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

summary=()
for db in "${backends[@]}"; do
	out=$tmp/$db.out
	bound=$((4 * (WARMUP + DURATION) + 60))
	"$tmp/connect" -db "$db" -pg "$PG_URL" -duration "${bound}s" >"$out" 2>"$tmp/$db.err" &
	server_pid=$!
	for _ in $(seq 600); do
		grep -q '^READY' "$out" 2>/dev/null && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.05
	done
	if ! grep -q '^READY' "$out"; then
		echo "== $db: the server did not start:"
		cat "$tmp/$db.err"
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
		summary+=("$db | not run: server did not start")
		continue
	fi
	healthz=$(awk -F= '$1 == "HEALTHZ_URL" { print $2 }' "$out")
	site=$(awk -F= '$1 == "SITE_URL" { print $2 }' "$out")
	token=$(awk -F= '$1 == "TOKEN" { print $2 }' "$out")
	# The verified route must answer 200, or the numbers mean nothing.
	status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: JWT $token" "$site")
	if [ "$status" != 200 ]; then
		echo "== $db: GET $site answered $status, not 200" >&2
		exit 1
	fi
	grep '^#' "$out" | head -1

	t0=$(cpu_ticks "$server_pid")
	r_open=$(load healthz "$healthz")
	t1=$(cpu_ticks "$server_pid")
	r_jwt=$(load site "$site" "JWT $token")
	t2=$(cpu_ticks "$server_pid")

	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=
	jira_line=$(grep 'admin checks' "$out" || true)

	# Server CPU over warm-up + measured run, in cores.
	cores_open=$(awk -v t="$((t1 - t0))" -v c="$clk_tck" -v s="$((WARMUP + DURATION))" 'BEGIN { printf "%.2f", t / c / s }')
	cores_jwt=$(awk -v t="$((t2 - t1))" -v c="$clk_tck" -v s="$((WARMUP + DURATION))" 'BEGIN { printf "%.2f", t / c / s }')

	echo
	echo "== $db"
	printf '%-34s %10s %8s %8s %8s %9s %8s %7s %11s\n' route req/s p50_ms p90_ms p99_ms p99.9_ms max_ms non2xx server_cores
	for pair in "GET /healthz (no auth)|$r_open|$cores_open" "GET /api/admin/site (JWT)|$r_jwt|$cores_jwt"; do
		IFS='|' read -r name r cores <<<"$pair"
		errs=$(($(field err_connect "$r") + $(field err_read "$r") + $(field err_write "$r") + $(field err_timeout "$r")))
		printf '%-34s %10.0f %8s %8s %8s %9s %8s %7s %11s\n' "$name" "$(field rps "$r")" "$(field p50_ms "$r")" \
			"$(field p90_ms "$r")" "$(field p99_ms "$r")" "$(field p999_ms "$r")" "$(field max_ms "$r")" \
			"$(($(field non2xx "$r") + errs))" "$cores"
	done
	ratio=$(awk -v a="$(field rps "$r_jwt")" -v b="$(field rps "$r_open")" 'BEGIN { printf "%.2f", a / b }')
	echo "ratio verified/unauthenticated: $ratio   ${jira_line#\# }"
	summary+=("$db | healthz $(field rps "$r_open") req/s | verified $(field rps "$r_jwt") req/s | ratio $ratio")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
