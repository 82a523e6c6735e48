#!/usr/bin/env bash
# test.sh [PACKAGES...] — the project's tests, as CI runs them: installs what
# is missing (a C compiler for -race, memcached, MariaDB, nutcracker, the
# memcached clients tiercache serve is tested with, chromium), starts
# private servers on loopback, runs go test -race, and stops the servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v gcc >/dev/null 2>&1 || bash scripts/apt-install.sh gcc libc6-dev
bash scripts/install-clients.sh
# chromium renders the stats port's live page in its test; without it that
# one test skips, saying so.
command -v chromium >/dev/null 2>&1 || bash scripts/apt-install.sh chromium ||
	echo "test.sh: chromium could not be installed; the live page test will skip" >&2
[ "$#" -gt 0 ] || set -- ./...
exec bash scripts/with-services.sh go test -race -count=1 -timeout 15m "$@"
