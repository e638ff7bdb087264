#!/usr/bin/env bash
# The unauthenticated flood benchmark of issue 10 (docs/PERFORMANCE.md):
# 100,000 junk requests to `idbridge serve` (random SCIM site IDs and paths,
# Connect JWTs with random issuers, installs with random kids, random bytes
# in paths, headers and bodies) must grow its RSS by at most 50 MB and be
# answered with 4xx only.
#
#   bench/flood/run.sh [sqlite] [postgres]      # default: both
#
# Environment: N (requests, default 100000), CONNECTIONS (default 16),
# MAX_GROWTH_MB (default 50),
# PG_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
#
# idbridge runs as its own process (built here, as released: CGO_ENABLED=0,
# -trimpath) so that its RSS is measured alone; the junk is sent from
# another process over 127.0.0.1. Exits non-zero when a backend fails.
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$(pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

N=${N:-100000}
CONNECTIONS=${CONNECTIONS:-16}
MAX_GROWTH_MB=${MAX_GROWTH_MB:-50}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

bench_backends "$@"
bench_tmp

echo "# idbridge unauthenticated flood"
echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(uname -sr); go: $(go env GOVERSION)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
CGO_ENABLED=0 go build -trimpath -tags nomsgpack -o "$tmp/idbridge" .
go build -o "$tmp/flood" ./bench/flood

status=0
for db in "${backends[@]}"; do
	echo
	echo "== $db"
	"$tmp/flood" -idbridge "$tmp/idbridge" -db "$db" -pg "$PG_URL" -n "$N" -c "$CONNECTIONS" -max-growth-mb "$MAX_GROWTH_MB" || status=1
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
