# Shared by the load scripts in bench/*/run.sh: sourced, never run.
# It defines
#   bench_backends ARGS...  sets backends=(…) from the arguments (default:
#                           sqlite postgres), exits 2 on an unknown one;
#   bench_tmp               makes $tmp and stops $server_pid (when set)
#                           and removes $tmp on exit, 130 on Ctrl-C;
#   cpu_ticks PID           utime+stime of a process, in clock ticks
#                           ($clk_tck per second).

bench_backends() {
	if [ $# -gt 0 ]; then backends=("$@"); else backends=(sqlite postgres); fi
	local b
	for b in "${backends[@]}"; do
		case $b in sqlite | postgres) ;; *) echo "run.sh: unknown backend $b (want sqlite or postgres)" >&2; exit 2 ;; esac
	done
}

bench_cleanup() {
	if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}

bench_tmp() {
	tmp=$(mktemp -d)
	server_pid=
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

clk_tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
