#!/usr/bin/env bash
# Load test of idbridge's SCIM server (the issue's goals, docs/PERFORMANCE.md):
#   - GET /Users?filter=userName eq "…" on a site with 100,000 users among
#     100 sites: requests per second and p99;
#   - POST /Users per second, each with its outbox row;
#   - a group PATCH adding 1,000 members (timed by the target itself);
#   - the server's peak RSS (VmHWM) over the whole run, seeding included.
#
#   bench/scim/run.sh [sqlite] [postgres]      # default: both
#
# Environment: WARMUP (s, default 3), DURATION (s, default 15),
# CONNECTIONS (default 32), THREADS (wrk threads, default 2),
# PG_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
#
# Everything runs on 127.0.0.1 on this one machine: wrk competes with
# idbridge (and PostgreSQL) for the same cores. Every run is bounded in time.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

WARMUP=${WARMUP:-3}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

bench_backends "$@"
if ! command -v wrk >/dev/null; then
	echo "run.sh: wrk is not installed (apt-get install -y wrk)" >&2
	exit 2
fi

bench_tmp

echo "# idbridge SCIM load test"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "go: $(go env GOVERSION); load generator: wrk $(wrk -v 2>&1 | awk 'NR==1 { print $2 }')"
echo "load: $CONNECTIONS connections, $THREADS wrk threads, ${WARMUP}s warm-up (discarded) + ${DURATION}s measured per route"
echo "note: wrk, idbridge and PostgreSQL share this machine's $(nproc) cores, on 127.0.0.1; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

go build -o "$tmp/scim" ./bench/scim

machine() { awk '/^cpu / { print $2 + $3 + $4 + $6 + $7 + $8, $5 }' /proc/stat; } # busy idle

field() { # field NAME "RESULT ..." prints the value of NAME=
	tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}
kv() { awk -F= -v k="$1" '$1 == k { print substr($0, length(k) + 2) }' "$2"; }

# load SCRIPT runs the warm-up and the measured run; prints the RESULT line.
load() {
	local script=$1
	RUN="w$RANDOM$$" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$root/bench/scim/$script" "$origin" >/dev/null
	RUN="m$RANDOM$$" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$root/bench/scim/$script" "$origin" | grep '^RESULT'
}

summary=()
for db in "${backends[@]}"; do
	out=$tmp/$db.out
	"$tmp/scim" -db "$db" -pg "$PG_URL" -duration "$((4 * (WARMUP + DURATION) + 60))s" >"$out" 2>"$tmp/$db.err" &
	server_pid=$!
	for _ in $(seq 3000); do # seeding 100,000 users takes a while
		grep -q '^READY' "$out" 2>/dev/null && break
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
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
	base=$(kv BASE_URL "$out")
	export TOKEN USERS SCIM_PATH
	TOKEN=$(kv TOKEN "$out")
	USERS=$(kv USERS "$out")
	origin=${base%%/scim/*}
	SCIM_PATH=/scim/${base#*/scim/}
	status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOKEN" \
		"$base/Users?filter=userName%20eq%20%22user000001%40example.com%22")
	if [ "$status" != 200 ]; then
		echo "== $db: the filter query answered $status, not 200" >&2
		exit 1
	fi
	grep '^#' "$out" | head -1

	t0=$(cpu_ticks "$server_pid"); m0=$(machine)
	r_get=$(load filter.lua)
	t1=$(cpu_ticks "$server_pid"); m1=$(machine)
	r_post=$(load post.lua)
	t2=$(cpu_ticks "$server_pid"); m2=$(machine)
	# Cores used by idbridge, and by the whole machine, over warm-up + run.
	cores() { awk -v t="$1" -v c="$clk_tck" -v s="$((WARMUP + DURATION))" 'BEGIN { printf "%.2f", t / c / s }'; }
	busy() { echo "$1 $2" | awk '{ b = $3 - $1; i = $4 - $2; printf "%.0f%%", 100 * b / (b + i) }'; }
	cores_get=$(cores $((t1 - t0))); cores_post=$(cores $((t2 - t1)))
	busy_get=$(busy "$m0" "$m1"); busy_post=$(busy "$m1" "$m2")
	users_after=$(curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" "$base/Users?count=0" | sed -n 's/.*"totalResults":\([0-9]*\).*/\1/p')
	hwm_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status")
	rss_kb=$(awk '/VmRSS/ { print $2 }' "/proc/$server_pid/status")
	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=

	patch_ms=$(kv PATCH_MS "$out")
	patch_max=$(tr ',' '\n' <<<"$patch_ms" | sort -n | tail -1)
	patch_median=$(tr ',' '\n' <<<"$patch_ms" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	echo
	echo "== $db"
	printf '%-44s %10s %8s %8s %8s %9s %8s %7s %12s %12s\n' route req/s p50_ms p90_ms p99_ms p99.9_ms max_ms non2xx server_cores machine_busy
	for pair in "GET /Users?filter=userName eq (100k users)|$r_get|$cores_get|$busy_get" "POST /Users (+ outbox row)|$r_post|$cores_post|$busy_post"; do
		IFS='|' read -r name r c m <<<"$pair"
		errs=$(($(field err_connect "$r") + $(field err_read "$r") + $(field err_write "$r") + $(field err_timeout "$r")))
		printf '%-44s %10.0f %8s %8s %8s %9s %8s %7s %12s %12s\n' "$name" "$(field rps "$r")" "$(field p50_ms "$r")" \
			"$(field p90_ms "$r")" "$(field p99_ms "$r")" "$(field p999_ms "$r")" "$(field max_ms "$r")" \
			"$(($(field non2xx "$r") + errs))" "$c" "$m"
	done
	echo "group PATCH adding 1,000 members (ms, sorted): $patch_ms"
	echo "users in the big site after the run: $users_after"
	echo "server RSS: peak (VmHWM) $((hwm_kb / 1024)) MB, at the end $((rss_kb / 1024)) MB"
	summary+=("$db | filter GET $(field rps "$r_get") req/s p99 $(field p99_ms "$r_get") ms | POST $(field rps "$r_post")/s p99 $(field p99_ms "$r_post") ms | PATCH 1000 members median ${patch_median} ms max ${patch_max} ms | peak RSS $((hwm_kb / 1024)) MB")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
