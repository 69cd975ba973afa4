#!/bin/bash
# bench/filters_speed.sh - issue 6's filter numbers on this machine: DKIM
# signatures and verifications per second on one core (toaster's signer and
# verifier through bench/dkim_speed, beside `openssl speed` for the same key
# types), and ClamAV scan throughput of toaster's in-process scan (through
# tests/clamav_tool, which scans as the daemon does) beside clamscan, with
# the same libclamav, the same files and the same database (the one toaster
# ships and writes to <data_dir>/clamav).
#
# Builds nothing: BUILD (default "build") must hold bench/dkim_speed,
# tests/clamav_tool and toasterctl. Everything runs single-threaded, three
# times, and the report gives medians. Test files are generated in a
# temporary directory from fixed seeds (same bytes every run): 100 mail
# messages of 100 KiB to 2 MiB with base64 zip, pdf and text attachments,
# one more message whose zip holds EICAR (both scanners must find exactly
# that one), and 20 plain files (text, random bytes, zip, pdf). No network.
#
# ClamAV timing: each scanner is also run on no files; start-up (cl_init and
# the engine load) is that run's time, and scan throughput is the bytes
# divided by the difference between the full and the empty run, in wall time
# and in CPU time (user + system). For toaster the sum of the per-file scan
# times clamav_scan_fd() reports is given too.
#
# Writes bench/results/filters-speed-YYYY-MM-DD.md (OUT to change) and
# prints it. Takes about three to four minutes.
#
# Usage: BUILD=build bench/filters_speed.sh
set -euo pipefail

BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
DKIM_SECONDS=${DKIM_SECONDS:-2}
OPENSSL_SECONDS=${OPENSSL_SECONDS:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/results/filters-speed-$(date -u +%F).md}

DKIM_SPEED=$BUILD/bench/dkim_speed
CLAMAV_TOOL=$BUILD/tests/clamav_tool
TOASTERCTL=$BUILD/toasterctl
for bin in "$DKIM_SPEED" "$CLAMAV_TOOL" "$TOASTERCTL"; do
    if [ ! -x "$bin" ]; then
        echo "filters_speed: $bin missing: meson compile -C $BUILD bench/dkim_speed tests/clamav_tool toasterctl" >&2
        exit 2
    fi
done
PYTHON=${PYTHON:-/usr/bin/python3}
for tool in openssl clamscan "$PYTHON"; do
    if ! command -v "$tool" >/dev/null; then
        echo "filters_speed: $tool missing (apt-get install openssl clamav python3)" >&2
        exit 2
    fi
done

T=$(mktemp -d /tmp/filters-speed.XXXXXX)
trap 'rm -rf "$T"' EXIT
log() { echo "filters_speed: $*" >&2; }

# The middle value of the arguments (RUNS is odd).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# a / b with fixed decimals.
div() { awk -v a="$1" -v b="$2" -v d="${3:-1}" 'BEGIN { printf "%.*f", d, a / b }'; }

# ---------------------------------------------------------------- DKIM ---
mkdir -p "$T/keys"
"$TOASTERCTL" dkim keygen bench.example rsa --dir "$T/keys" >/dev/null
"$TOASTERCTL" dkim keygen bench.example ed --ed25519 --dir "$T/keys" >/dev/null
RSA_KEY="bench.example rsa $T/keys/bench.example.rsa.pem"
ED_KEY="bench.example ed $T/keys/bench.example.ed.pem"

for run in $(seq "$RUNS"); do
    log "dkim_speed run $run/$RUNS"
    "$DKIM_SPEED" --seconds "$DKIM_SECONDS" --bytes 4096 --bytes 65536 "$RSA_KEY" "$ED_KEY" \
        >"$T/dkim.$run"
done
for run in $(seq "$RUNS"); do
    log "openssl speed run $run/$RUNS"
    openssl speed -seconds "$OPENSSL_SECONDS" rsa2048 >"$T/ossl-rsa.$run" 2>/dev/null
    openssl speed -seconds "$OPENSSL_SECONDS" ed25519 >"$T/ossl-ed.$run" 2>/dev/null
done

# The median per-CPU-second rate of one dkim_speed line kind.
dkim_rate() { # what key bytes
    local values=()
    for run in $(seq "$RUNS"); do
        values+=("$(awk -v w="$1" -v k="$2" -v b="bytes=$3" \
            '$1 == w && $2 == k && $3 == b { sub("per_cpu_s=", "", $7); print $7 }' "$T/dkim.$run")")
    done
    printf '%.0f' "$(median "${values[@]}")"
}
# The median sign/s (field -1) or verify/s (field 0) of openssl speed.
ossl_rate() { # file-prefix pattern field-offset
    local values=()
    for run in $(seq "$RUNS"); do
        values+=("$(awk -v p="$2" -v f="$3" '$0 ~ p { print $(NF + f) }' "$T/$1.$run")")
    done
    printf '%.0f' "$(median "${values[@]}")"
}

# ---------------------------------------------------------- test files ---
log "generating test files"
mkdir -p "$T/files" "$T/empty" "$T/nosys" "$T/data"
cat >"$T/gen.py" <<'PY'
# Deterministic mail messages and plain files for the ClamAV comparison.
import io, os, random, sys, zipfile, zlib
from email import policy
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

out = sys.argv[1]
WORDS = ("the figures for this quarter are attached below and we will meet on friday "
         "to discuss sales grew by four percent while costs fell invoice order shipment "
         "contract review draft final approved pending").split()
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

def text(rng, n):
    lines, size = [], 0
    while size < n:
        line = " ".join(rng.choice(WORDS) for _ in range(12))
        lines.append(line)
        size += len(line) + 1
    return ("\n".join(lines) + "\n")[:n]

def make_zip(rng, n, eicar=False):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        # Fixed dates: the same bytes every run.
        info = lambda name: zipfile.ZipInfo(name, (2026, 12, 4, 12, 0, 0))
        z.writestr(info("report.txt"), text(rng, n * 3 // 4), zipfile.ZIP_DEFLATED)  # ~1/4
        z.writestr(info("data.bin"), rng.randbytes(n * 3 // 4), zipfile.ZIP_DEFLATED)  # as is
        if eicar:
            z.writestr(info("eicar.com"), EICAR)
    return buf.getvalue()

def make_pdf(rng, n):
    content = "BT /F1 10 Tf 72 760 Td 12 TL\n" + "".join(
        "(%s) '\n" % text(rng, 70).strip() for _ in range(max(1, n // 4 // 75))) + "ET\n"
    content = zlib.compress(content.encode())
    image = zlib.compress(rng.randbytes(n * 9 // 10))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content
            + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Type /XObject /Subtype /Image /Width 256 /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent 8 /Length %d /Filter /FlateDecode >>\nstream\n"
            % (max(1, n * 9 // 10 // 256), len(image)) + image + b"\nendstream"]
    pdf, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(pdf)

def message(i, rng, target, eicar=False):
    msg = MIMEMultipart(boundary="=_filters_speed_%d_=" % i)
    msg["From"] = "Sender %d <sender%d@example.org>" % (i, i)
    msg["To"] = "user@bench.example"
    msg["Subject"] = "Documents %d" % i
    msg["Date"] = "Fri, 04 Dec 2026 12:%02d:00 +0000" % (i % 60)
    msg["Message-ID"] = "<%d.filters-speed@example.org>" % i
    msg.attach(MIMEText(text(rng, 3000), "plain"))
    kinds = [("zip", 1), ("pdf", 1), ("txt", 1)][: 1 + i % 3]
    # Base64 makes 57 bytes 78 (76 characters and CRLF); the text part and
    # the headers take about 4000 bytes, each part's own about 200.
    raw = (target - 4000 - 200 * len(kinds)) * 57 // 78
    for k, (kind, _) in enumerate(kinds):
        n = raw // len(kinds)
        if kind == "zip":
            part = MIMEApplication(make_zip(rng, n, eicar), "zip")
        elif kind == "pdf":
            part = MIMEApplication(make_pdf(rng, n), "pdf")
        else:
            part = MIMEApplication(text(rng, n).encode(), "octet-stream")
        part.add_header("Content-Disposition", "attachment", filename="file%d.%s" % (k, kind))
        msg.attach(part)
    return msg.as_bytes(policy=policy.SMTP)

for i in range(100):
    rng = random.Random(1000 + i)
    # 100 KiB to 2 MiB, evenly spread on a log scale (most mail is small).
    target = int(100 * 1024 * (20.48 ** (i / 99)))
    with open(os.path.join(out, "msg%03d.eml" % i), "wb") as f:
        f.write(message(i, rng, target))
with open(os.path.join(out, "msg100-eicar.eml"), "wb") as f:
    f.write(message(100, random.Random(1100), 200 * 1024, eicar=True))
for i in range(20):
    rng = random.Random(2000 + i)
    n = int(100 * 1024 * (20.48 ** (i / 19)))
    kind = ("txt", "bin", "zip", "pdf")[i % 4]
    data = {"txt": lambda: text(rng, n).encode(), "bin": lambda: rng.randbytes(n),
            "zip": lambda: make_zip(rng, n), "pdf": lambda: make_pdf(rng, n)}[kind]()
    with open(os.path.join(out, "plain%02d.%s" % (i, kind)), "wb") as f:
        f.write(data)
PY
"$PYTHON" "$T/gen.py" "$T/files"
FILE_COUNT=$(find "$T/files" -type f | wc -l)
FILE_BYTES=$(find "$T/files" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
MSG_COUNT=$(find "$T/files" -name '*.eml' | wc -l)
MSG_BYTES=$(find "$T/files" -name '*.eml' -printf '%s\n' | awk '{ s += $1 } END { print s }')
MSG_RANGE=$(find "$T/files" -name '*.eml' -printf '%s\n' | sort -n |
    awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f KiB to %.2f MiB", lo / 1024, hi / 1048576 }')
log "$FILE_COUNT files, $FILE_BYTES bytes"

# ---------------------------------------------------------------- ClamAV ---
# Runs a command with wall and CPU time (seconds) appended to $T/times.
timed() { # label command...
    local label=$1
    shift
    local start end
    start=$(date +%s.%N)
    /usr/bin/time -f '%U %S' -o "$T/cpu" "$@" || [ $? -eq 1 ] # 1: a detection
    end=$(date +%s.%N)
    # GNU time puts "Command exited with non-zero status" first after a detection.
    read -r user sys < <(tail -n 1 "$T/cpu")
    echo "$label $(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') \
$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" >>"$T/times"
}
: >"$T/times"
# The toaster tool writes its shipped database to $T/data/clamav; the first
# run does it, and clamscan then loads that same directory.
TOASTER_CMD=("$CLAMAV_TOOL" --system-db "$T/nosys" --data-dir "$T/data")
for run in $(seq "$RUNS"); do
    log "ClamAV run $run/$RUNS"
    # Its log (stderr) says the shipped database is in use; kept out of sight.
    timed toaster-empty "${TOASTER_CMD[@]}" >"$T/toaster-empty.$run" 2>"$T/toaster-empty.err"
    timed toaster-full "${TOASTER_CMD[@]}" "$T"/files/* >"$T/toaster-full.$run" 2>"$T/toaster-full.err"
    timed clamscan-empty clamscan -d "$T/data/clamav" -r --infected "$T/empty" \
        >"$T/clamscan-empty.$run" 2>&1
    timed clamscan-full clamscan -d "$T/data/clamav" -r --infected "$T/files" \
        >"$T/clamscan-full.$run" 2>&1
done
DB_FILES=$(find "$T/data/clamav" -type f -printf '%f ' | sed 's/ $//')

# Check that both saw every file and found exactly the one EICAR message.
for run in $(seq "$RUNS"); do
    scanned=$(grep -c ' (.* us)$' "$T/toaster-full.$run" || true)
    found=$(grep -c ': virus ' "$T/toaster-full.$run" || true)
    errors=$(grep -c ': error' "$T/toaster-full.$run" || true)
    if [ "$scanned" -ne "$FILE_COUNT" ] || [ "$found" -ne 1 ] || [ "$errors" -ne 0 ] ||
        ! grep -q 'msg100-eicar.eml: virus' "$T/toaster-full.$run"; then
        log "toaster run $run: $scanned scanned, $found found, $errors errors"
        cat "$T/toaster-full.$run" >&2
        exit 1
    fi
    if ! grep -q "^Scanned files: $FILE_COUNT\$" "$T/clamscan-full.$run" ||
        ! grep -q '^Infected files: 1$' "$T/clamscan-full.$run" ||
        ! grep -q 'msg100-eicar.eml: .* FOUND' "$T/clamscan-full.$run"; then
        log "clamscan run $run did not scan $FILE_COUNT files with one detection"
        cat "$T/clamscan-full.$run" >&2
        exit 1
    fi
done
TOASTER_FOUND=$(grep ': virus ' "$T/toaster-full.1" | sed 's/.*: virus \([^ ]*\).*/\1/')
CLAMSCAN_FOUND=$(grep 'FOUND' "$T/clamscan-full.1" | sed 's/.*: \(.*\) FOUND/\1/')
ENGINE_LINE=$(head -1 "$T/toaster-full.1")

column_median() { # label field(2 wall, 3 cpu)
    # shellcheck disable=SC2046
    median $(awk -v l="$1" -v f="$2" '$1 == l { print $f }' "$T/times")
}
TE_WALL=$(printf '%.3f' "$(column_median toaster-empty 2)")
TE_CPU=$(printf '%.2f' "$(column_median toaster-empty 3)")
CE_WALL=$(printf '%.3f' "$(column_median clamscan-empty 2)")
CE_CPU=$(printf '%.2f' "$(column_median clamscan-empty 3)")
# Throughput of each run (full minus the median empty run), then the median.
scan_mbps() { # label empty-median field
    # shellcheck disable=SC2046
    median $(awk -v l="$1" -v e="$2" -v f="$3" -v b="$FILE_BYTES" \
        '$1 == l { print b / ($f - e) / 1e6 }' "$T/times")
}
T_WALL_MBPS=$(printf '%.1f' "$(scan_mbps toaster-full "$TE_WALL" 2)")
T_CPU_MBPS=$(printf '%.1f' "$(scan_mbps toaster-full "$TE_CPU" 3)")
C_WALL_MBPS=$(printf '%.1f' "$(scan_mbps clamscan-full "$CE_WALL" 2)")
C_CPU_MBPS=$(printf '%.1f' "$(scan_mbps clamscan-full "$CE_CPU" 3)")
# toaster's own per-file scan times (clamav_scan_fd's scan_us), summed.
values=()
msg_values=()
for run in $(seq "$RUNS"); do
    us=$(sed -n 's/.* (\([0-9]*\) us)$/\1/p' "$T/toaster-full.$run" | awk '{ s += $1 } END { print s }')
    msg_us=$(grep '\.eml: ' "$T/toaster-full.$run" | sed -n 's/.* (\([0-9]*\) us)$/\1/p' |
        awk '{ s += $1 } END { print s }')
    values+=("$(awk -v b="$FILE_BYTES" -v u="$us" 'BEGIN { print b / u }')")
    msg_values+=("$(awk -v b="$MSG_BYTES" -v u="$msg_us" -v n="$MSG_COUNT" \
        'BEGIN { print b / u, n / (u / 1e6) }')")
done
T_SUM_MBPS=$(printf '%.1f' "$(median "${values[@]}")")
# median() takes its values as arguments.
# shellcheck disable=SC2046
T_MSG_MBPS=$(printf '%.1f' "$(median $(printf '%s\n' "${msg_values[@]}" | awk '{ print $1 }'))")
# shellcheck disable=SC2046
T_MSG_PER_S=$(printf '%.0f' "$(median $(printf '%s\n' "${msg_values[@]}" | awk '{ print $2 }'))")

# ---------------------------------------------------------------- report ---
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mkdir -p "$(dirname "$OUT")"
{
    echo "# Filter speed: DKIM and ClamAV, $(date -u +%F)"
    echo
    echo "Made by \`bench/filters_speed.sh\` (issue 6). Single thread throughout;"
    echo "medians of $RUNS runs."
    echo
    echo "## Machine"
    echo
    echo "- CPU: $CPU_MODEL, nproc $(nproc)"
    echo "- kernel: $(uname -r)"
    echo "- $(openssl version), $(clamscan --version | cut -d/ -f1)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: rates per"
    echo "  CPU second are the ones to quote; wall-clock rates suffer from other load)"
    echo
    echo "## DKIM, per second of one core"
    echo
    echo "toaster: \`dkim_sign()\` with one key, and \`dkim_verify_prepare()\` +"
    echo "\`dkim_verify_finish()\` (key record parsed each time, from a table: no DNS), on a"
    echo "plain-text message of exactly 4096 / 65536 bytes, relaxed/relaxed, divided by the"
    echo "thread's CPU time. openssl: \`openssl speed\`, which divides by user CPU time and"
    echo "signs a short digest, so it is the ceiling for the public-key part alone."
    echo
    echo "| key | toaster sign/s 4 KiB | toaster sign/s 64 KiB | openssl sign/s | toaster verify/s 4 KiB | toaster verify/s 64 KiB | openssl verify/s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    echo "| rsa-2048 | $(dkim_rate sign rsa-2048 4096) | $(dkim_rate sign rsa-2048 65536) | $(ossl_rate ossl-rsa '^rsa 2048 bits' -1) | $(dkim_rate verify rsa-2048 4096) | $(dkim_rate verify rsa-2048 65536) | $(ossl_rate ossl-rsa '^rsa 2048 bits' 0) |"
    echo "| ed25519 | $(dkim_rate sign ed25519 4096) | $(dkim_rate sign ed25519 65536) | $(ossl_rate ossl-ed 'EdDSA \\(Ed25519\\)' -1) | $(dkim_rate verify ed25519 4096) | $(dkim_rate verify ed25519 65536) | $(ossl_rate ossl-ed 'EdDSA \\(Ed25519\\)' 0) |"
    echo
    echo "What the body costs: the extra 61440 bytes of the 64 KiB message take"
    echo "$(awk -v a="$(dkim_rate sign rsa-2048 4096)" -v b="$(dkim_rate sign rsa-2048 65536)" \
        'BEGIN { printf "%.0f us (%.0f MB/s)", (1 / b - 1 / a) * 1e6, 61440 / (1 / b - 1 / a) / 1e6 }') to sign with rsa-2048,"
    echo "$(awk -v a="$(dkim_rate sign ed25519 4096)" -v b="$(dkim_rate sign ed25519 65536)" \
        'BEGIN { printf "%.0f us (%.0f MB/s)", (1 / b - 1 / a) * 1e6, 61440 / (1 / b - 1 / a) / 1e6 }') with ed25519 and"
    echo "$(awk -v a="$(dkim_rate verify rsa-2048 4096)" -v b="$(dkim_rate verify rsa-2048 65536)" \
        'BEGIN { printf "%.0f us (%.0f MB/s)", (1 / b - 1 / a) * 1e6, 61440 / (1 / b - 1 / a) / 1e6 }') to verify with rsa-2048:"
    echo "reading, body canonicalization and SHA-256, the same for every key type."
    echo
    echo "## ClamAV, one thread"
    echo
    echo "$FILE_COUNT files, $FILE_BYTES bytes: $MSG_COUNT mail messages of $MSG_RANGE"
    echo "($MSG_BYTES bytes; base64 zip, pdf and text attachments, one zip holding EICAR)"
    echo "and 20 plain files (text, random bytes, zip, pdf). Database: toaster's shipped one"
    echo "($DB_FILES in \`<data_dir>/clamav\`), the same directory for both. Both found"
    echo "exactly the EICAR message (toaster: $TOASTER_FOUND; clamscan: $CLAMSCAN_FOUND) and"
    echo "scanned all $FILE_COUNT files, in every run."
    echo
    echo "| | toaster (in process, \`clamav_scan_fd\`) | clamscan |"
    echo "|---|---:|---:|"
    echo "| start-up, no files (wall s / CPU s) | $TE_WALL / $TE_CPU | $CE_WALL / $CE_CPU |"
    echo "| scan MB/s, wall (full run - empty run) | $T_WALL_MBPS | $C_WALL_MBPS |"
    echo "| scan MB/s, CPU (full run - empty run) | $T_CPU_MBPS | $C_CPU_MBPS |"
    echo "| scan MB/s, sum of per-file \`scan_us\` | $T_SUM_MBPS | - |"
    echo "| messages only: MB/s / messages/s (\`scan_us\`) | $T_MSG_MBPS / $T_MSG_PER_S | - |"
    echo
    echo "MB = 10^6 bytes. toaster's engine line: \`$ENGINE_LINE\`"
    echo
    echo "With the full freshclam database (not used here: no network) the engine takes"
    echo "far longer to load and much more memory, and matching costs more per byte;"
    echo "these figures are the parsing and decoding cost with a small signature set."
    echo
    echo "## Commands"
    echo
    echo '```'
    echo "toasterctl dkim keygen bench.example rsa --dir KEYS"
    echo "toasterctl dkim keygen bench.example ed --ed25519 --dir KEYS"
    echo "bench/dkim_speed --seconds $DKIM_SECONDS --bytes 4096 --bytes 65536 \\"
    echo "    'bench.example rsa KEYS/bench.example.rsa.pem' 'bench.example ed KEYS/bench.example.ed.pem'"
    echo "openssl speed -seconds $OPENSSL_SECONDS rsa2048"
    echo "openssl speed -seconds $OPENSSL_SECONDS ed25519"
    echo "tests/clamav_tool --system-db NOSYS --data-dir DATA                # empty run"
    echo "tests/clamav_tool --system-db NOSYS --data-dir DATA FILES/*"
    echo "clamscan -d DATA/clamav -r --infected EMPTY                         # empty run"
    echo "clamscan -d DATA/clamav -r --infected FILES"
    echo '```'
    echo
    echo "Each ClamAV command ran under \`/usr/bin/time -f '%U %S'\` for its CPU time."
    echo
    echo "## Raw dkim_speed output (run 1)"
    echo
    echo '```'
    cat "$T/dkim.1"
    echo '```'
} >"$OUT"
cat "$OUT"
log "wrote $OUT"
