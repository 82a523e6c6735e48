#!/usr/bin/env bash
# services.sh start|stop|status|env|restart-memcached — a private MariaDB and
# memcached for tiercache's tests, demo and benchmarks.
#
# Both servers listen on 127.0.0.1 only (MariaDB also on a unix socket), on
# private ports, with their data, logs and pid files under the repository's
# .run/ directory. The system's own services are never touched. Missing
# Debian packages (memcached, mariadb-server, mariadb-client, nutcracker) are
# installed on start.
#
#   start   install what is missing, start both servers, wait until they
#           accept connections; starting what already runs is a no-op
#   stop    stop both and wait until they have exited
#   status  print what runs; exit 0 when both run, 3 otherwise
#   env     print the export lines the tests and the demo read:
#             eval "$(scripts/services.sh env)"
#   restart-memcached
#           kill memcached (SIGKILL) and start an empty one on the same
#           port; TIERCACHE_MEMCACHED_RESTART in env runs this
#
# Environment overrides:
#   TIERCACHE_MYSQL_PORT      MariaDB TCP port (23306)
#   TIERCACHE_MEMCACHED_PORT  memcached port (21211)
#   TIERCACHE_RUN_DIR         state directory (<repo>/.run)
#   TIERCACHE_START_TIMEOUT   seconds to wait for each server (60)
#
# MariaDB account: tiercache / tiercache, all privileges, over the socket or
# TCP. The server runs with performance_schema and userstat (per-account
# statement counters, used by internal/testenv to count SELECTs).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run_dir=${TIERCACHE_RUN_DIR:-$root/.run}
mysql_port=${TIERCACHE_MYSQL_PORT:-23306}
memcached_port=${TIERCACHE_MEMCACHED_PORT:-21211}
start_timeout=${TIERCACHE_START_TIMEOUT:-60}

mysql_dir=$run_dir/mariadb
mysql_data=$mysql_dir/data
mysql_sock=$mysql_dir/mysqld.sock
mysql_pidfile=$mysql_dir/mysqld.pid
mysql_log=$mysql_dir/error.log
mysql_user=tiercache
mysql_password=tiercache

memcached_dir=$run_dir/memcached
memcached_pidfile=$memcached_dir/memcached.pid
memcached_log=$memcached_dir/memcached.log

log() { echo "services: $*" >&2; }
die() {
	log "$*"
	exit 1
}

# A unix socket path must fit in sun_path (108 bytes with the NUL).
if [ "${#mysql_sock}" -gt 100 ]; then
	mysql_sock=/tmp/tiercache-$(printf '%s' "$root" | cksum | cut -d' ' -f1).sock
fi

# binary NAME... prints the first of NAME... found in PATH or the sbin
# directories, which a non-root PATH often lacks.
binary() {
	local name dir
	for name in "$@"; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return 0
		fi
		for dir in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
			if [ -x "$dir/$name" ]; then
				echo "$dir/$name"
				return 0
			fi
		done
	done
	return 1
}

install_missing() {
	local pkgs=()
	binary memcached >/dev/null || pkgs+=(memcached)
	binary mariadbd mysqld >/dev/null && binary mariadb-install-db mysql_install_db >/dev/null ||
		pkgs+=(mariadb-server)
	binary mariadb >/dev/null || pkgs+=(mariadb-client)
	binary nutcracker >/dev/null || pkgs+=(nutcracker)
	[ "${#pkgs[@]}" -eq 0 ] || bash "$root/scripts/apt-install.sh" "${pkgs[@]}"
}

# running PID succeeds while PID runs. A zombie counts as exited: in
# containers the reaper of orphans may take seconds to collect it.
running() {
	kill -0 "$1" 2>/dev/null || return 1
	! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# alive PIDFILE COMM... prints the pid in PIDFILE when that process runs and
# is named one of COMM... (so a recycled pid is never taken for our server).
alive() {
	local pidfile=$1 pid comm name
	shift
	[ -s "$pidfile" ] || return 1
	pid=$(cat "$pidfile")
	[ -n "$pid" ] && running "$pid" || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	for name in "$@"; do
		if [ "$comm" = "$name" ]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

# log_lines FILE prints how many lines FILE has, so that tail_log can show
# only what a start added to a log that servers append to.
log_lines() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# tail_log FILE [SKIP] prints the last lines of FILE after its first SKIP.
tail_log() {
	log "last lines of $1:"
	tail -n "+$((${2:-0} + 1))" "$1" 2>/dev/null | tail -n 30 >&2 || true
}

# wait_exit PID NAME waits for PID to exit, killing it after 60 seconds.
wait_exit() {
	local i
	for ((i = 0; i < 600; i++)); do
		running "$1" || return 0
		sleep 0.1
	done
	log "$2 (pid $1) did not exit within 60s; killing it"
	kill -KILL "$1" 2>/dev/null || true
}

mysql_client() {
	"$(binary mariadb)" --no-defaults --protocol=socket --socket="$mysql_sock" \
		--user="$mysql_user" --password="$mysql_password" "$@"
}

mysql_start() {
	local mariadbd install_db pid i log_start user_opt=()
	if pid=$(alive "$mysql_pidfile" mariadbd mysqld); then
		log "MariaDB already running (pid $pid, port $mysql_port)"
		return 0
	fi
	mariadbd=$(binary mariadbd mysqld) || die "mariadbd not found"
	install_db=$(binary mariadb-install-db mysql_install_db) || die "mariadb-install-db not found"
	[ "$(id -u)" -eq 0 ] && user_opt=(--user=root)
	# A private tmpdir: mariadbd deletes the #sql* files of its tmpdir when it
	# starts, which would break other servers sharing /tmp.
	mkdir -p "$mysql_dir/tmp"
	rm -f "$mysql_pidfile"

	if [ ! -d "$mysql_data/mysql" ]; then
		log "initialising MariaDB data directory $mysql_data"
		rm -rf "$mysql_data"
		if ! "$install_db" --no-defaults --datadir="$mysql_data" --tmpdir="$mysql_dir/tmp" "${user_opt[@]}" \
			--auth-root-authentication-method=socket --skip-test-db \
			--innodb-log-file-size=8M --innodb-buffer-pool-size=32M \
			>"$mysql_dir/install.log" 2>&1; then
			rm -rf "$mysql_data"
			tail_log "$mysql_dir/install.log"
			die "mariadb-install-db failed"
		fi
	fi

	# The init file runs at every start with full privileges, so the account
	# exists however the data directory was made.
	cat >"$mysql_dir/init.sql" <<-EOF
		CREATE USER IF NOT EXISTS '$mysql_user'@'localhost' IDENTIFIED BY '$mysql_password';
		CREATE USER IF NOT EXISTS '$mysql_user'@'127.0.0.1' IDENTIFIED BY '$mysql_password';
		GRANT ALL PRIVILEGES ON *.* TO '$mysql_user'@'localhost' WITH GRANT OPTION;
		GRANT ALL PRIVILEGES ON *.* TO '$mysql_user'@'127.0.0.1' WITH GRANT OPTION;
	EOF

	log "starting MariaDB on 127.0.0.1:$mysql_port and $mysql_sock"
	log_start=$(log_lines "$mysql_log")
	# --no-defaults must come first: /etc/mysql/my.cnf belongs to the system
	# service and may set its own socket, port or data directory.
	nohup "$mariadbd" --no-defaults "${user_opt[@]}" \
		--datadir="$mysql_data" --tmpdir="$mysql_dir/tmp" \
		--socket="$mysql_sock" --pid-file="$mysql_pidfile" \
		--port="$mysql_port" --bind-address=127.0.0.1 --skip-name-resolve \
		--log-error="$mysql_log" --init-file="$mysql_dir/init.sql" \
		--performance-schema=ON --userstat=1 \
		--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
		--max-connections=1000 --skip-log-bin \
		--innodb-buffer-pool-size=64M --innodb-log-file-size=8M \
		--innodb-flush-log-at-trx-commit=2 \
		>>"$mysql_dir/mariadbd.out" 2>&1 </dev/null &
	pid=$!

	for ((i = 0; i < start_timeout * 10; i++)); do
		if ! running "$pid"; then
			tail_log "$mysql_log" "$log_start"
			die "MariaDB exited during start (port $mysql_port taken? set TIERCACHE_MYSQL_PORT)"
		fi
		if [ -S "$mysql_sock" ] && mysql_client -e 'SELECT 1' >/dev/null 2>&1; then
			log "MariaDB ready (pid $pid) after $((i / 10)).$((i % 10))s"
			return 0
		fi
		sleep 0.1
	done
	tail_log "$mysql_log" "$log_start"
	kill -TERM "$pid" 2>/dev/null || true
	die "MariaDB did not accept connections within ${start_timeout}s"
}

mysql_stop() {
	local pid
	if ! pid=$(alive "$mysql_pidfile" mariadbd mysqld); then
		log "MariaDB not running"
		return 0
	fi
	log "stopping MariaDB (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	wait_exit "$pid" MariaDB
	rm -f "$mysql_pidfile"
}

# memcached_ping runs in a subshell so that a refused connection cannot end
# the script and the descriptor closes with it.
memcached_ping() (
	exec 3<>"/dev/tcp/127.0.0.1/$memcached_port" || exit 1
	printf 'version\r\n' >&3
	reply=
	read -r -t 2 reply <&3 || true
	[[ $reply == VERSION* ]]
)

memcached_start() {
	local memcached pid i log_start user_opt=()
	if pid=$(alive "$memcached_pidfile" memcached); then
		log "memcached already running (pid $pid, port $memcached_port)"
		return 0
	fi
	memcached=$(binary memcached) || die "memcached not found"
	[ "$(id -u)" -eq 0 ] && user_opt=(-u root)
	mkdir -p "$memcached_dir"
	log "starting memcached on 127.0.0.1:$memcached_port"
	log_start=$(log_lines "$memcached_log")
	# Foreground rather than -d: a daemonised memcached reports a failed bind
	# to /dev/null.
	nohup "$memcached" "${user_opt[@]}" -l 127.0.0.1 -p "$memcached_port" -U 0 \
		-t 1 -m 256 -c 4096 >>"$memcached_log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$memcached_pidfile"

	for ((i = 0; i < start_timeout * 10; i++)); do
		if ! running "$pid"; then
			rm -f "$memcached_pidfile"
			tail_log "$memcached_log" "$log_start"
			die "memcached exited during start (port $memcached_port taken? set TIERCACHE_MEMCACHED_PORT)"
		fi
		if memcached_ping 2>/dev/null; then
			log "memcached ready (pid $pid)"
			return 0
		fi
		sleep 0.1
	done
	tail_log "$memcached_log" "$log_start"
	kill -TERM "$pid" 2>/dev/null || true
	die "memcached did not accept connections within ${start_timeout}s"
}

# memcached_stop [SIGNAL] stops memcached with SIGNAL (TERM) and waits.
memcached_stop() {
	local pid
	if ! pid=$(alive "$memcached_pidfile" memcached); then
		log "memcached not running"
		rm -f "$memcached_pidfile"
		return 0
	fi
	log "stopping memcached (pid $pid)"
	kill "-${1:-TERM}" "$pid" 2>/dev/null || true
	wait_exit "$pid" memcached
	rm -f "$memcached_pidfile"
}

status() {
	local pid up=0
	if pid=$(alive "$mysql_pidfile" mariadbd mysqld); then
		echo "mariadb:   running (pid $pid) 127.0.0.1:$mysql_port $mysql_sock"
		up=$((up + 1))
	else
		echo "mariadb:   stopped"
	fi
	if pid=$(alive "$memcached_pidfile" memcached); then
		echo "memcached: running (pid $pid) 127.0.0.1:$memcached_port"
		up=$((up + 1))
	else
		echo "memcached: stopped"
	fi
	[ "$up" -eq 2 ] || return 3
}

# quote prints $1 in single quotes for the shell.
quote() {
	local q="'\\''"
	printf "'%s'" "${1//\'/$q}"
}

env_lines() {
	echo "export TIERCACHE_MYSQL_DSN=$(quote "$mysql_user:$mysql_password@unix($mysql_sock)/?parseTime=true")"
	echo "export TIERCACHE_MEMCACHED=$(quote "127.0.0.1:$memcached_port")"
	echo "export TIERCACHE_MEMCACHED_RESTART=$(quote "TIERCACHE_RUN_DIR=$(quote "$run_dir") TIERCACHE_MEMCACHED_PORT=$memcached_port bash $(quote "$root/scripts/services.sh") restart-memcached")"
}

case "${1:-}" in
start)
	install_missing
	mysql_start
	memcached_start
	;;
stop)
	memcached_stop
	mysql_stop
	;;
status) status ;;
env) env_lines ;;
restart-memcached)
	memcached_stop KILL
	memcached_start
	;;
*)
	echo "usage: $0 start|stop|status|env|restart-memcached" >&2
	exit 2
	;;
esac
