#!/bin/bash
# bench/http_numbers.sh - the HTTP listener's numbers: requests/s of the
# Thunderbird autoconfig document (wrk; toasterd answers each request with
# "Connection: close", so every request is a new TCP connection, as a mail
# client's is), and how long a /metrics scrape takes (curl), each on an
# otherwise idle daemon and again with COUNT idle SMTP connections open (each
# has read its banner and said EHLO, as a client between messages). Medians
# of ROUNDS wrk runs of DURATION seconds at CONNECTIONS concurrent requests;
# SCRAPES scrapes one after another (median, 90th percentile, largest).
# Writes a markdown report to bench/results/http-<stamp>.md (and -o FILE).
# Usage: bench/http_numbers.sh [-o FILE]
#   env: COUNT=10000 ROUNDS=3 DURATION=10 CONNECTIONS=50 SCRAPES=50
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${COUNT:-10000}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-50}"
SCRAPES="${SCRAPES:-50}"
out=""
if [ "${1:-}" = "-o" ]; then out="$2"; fi
for v in COUNT ROUNDS DURATION CONNECTIONS SCRAPES; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v='${!v}' is not a positive integer" >&2; exit 2; }
done

if ! command -v wrk >/dev/null || ! command -v curl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk curl >/dev/null
fi
[ -x build/toasterd ] || { echo "build/toasterd is missing: meson compile -C build" >&2; exit 1; }

work=$(mktemp -d /tmp/toaster-http.XXXXXX)
pid=""
holder=""
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
. bench/toasterd_lib.sh

ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((COUNT + 200)) ]; then
    echo "open file limit $(ulimit -n) is below $((COUNT + 200))" >&2
    exit 1
fi
mkdir -p "$work/var"
write_users "$work/var/users"
smtp_port=$(free_port)
write_toasterd_conf "$work/toasterd.conf" "$work/var" "$smtp_port" \
    "max_connections = $((COUNT + 1000))" "max_connections_per_ip = $((COUNT + 1000))" \
    "log_level = warning"
http_port=$(sed -n 's/^http_listen = 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/toasterd.conf")
[ -n "$http_port" ] || { echo "no http_listen in $work/toasterd.conf" >&2; exit 1; }
./build/toasterd -c "$work/toasterd.conf" 2>"$work/toasterd.log" &
pid=$!
wait_smtp "$smtp_port"
wait_smtp "$http_port"

autoconfig="http://127.0.0.1:$http_port/mail/config-v1.1.xml?emailaddress=user1@example.test"
metrics="http://127.0.0.1:$http_port/metrics"
# The documents are what they should be before anything is timed.
# (Whole bodies first: grep -q leaving early would break curl's pipe.)
body=$(curl -sf "$autoconfig") && grep -q '<incomingServer type="imap">' <<<"$body" ||
    { echo "autoconfig does not answer with a clientConfig" >&2; exit 1; }
body=$(curl -sf "$metrics") && grep -q '^toaster_connections_open{' <<<"$body" ||
    { echo "/metrics does not answer with metrics" >&2; exit 1; }

# wrk_rps: the median requests/s of ROUNDS runs; any non-2xx answer or
# socket error fails the run (a refused request would flatter the rate).
wrk_rps() {
    local i rates=()
    for i in $(seq "$ROUNDS"); do
        wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$autoconfig" >"$work/wrk.txt"
        if grep -qE 'Non-2xx|Socket errors' "$work/wrk.txt"; then
            cat "$work/wrk.txt" >&2
            echo "wrk saw failed requests" >&2
            exit 1
        fi
        rates+=("$(sed -n 's/^Requests\/sec: *\([0-9.]*\)$/\1/p' "$work/wrk.txt")")
    done
    printf '%s\n' "${rates[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.0f", v[int((NR + 1) / 2)] }'
}

# scrape_times: "median p90 max" milliseconds of SCRAPES scrapes, and the body size.
scrape_times() {
    local i
    for i in $(seq "$SCRAPES"); do
        curl -sf -o "$work/metrics.txt" -w '%{time_total}\n' "$metrics"
    done | sort -n | awk '{ v[NR] = $1 * 1000 }
        END { printf "%.2f %.2f %.2f", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }'
    printf ' %d' "$(stat -c %s "$work/metrics.txt")"
}

echo "http_numbers: idle daemon" >&2
idle_rps=$(wrk_rps)
read -r idle_p50 idle_p90 idle_max idle_bytes <<<"$(scrape_times)"

echo "http_numbers: opening $COUNT idle SMTP connections" >&2
/usr/bin/python3 bench/idle_smtp.py "$smtp_port" "$COUNT" "$work/ready" &
holder=$!
for _ in $(seq 1800); do
    [ -s "$work/ready" ] && break
    kill -0 "$holder" 2>/dev/null || { echo "the connection holder failed" >&2; exit 1; }
    sleep 0.1
done
[ -s "$work/ready" ] || { echo "$COUNT connections did not get to idle" >&2; exit 1; }
open=$(curl -sf "$metrics" | awk '/^toaster_connections_open\{/ { n += $2 } END { print n }')
echo "http_numbers: $open connections open; measuring again" >&2
busy_rps=$(wrk_rps)
read -r busy_p50 busy_p90 busy_max busy_bytes <<<"$(scrape_times)"

stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="bench/results/http-$stamp.md"
{
    echo "# toasterd's HTTP listener: autoconfig requests/s and /metrics scrape time"
    echo
    echo "- $(date -u '+%Y-%m-%d %H:%M') UTC, commit \`$(git rev-parse --short HEAD)\`"
    echo "- machine: $(nproc) cores, kernel $(uname -r); toasterd on its defaults (one reactor per core), log_level warning"
    echo "- command: \`COUNT=$COUNT ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS SCRAPES=$SCRAPES bench/http_numbers.sh\`"
    echo
    echo "Autoconfig: \`wrk -t1 -c$CONNECTIONS -d${DURATION}s\` on \`/mail/config-v1.1.xml?emailaddress=user1@example.test\`,"
    echo "median of $ROUNDS runs; every request is a new connection (toasterd answers with \`Connection: close\`),"
    echo "and wrk shares the machine's cores with toasterd. /metrics: $SCRAPES scrapes one after another with curl"
    echo "(connect, request, whole body). \"With connections\": $COUNT idle SMTP sessions held open meanwhile"
    echo "(toasterd counted $open open connections)."
    echo
    echo "| | autoconfig requests/s | /metrics median ms | p90 ms | max ms | /metrics bytes |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    echo "| idle daemon | $idle_rps | $idle_p50 | $idle_p90 | $idle_max | $idle_bytes |"
    echo "| with $COUNT idle connections | $busy_rps | $busy_p50 | $busy_p90 | $busy_max | $busy_bytes |"
} >"$report"
cat "$report"
if [ -n "$out" ]; then cp "$report" "$out"; fi
