#!/bin/bash
# run.sh - install what is missing, build, and run toasterd in the
# foreground on its embedded defaults (loopback, high ports, data in ./var).
# Extra arguments go to toasterd (e.g. ./run.sh -c toaster.conf).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
if [ ! -d build ]; then
    meson setup build
fi
meson compile -C build
exec ./build/toasterd "$@"
