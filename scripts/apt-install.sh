#!/usr/bin/env bash
# apt-install.sh PACKAGE... — install the Debian packages given that are not
# installed yet. Uses sudo only when not root; runs apt-get update first only
# when the package lists are empty, and again once if the install fails.
set -euo pipefail

missing=()
for pkg in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "apt-install: apt-get not found; install these packages yourself: ${missing[*]}" >&2
	exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "apt-install: not root and sudo not found; install as root: apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi

apt() {
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@" </dev/null
}

echo "apt-install: installing ${missing[*]}" >&2
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
	apt update
fi
if ! apt install -y --no-install-recommends "${missing[@]}"; then
	echo "apt-install: install failed; running apt-get update and retrying" >&2
	apt update
	apt install -y --no-install-recommends "${missing[@]}"
fi
