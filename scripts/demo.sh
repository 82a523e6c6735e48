#!/usr/bin/env bash
# demo.sh — the quickstart story: installs memcached and MariaDB when
# missing, starts private servers on loopback, runs examples/quickstart
# against them, and stops them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

exec bash scripts/with-services.sh go run ./examples/quickstart "$@"
