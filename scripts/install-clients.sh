#!/usr/bin/env bash
# install-clients.sh — the memcached clients the tests of tiercache serve
# run against it: PHP's memcached (libmemcached) and memcache extensions,
# pymemcache, and libmemcached's tools (memcslap). Installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec bash scripts/apt-install.sh php-cli php-memcached php-memcache python3-pymemcache libmemcached-tools
