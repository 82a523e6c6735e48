#!/usr/bin/env bash
# test.sh [PACKAGES...] — the project's tests, as CI runs them: installs what
# is missing (a C compiler for -race, memcached, MariaDB, nutcracker, the
# memcached clients tiercache serve is tested with), starts
# private servers on loopback, runs go test -race, and stops the servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v gcc >/dev/null 2>&1 || bash scripts/apt-install.sh gcc libc6-dev
bash scripts/install-clients.sh
[ "$#" -gt 0 ] || set -- ./...
exec bash scripts/with-services.sh go test -race -count=1 -timeout 15m "$@"
