#!/usr/bin/env bash
# Load test of idbridge's Connect path: GET /healthz (no authentication)
# against GET /api/admin/site (context JWT verified with the site's shared
# secret, site from the in-process cache, admin answer cached for 60 s),
# and the Forge route GET /forge/site (Forge invocation token, RS256) in two
# cases: one token reused (Forge reuses a token for about a minute; served
# from the verified-token cache) and a fresh token on every request (a pool
# larger than that cache, cycled by fresh.lua: every request pays the RS256
# verification). FORGE=0 leaves the Forge route out; it needs wrk.
#
#   bench/connect/run.sh [sqlite] [postgres]      # default: both
#
# Environment: WARMUP (s, default 3), DURATION (s, default 15),
# CONNECTIONS (default 32), THREADS (wrk threads, default 2), REPEAT (rounds
# of healthz-then-site per backend, default 1; the median round is shown),
# PG_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
# On a shared machine set QUIET_MAX (cores, e.g. 0.15): each round then waits
# (up to QUIET_WAIT s, default 600) until other processes use less than that,
# and a round during which they used more is discarded and run again (at
# most 5 tries per round). NICE (e.g. -10, needs root) runs idbridge and the
# load generator at that priority, so that other work on a shared machine
# disturbs them less.
#
# Everything runs on 127.0.0.1, on this one machine: the load generator
# competes with idbridge for the same CPU cores, so the numbers are a floor
# for what idbridge does on a core of its own. Every run is bounded in time.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

WARMUP=${WARMUP:-3}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-1}
QUIET_MAX=${QUIET_MAX:-}
QUIET_WAIT=${QUIET_WAIT:-600}
NICE=${NICE:-}
FORGE=${FORGE:-1}
prio=()
if [ -n "$NICE" ]; then prio=(nice -n "$NICE"); fi
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

bench_backends "$@"

if command -v wrk >/dev/null; then
	tool=wrk
elif command -v hey >/dev/null; then
	tool=hey
	FORGE=0 # hey cannot send a different token per request
else
	echo "run.sh: neither wrk nor hey is installed (apt-get install -y wrk)" >&2
	exit 2
fi

bench_tmp
export REPORT_LUA=$root/bench/connect/report.lua THREADS


echo "# idbridge Connect load test"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr)"
echo "go: $(go env GOVERSION); load generator: $tool $( [ $tool = wrk ] && wrk -v 2>&1 | awk 'NR==1 { print $2 }')"
echo "load: $CONNECTIONS connections, $THREADS threads, ${WARMUP}s warm-up (discarded) + ${DURATION}s measured per route, $REPEAT round(s)"
echo "note: load generator and server share this machine's $(nproc) cores, on 127.0.0.1${NICE:+; both at nice $NICE}"
echo

go build -o "$tmp/connect" ./bench/connect

# cpu_stat prints "busy steal" jiffies of the whole machine from /proc/stat.
cpu_stat() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $9; exit }' /proc/stat
}

# load URL [AUTHORIZATION] runs the warm-up and the measured run and prints
# one RESULT line (see report.lua) for the measured one, with the CPU used
# during it, in cores: by the server, by the load generator, by the whole
# machine, by everything else (other_cores), and stolen by the hypervisor.
load() {
	local url=$1 auth=${2:-} script=${3:-$root/bench/connect/report.lua}
	local hdr=()
	if [ -n "$auth" ]; then hdr=(-H "Authorization: $auth"); fi
	local TIMEFORMAT='%U %S' result
	if [ $tool = wrk ]; then
		"${prio[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$script" "${hdr[@]}" "$url" >/dev/null
	else
		"${prio[@]}" hey -z "${WARMUP}s" -c "$CONNECTIONS" "${hdr[@]}" "$url" >/dev/null
	fi
	local s0 t0 w0 s1 t1
	s0=$(cpu_stat) t0=$(cpu_ticks "$server_pid") w0=$(date +%s.%N)
	if [ $tool = wrk ]; then
		{ time "${prio[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s -s "$script" \
			"${hdr[@]}" "$url" >"$tmp/load.out"; } 2>"$tmp/load.time"
		result=$(grep '^RESULT' "$tmp/load.out")
	else
		{ time "${prio[@]}" hey -z "${DURATION}s" -c "$CONNECTIONS" "${hdr[@]}" "$url" >"$tmp/load.out"; } 2>"$tmp/load.time"
		result=$(awk '
			/Requests\/sec:/ { rps = $2 }
			/Total:/ && !total { total = $2 }
			/ 50% in / { p50 = $3 * 1000 }
			/ 90% in / { p90 = $3 * 1000 }
			/ 99% in / { p99 = $3 * 1000 }
			/Slowest:/ { max = $2 * 1000 }
			/\[2[0-9][0-9]\]/ { ok += $2 }
			/\[[13-5][0-9][0-9]\]/ { bad += $2 }
			END { printf "RESULT requests=%d seconds=%s rps=%s p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=nan max_ms=%.3f non2xx=%d err_connect=0 err_read=0 err_write=0 err_timeout=0", ok + bad, total, rps, p50, p90, p99, max, bad }' "$tmp/load.out")
	fi
	s1=$(cpu_stat) t1=$(cpu_ticks "$server_pid")
	awk -v r="$result" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$(date +%s.%N)" \
		-v lg="$(cat "$tmp/load.time")" -v hz="$clk_tck" 'BEGIN {
		split(s0, a, " "); split(s1, b, " "); split(lg, l, " ")
		secs = w1 - w0
		busy = (b[1] - a[1]) / hz / secs; steal = (b[2] - a[2]) / hz / secs
		server = (t1 - t0) / hz / secs; gen = (l[1] + l[2]) / secs
		split(r, f, " "); rps = 0
		for (i in f) if (f[i] ~ /^rps=/) rps = substr(f[i], 5)
		printf "%s server_cores=%.2f loadgen_cores=%.2f machine_cores=%.2f other_cores=%.2f steal_cores=%.2f server_us_per_req=%.1f\n",
			r, server, gen, busy, busy - server - gen, steal, (rps > 0 ? server * 1e6 / rps : 0)
	}'
}

# wait_quiet waits until the machine (idbridge idle) is busier than
# QUIET_MAX cores no more, for at most QUIET_WAIT seconds.
wait_quiet() {
	[ -n "$QUIET_MAX" ] || return 0
	local deadline=$((SECONDS + QUIET_WAIT)) a b busy
	while :; do
		a=$(cpu_stat)
		sleep 2
		b=$(cpu_stat)
		busy=$(awk -v a="$a" -v b="$b" -v hz="$clk_tck" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", (y[1] - x[1]) / hz / 2 }')
		if awk -v b="$busy" -v m="$QUIET_MAX" 'BEGIN { exit !(b < m) }'; then return 0; fi
		if [ $SECONDS -ge $deadline ]; then
			echo "warning: other processes still use $busy cores after ${QUIET_WAIT}s; measuring anyway" >&2
			return 0
		fi
	done
}

# quiet RESULT... succeeds when no run used more than QUIET_MAX other cores.
quiet() {
	[ -n "$QUIET_MAX" ] || return 0
	local r
	for r in "$@"; do
		awk -v o="$(field other_cores "$r")" -v m="$QUIET_MAX" 'BEGIN { exit !(o < m) }' || return 1
	done
}

field() { # field NAME "RESULT ..." prints the value of NAME=
	tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# median_run RESULT... prints the run with the median req/s.
median_run() {
	for r in "$@"; do echo "$(field rps "$r")|$r"; done | sort -t'|' -k1,1n |
		awk -F'|' '{ v[NR] = $2 } END { print v[int((NR + 1) / 2)] }'
}

summary=()
for db in "${backends[@]}"; do
	out=$tmp/$db.out
	# The server stops by itself after this, should this script be killed.
	if [ -n "$QUIET_MAX" ]; then
		bound=$(((2 * (WARMUP + DURATION) + 4 + QUIET_WAIT) * REPEAT * 5 + 60))
	else
		bound=$((4 * (WARMUP + DURATION) * REPEAT + 60))
	fi
	# Context tokens live at most 15 minutes (as Atlassian issues them), so
	# the server keeps a fresh one in a file, read before every round.
	token_file=$tmp/$db.token
	forge_args=()
	if [ "$FORGE" = 1 ]; then
		# Forge tokens live 9 minutes; the server rewrites both files every 3.
		forge_file=$tmp/$db.forge forge_pool=$tmp/$db.forge-pool
		forge_args=(-forge-token-file "$forge_file" -forge-pool-file "$forge_pool")
	fi
	"${prio[@]}" "$tmp/connect" -db "$db" -pg "$PG_URL" -duration "${bound}s" -token-file "$token_file" "${forge_args[@]}" >"$out" 2>"$tmp/$db.err" &
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

	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	forge_url=$(awk -F= '$1 == "FORGE_URL" { print $2 }' "$out")
	open_runs=() jwt_runs=() ratios=() reused_runs=() fresh_runs=() reused_ratios=() fresh_ratios=()
	for round in $(seq "$REPEAT"); do
		for try in 1 2 3 4 5; do
			wait_quiet
			r_open=$(load "$healthz")
			token=$(cat "$token_file")
			r_jwt=$(load "$site" "JWT $token")
			r_reused=$r_jwt r_fresh=$r_jwt
			if [ "$FORGE" = 1 ]; then
				r_reused=$(load "$forge_url" "Bearer $(cat "$forge_file")")
				r_fresh=$(FORGE_POOL=$forge_pool load "$forge_url" "" "$root/bench/connect/fresh.lua")
			fi
			quiet "$r_open" "$r_jwt" "$r_reused" "$r_fresh" && break
			if [ "$try" -lt 5 ]; then
				echo "round $round, try $try: discarded, other processes used $(field other_cores "$r_open")/$(field other_cores "$r_jwt") cores"
			else
				echo "round $round: no quiet try in 5; keeping the last one"
			fi
		done
		open_runs+=("$r_open")
		jwt_runs+=("$r_jwt")
		ratios+=("$(awk -v a="$(field rps "$r_jwt")" -v b="$(field rps "$r_open")" 'BEGIN { printf "%.3f", a / b }')")
		echo "round $round: healthz $(field rps "$r_open") req/s ($(field server_us_per_req "$r_open") server CPU-us/req)," \
			"verified $(field rps "$r_jwt") req/s ($(field server_us_per_req "$r_jwt") CPU-us/req), ratio ${ratios[-1]};" \
			"other processes used $(field other_cores "$r_open") and $(field other_cores "$r_jwt") cores, steal $(field steal_cores "$r_open")/$(field steal_cores "$r_jwt")"
		if [ "$FORGE" = 1 ]; then
			reused_runs+=("$r_reused")
			fresh_runs+=("$r_fresh")
			reused_ratios+=("$(awk -v a="$(field rps "$r_reused")" -v b="$(field rps "$r_jwt")" 'BEGIN { printf "%.3f", a / b }')")
			fresh_ratios+=("$(awk -v a="$(field rps "$r_fresh")" -v b="$(field rps "$r_jwt")" 'BEGIN { printf "%.3f", a / b }')")
			echo "round $round: Forge reused $(field rps "$r_reused") req/s ($(field server_us_per_req "$r_reused") CPU-us/req), ratio to the context route ${reused_ratios[-1]};" \
				"Forge fresh $(field rps "$r_fresh") req/s ($(field server_us_per_req "$r_fresh") CPU-us/req), ratio ${fresh_ratios[-1]}"
		fi
	done
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

	kill -TERM "$server_pid"
	wait "$server_pid" || true
	server_pid=
	jira_line=$(grep 'admin checks' "$out" || true)

	r_open=$(median_run "${open_runs[@]}")
	r_jwt=$(median_run "${jwt_runs[@]}")
	median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }
	ratio=$(median "${ratios[@]}")
	pairs=("GET /healthz (no auth)|$r_open" "GET /api/admin/site (JWT)|$r_jwt")
	if [ "$FORGE" = 1 ]; then
		pairs+=("GET /forge/site (reused)|$(median_run "${reused_runs[@]}")" "GET /forge/site (fresh)|$(median_run "${fresh_runs[@]}")")
	fi

	echo
	echo "== $db (median of $REPEAT round(s) by req/s)"
	printf '%-28s %8s %7s %7s %7s %8s %7s %6s %7s %7s %6s %10s\n' route req/s p50_ms p90_ms p99_ms p99.9_ms max_ms non2xx server loadgen other cpu_us/req
	for pair in "${pairs[@]}"; do
		IFS='|' read -r name r <<<"$pair"
		errs=$(($(field err_connect "$r") + $(field err_read "$r") + $(field err_write "$r") + $(field err_timeout "$r")))
		printf '%-28s %8.0f %7.2f %7.2f %7.2f %8.2f %7.2f %6s %7s %7s %6s %10s\n' "$name" "$(field rps "$r")" "$(field p50_ms "$r")" \
			"$(field p90_ms "$r")" "$(field p99_ms "$r")" "$(field p999_ms "$r")" "$(field max_ms "$r")" \
			"$(($(field non2xx "$r") + errs))" "$(field server_cores "$r")" "$(field loadgen_cores "$r")" "$(field other_cores "$r")" \
			"$(field server_us_per_req "$r")"
	done
	echo "(server, loadgen, other: CPU cores used during the measured run by idbridge, by $tool, by everything else;"
	echo " cpu_us/req: idbridge's CPU time per request)"
	echo "ratio verified/unauthenticated (median of rounds): $ratio   ${jira_line#\# }"
	summary+=("$db | healthz $(field rps "$r_open") req/s | verified $(field rps "$r_jwt") req/s | ratio $ratio")
	if [ "$FORGE" = 1 ]; then
		echo "ratio Forge/context route (median of rounds): reused token $(median "${reused_ratios[@]}"), fresh token per request $(median "${fresh_ratios[@]}")"
		summary+=("$db | Forge/context throughput: reused $(median "${reused_ratios[@]}") | fresh $(median "${fresh_ratios[@]}")")
	fi
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
