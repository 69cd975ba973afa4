#!/bin/bash
# test.sh - install what is missing, build, run every test, and print
# "N passed, N failed" as the last line.
#
# Stages: unit tests (build/), the same unit tests under ASan+UBSan
# (build-asan/), integration tests with the real daemon and real clients
# (pytest, swaks, mutt, mbsync) against both builds, Roundcube end to end in
# headless Chromium (tests/e2e) against both builds, and each libFuzzer
# harness for FUZZ_SECONDS on top of its
# corpus (build-fuzz/, clang). Counts are checks for unit programs, test
# cases for pytest, and one per fuzz target.
set -uo pipefail
cd "$(dirname "$0")"
FUZZ_SECONDS="${FUZZ_SECONDS:-6}"

./scripts/install-deps.sh test || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
count_line() { # add "N passed, M failed" from the last such line of a file
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        return
    fi
    passed=$((passed + $(echo "$line" | cut -d' ' -f1)))
    failed=$((failed + $(echo "$line" | cut -d' ' -f3)))
}

logs=$(mktemp -d)
build_ok=1
if [ ! -d build ]; then meson setup build >/dev/null || build_ok=0; fi
meson compile -C build || build_ok=0
if [ ! -d build-asan ]; then
    meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || build_ok=0
fi
meson compile -C build-asan || build_ok=0
if [ "$build_ok" = 0 ]; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

for dir in build build-asan; do
    for exe in "$dir"/tests/test_*; do
        [ -f "$exe" ] && [ -x "$exe" ] || continue
        name="$dir/$(basename "$exe")"
        if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            "$exe" >"$logs/unit.log" 2>&1; then
            echo "ok    $name: $(tail -1 "$logs/unit.log")"
        else
            echo "FAIL  $name"
            tail -30 "$logs/unit.log"
            failed=$((failed + 1))
        fi
        count_line "$logs/unit.log"
    done
done

# pytest_stage LABEL DIR TESTS: one pytest run of TESTS against DIR's
# daemon and tools (the sanitizers stop at the first report), its summary
# added to the counts (no summary at all counts as a failure).
pytest_stage() {
    local label=$1 dir=$2 tests=$3 summary p f e
    echo "== $label ($dir)"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        TOASTERD="$PWD/$dir/toasterd" TOASTERCTL="$PWD/$dir/toasterctl" \
        TOASTER_BENCH="$PWD/$dir/toaster-bench" DKIM_TOOL="$PWD/$dir/tests/dkim_tool" \
        DNS_QUERY="$PWD/$dir/tests/dns_query" KV_TOOL="$PWD/$dir/tests/kv_tool" \
        DSN_TOOL="$PWD/$dir/tests/dsn_tool" TOASTER_ARTIFACTS="$PWD/$dir/e2e-artifacts" \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider "$tests" 2>&1 | tee "$logs/pytest.log"
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^(=+ )?[0-9]+ (failed|error)' "$logs/pytest.log" | tail -1)
    p=$(echo "$summary" | grep -oE '[0-9]+ passed' | cut -d' ' -f1)
    f=$(echo "$summary" | grep -oE '[0-9]+ failed' | cut -d' ' -f1)
    e=$(echo "$summary" | grep -oE '[0-9]+ error' | cut -d' ' -f1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    if [ -z "$summary" ]; then failed=$((failed + 1)); fi
}

# Integration twice: the optimised daemon, then the same tests against the
# ASan+UBSan build, so a memory error or leak in the daemon (reported on its
# stderr, which every test checks at stop) fails the run. Then Roundcube
# end to end (tests/e2e, about 20 s a build: Debian's Roundcube on php -S
# driven in headless Chromium) on both daemons the same way; screenshots
# and Roundcube's protocol logs in <build>/e2e-artifacts/.
for dir in build build-asan; do
    pytest_stage integration "$dir" tests/integration
done
for dir in build build-asan; do
    pytest_stage "e2e: Roundcube in headless Chromium" "$dir" tests/e2e
done

echo "== fuzz (${FUZZ_SECONDS}s per target)"
if [ ! -d build-fuzz ]; then
    CC=clang meson setup build-fuzz -Dfuzz=true >/dev/null
fi
# fuzz_one EXE: one harness for FUZZ_SECONDS on a copy of its corpus, with
# its dictionary (fuzz_imap_mime: imap_mime.dict, else its protocol's:
# fuzz_smtp_body: smtp.dict); output and exit code in $logs/fuzz-<name>.*.
fuzz_one() {
    local exe=$1 name target corpus work candidate rc
    name=$(basename "$exe")
    target=${name#fuzz_}
    corpus="tests/fuzz/corpus/$target"
    work=$(mktemp -d)
    local dict=()
    for candidate in "tests/fuzz/$target.dict" "tests/fuzz/${target%%_*}.dict"; do
        if [ -f "$candidate" ]; then
            dict=("-dict=$candidate")
            break
        fi
    done
    "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        "${dict[@]}" -artifact_prefix=tests/fuzz/artifacts/ \
        "$work" "$corpus" >"$logs/$name.log" 2>&1
    rc=$?
    echo "$rc" >"$logs/$name.rc"
    rm -rf "$work"
}

if meson compile -C build-fuzz >"$logs/fuzz-build.log" 2>&1; then
    mkdir -p tests/fuzz/artifacts
    # Each harness is one thread: as many at once as there are cores, so
    # every one still gets its FUZZ_SECONDS and the stage takes a fraction.
    names=()
    for exe in build-fuzz/tests/fuzz_*; do
        [ -f "$exe" ] && [ -x "$exe" ] || continue
        while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do
            wait -n
        done
        fuzz_one "$exe" &
        names+=("$(basename "$exe")")
    done
    wait
    for name in "${names[@]}"; do
        if [ "$(cat "$logs/$name.rc" 2>/dev/null)" = 0 ]; then
            echo "ok    $name: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$logs/$name.log" | tail -1)"
            passed=$((passed + 1))
        else
            echo "FAIL  $name"
            tail -40 "$logs/$name.log"
            failed=$((failed + 1))
        fi
    done
else
    tail -20 "$logs/fuzz-build.log"
    failed=$((failed + 1))
fi

rm -rf "$logs"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
