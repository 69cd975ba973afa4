#!/bin/bash
# scripts/install-deps.sh - install the Debian 12 packages toaster needs to
# build and (with "test") to run its tests. Installs only what is missing;
# apt-get update runs only when something must be installed.
set -euo pipefail

build_packages=(gcc meson ninja-build pkg-config liburing-dev libssl-dev libhiredis-dev
                libclamav-dev libjemalloc-dev libck-dev libc-ares-dev publicsuffix openssl)
test_packages=(python3 python3-pytest swaks libnet-ssleay-perl clang libclang-rt-14-dev mutt isync
               python3-dkim python3-nacl python3-dnspython clamav-testfiles redis-server sieve-connect
               opendkim opendkim-tools dovecot-sieve
               roundcube-core roundcube-sqlite3 roundcube-plugins php-cli
               chromium chromium-driver python3-selenium postfix)

wanted=("${build_packages[@]}")
if [ "${1:-}" = "test" ]; then
    wanted+=("${test_packages[@]}")
fi

missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# roundcube-core would have dbconfig-common set up a database: the end-to-end
# test writes its own configuration (SQLite in a temporary folder), so no.
echo "roundcube-core roundcube/dbconfig-install boolean false" | $SUDO debconf-set-selections
# postfix is the real front end of the LMTP tests, run as a private
# instance: the system's own stays unconfigured and stopped.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
