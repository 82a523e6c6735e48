#!/usr/bin/env bash
# with-services.sh CMD [ARG...] — run CMD with the private MariaDB and
# memcached of services.sh running and their TIERCACHE_* variables exported,
# then stop them, whether CMD succeeded, failed or was interrupted. Exits with
# CMD's status.
#
# Servers that were already running before (a developer's `services.sh
# start`) are left running.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
services=$here/services.sh

if [ "$#" -eq 0 ]; then
	echo "usage: $0 CMD [ARG...]" >&2
	exit 2
fi

if ! bash "$services" status >/dev/null 2>&1; then
	trap 'bash "$services" stop' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi

bash "$services" start
eval "$(bash "$services" env)"

status=0
"$@" || status=$?
exit "$status"
