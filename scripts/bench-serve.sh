#!/usr/bin/env bash
# bench-serve.sh [ROUNDS] — memcslap's default run against one memcached
# (-t 1): direct, through nutcracker, and through tiercache serve (plain
# keys), interleaved round by round (direct, nutcracker, serve, direct, …).
# Prints each run's measured seconds (memcslap's "Time to ..." lines, key
# generation and thread start left out), the median of each, the ratios to
# direct, then get and getMulti(100) p50/p99 from php-memcached and
# php-memcache against the three (bench-serve.php, interleaved the same
# way), and the 1-minute load average before and after.
#
# Needs memcached, nutcracker, memcslap (scripts/install-clients.sh) and go.
# Ports: BENCH_PORT (default 24411) and the two after it, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

rounds=${1:-5}
base=${BENCH_PORT:-24411}
mc_port=$base nc_port=$((base + 1)) serve_port=$((base + 2))
tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

wait_port() {
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench-serve: nothing listens on port $1" >&2
	exit 1
}

user=()
[ "$(id -u)" -eq 0 ] && user=(-u root)
memcached "${user[@]}" -l 127.0.0.1 -p "$mc_port" -U 0 -t 1 -m 256 &
pids+=($!)
cat >"$tmp/nutcracker.yml" <<YML
bench:
  listen: 127.0.0.1:$nc_port
  hash: fnv1a_64
  distribution: ketama
  servers:
    - 127.0.0.1:$mc_port:1
YML
nutcracker -c "$tmp/nutcracker.yml" -s $((base + 3)) &
pids+=($!)
# The source is never asked: memcslap's keys are all plain.
cat >"$tmp/tiercache.yml" <<YML
memcached:
  servers: ["127.0.0.1:$mc_port:1"]
  hash: fnv1a_64
  distribution: ketama
source:
  dsn: bench:bench@tcp(127.0.0.1:1)/bench
  query: SELECT k, v FROM kv WHERE k IN (?)
serve:
  listen: 127.0.0.1:$serve_port
  route: article
YML
go build -o "$tmp/tiercache" ./cmd/tiercache
"$tmp/tiercache" serve -c "$tmp/tiercache.yml" >/dev/null &
pids+=($!)
wait_port "$mc_port"
wait_port "$nc_port"
wait_port "$serve_port"

measure() {
	memcslap --servers="127.0.0.1:$1" |
		awk '/^Time to/ && !/generate|start/ { s += $(NF-1) } END { printf "%.3f", s }'
}

echo "load average before: $(cut -d' ' -f1 /proc/loadavg)"
echo "command: memcslap --servers=ADDR (default run), memcached -t 1, $rounds rounds"
declare -A runs
for r in $(seq "$rounds"); do
	line="round $r:"
	for target in direct:$mc_port nutcracker:$nc_port serve:$serve_port; do
		name=${target%%:*}
		s=$(measure "${target##*:}")
		runs[$name]+="$s "
		line+=" $name ${s}s"
	done
	echo "$line"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
d=$(echo "${runs[direct]}" | median)
n=$(echo "${runs[nutcracker]}" | median)
s=$(echo "${runs[serve]}" | median)
echo "median: direct ${d}s nutcracker ${n}s serve ${s}s"
awk -v d="$d" -v n="$n" -v s="$s" 'BEGIN { printf "ratio to direct: nutcracker %.2fx serve %.2fx\n", n / d, s / d }'
# Plain keys: the route is "article", the keys "bench:php:...".
for ext in memcached memcache; do
	php scripts/bench-serve.php "$ext" "$rounds" 2000 \
		direct=127.0.0.1:$mc_port nutcracker=127.0.0.1:$nc_port serve=127.0.0.1:$serve_port
done
echo "load average after: $(cut -d' ' -f1 /proc/loadavg)"
