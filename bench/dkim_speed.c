/*
 * bench/dkim_speed.c - how many DKIM signatures and verifications one core
 * makes per second with toaster's signer and verifier (issue 6).
 *
 *   dkim_speed [--seconds S] [--bytes N]... "DOMAIN SELECTOR /path/key.pem"...
 *
 * For every key and every message size (default 4096 and 65536 bytes) it
 * writes a plain-text message of exactly that size to a memfd, then
 *   sign:   calls dkim_sign() on it over and over for S seconds (default 2);
 *   verify: prepends one signature, then runs dkim_verify_prepare() +
 *           dkim_verify_finish() + dkim_verify_destroy() over and over, the
 *           key record answered from a table (tests/unit/test_dkim_dns.h),
 *           so each verification pays the key record's parsing as inbound
 *           mail does, but no DNS. Every result must be "pass", or the
 *           program stops with status 1.
 * One thread. Rates are per second of this thread's CPU time (what
 * `openssl speed` divides by, as it counts user time), so other load on a
 * shared machine does not lower them; wall-clock rates are printed too.
 * Output: one line per measurement,
 *   sign rsa-2048 bytes=4096 ops=1234 cpu_s=2.000 wall_s=2.010 per_cpu_s=617.0 per_wall_s=613.9
 * Bounds: BENCH_KEYS_MAX keys, BENCH_SIZES_MAX sizes of at most
 * BENCH_MESSAGE_BYTES_MAX, 0.1 to 60 seconds a measurement.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_clock.h"
#include "filters/dkim_keys.h"
#include "filters/dkim_sign.h"
#include "filters/dkim_verify.h"
#include "tests/unit/test_dkim_dns.h"

int main(int argc, char **argv);

#define BENCH_KEYS_MAX 8u
#define BENCH_SIZES_MAX 8u
#define BENCH_MESSAGE_BYTES_MAX (64u * 1024u * 1024u)
#define BENCH_MESSAGE_BYTES_MIN 512u
#define BENCH_SECONDS_MIN 0.1
#define BENCH_SECONDS_MAX 60.0
#define BENCH_RECORD_BYTES 1024u
#define BENCH_DNS_NAME_BYTES 320u

struct bench_rate {
    uint64_t op_count;
    double cpu_s;
    double wall_s;
};

static void
usage(void)
{
    (void)fprintf(stderr, "usage: dkim_speed [--seconds S] [--bytes N]... "
                          "\"DOMAIN SELECTOR /path/key.pem\"...\n");
    exit(2);
}

/* A memfd holding exactly `data_bytes` of `data`. */
static int
memfd_with(const char *name, const char *data, size_t data_bytes)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        perror("dkim_speed: memfd_create");
        exit(2);
    }
    size_t done = 0;
    while (done < data_bytes) {
        ssize_t n = write(fd, data + done, data_bytes - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            perror("dkim_speed: write");
            exit(2);
        }
        done += (size_t)n;
    }
    return fd;
}

/* A plain-text message of exactly message_bytes (CRLF line ends), the
 * same for every run: a usual header block, then lines of words. */
static char *
message_make(size_t message_bytes, size_t *len_out)
{
    static const char header[] = "From: Alice Example <alice@bench.example>\r\n"
                                 "To: Bob Example <bob@example.net>\r\n"
                                 "Cc: carol@example.net\r\n"
                                 "Subject: Quarterly figures, third draft\r\n"
                                 "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
                                 "Message-ID: <20261204120000.4711@bench.example>\r\n"
                                 "MIME-Version: 1.0\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Content-Transfer-Encoding: 8bit\r\n"
                                 "\r\n";
    static const char *const words[] = {
        "the",   "figures", "for",  "this", "quarter", "are",   "attached", "below",
        "and",   "we",      "will", "meet", "on",      "friday", "to",      "discuss",
        "sales", "grew",    "by",   "four", "percent", "while", "costs",    "fell",
    };
    const size_t word_count = sizeof(words) / sizeof(words[0]);
    const size_t line_bytes_max = 72;
    char *message = malloc(message_bytes);
    if (message == NULL) {
        (void)fprintf(stderr, "dkim_speed: out of memory\n");
        exit(2);
    }
    size_t len = sizeof(header) - 1;
    if (message_bytes < len + 2) {
        (void)fprintf(stderr, "dkim_speed: message too small\n");
        exit(2);
    }
    memcpy(message, header, len);
    uint32_t state = 12345u;
    size_t line_len = 0;
    while (len < message_bytes - 2) {
        state = state * 1103515245u + 12345u;
        const char *word = words[(state >> 16) % word_count];
        size_t word_len = strlen(word);
        if (line_len > 0 && line_len + 1 + word_len > line_bytes_max) {
            message[len++] = '\r';
            message[len++] = '\n';
            line_len = 0;
            continue;
        }
        size_t need = word_len + (line_len > 0 ? 1u : 0u);
        if (len + need > message_bytes - 2) {
            /* Pad the last line with dots so the size is exact. */
            while (len < message_bytes - 2) {
                message[len++] = '.';
            }
            break;
        }
        if (line_len > 0) {
            message[len++] = ' ';
        }
        memcpy(message + len, word, word_len);
        len += word_len;
        line_len += need;
    }
    message[len++] = '\r';
    message[len++] = '\n';
    *len_out = len;
    return message;
}

static void
key_name(const struct dkim_key *key, char *out, size_t out_bytes)
{
    if (key->type == DKIM_KEY_TYPE_ED25519) {
        (void)snprintf(out, out_bytes, "ed25519");
    } else {
        (void)snprintf(out, out_bytes, "rsa-%u", key->bits);
    }
}

static void
rate_print(const char *what, const char *key, size_t message_bytes, const struct bench_rate *rate)
{
    (void)printf("%s %s bytes=%zu ops=%llu cpu_s=%.3f wall_s=%.3f per_cpu_s=%.1f "
                 "per_wall_s=%.1f\n",
                 what, key, message_bytes, (unsigned long long)rate->op_count, rate->cpu_s,
                 rate->wall_s, (double)rate->op_count / rate->cpu_s,
                 (double)rate->op_count / rate->wall_s);
    (void)fflush(stdout);
}

static void
bench_sign(const struct dkim_key *key, int fd, double seconds, struct bench_rate *rate_out)
{
    static char out[DKIM_SIGN_FIELD_BYTES_MAX];
    struct dkim_sign_options options;
    dkim_sign_options_default(&options);
    struct bench_clock start, now;
    bench_clock_now(&start);
    uint64_t op_count = 0;
    do {
        size_t len = 0;
        int rc = dkim_sign(&key, 1, fd, &options, out, sizeof(out), &len);
        if (rc != 0) {
            (void)fprintf(stderr, "dkim_speed: dkim_sign: %s\n", strerror(-rc));
            exit(1);
        }
        op_count++;
        bench_clock_now(&now);
    } while (bench_seconds_between(&start.cpu, &now.cpu) < seconds);
    rate_out->op_count = op_count;
    rate_out->cpu_s = bench_seconds_between(&start.cpu, &now.cpu);
    rate_out->wall_s = bench_seconds_between(&start.wall, &now.wall);
}

/* The message with one signature by key in front, in a memfd. */
static int
signed_message_fd(const struct dkim_key *key, int fd, const char *message, size_t message_len)
{
    static char field[DKIM_SIGN_FIELD_BYTES_MAX];
    struct dkim_sign_options options;
    dkim_sign_options_default(&options);
    size_t field_len = 0;
    int rc = dkim_sign(&key, 1, fd, &options, field, sizeof(field), &field_len);
    if (rc != 0) {
        (void)fprintf(stderr, "dkim_speed: dkim_sign: %s\n", strerror(-rc));
        exit(1);
    }
    char *whole = malloc(field_len + message_len);
    if (whole == NULL) {
        (void)fprintf(stderr, "dkim_speed: out of memory\n");
        exit(2);
    }
    memcpy(whole, field, field_len);
    memcpy(whole + field_len, message, message_len);
    int signed_fd = memfd_with("dkim-speed-signed", whole, field_len + message_len);
    free(whole);
    return signed_fd;
}

static void
bench_verify(const struct dkim_key *key, int signed_fd, double seconds,
             struct bench_rate *rate_out)
{
    static char record[BENCH_RECORD_BYTES];
    static char name[BENCH_DNS_NAME_BYTES];
    static struct test_dns dns;
    int record_len = dkim_keys_record(key->pkey, record, sizeof(record));
    if (record_len < 0) {
        (void)fprintf(stderr, "dkim_speed: dkim_keys_record: %s\n", strerror(-record_len));
        exit(2);
    }
    int name_len = snprintf(name, sizeof(name), "%s._domainkey.%s", key->selector, key->domain);
    if (name_len < 0 || (size_t)name_len >= sizeof(name)) {
        (void)fprintf(stderr, "dkim_speed: key name too long\n");
        exit(2);
    }
    memset(&dns, 0, sizeof(dns));
    if (test_dns_add(&dns, name, record, (size_t)record_len, DNS_STATUS_OK) == NULL) {
        (void)fprintf(stderr, "dkim_speed: DNS table full\n");
        exit(2);
    }
    struct dns_source source = test_dns_source(&dns);

    struct bench_clock start, now;
    bench_clock_now(&start);
    uint64_t op_count = 0;
    do {
        struct dkim_verify *ctx = NULL;
        int rc = dkim_verify_prepare(signed_fd, (uint64_t)time(NULL), &ctx);
        if (rc != 0) {
            (void)fprintf(stderr, "dkim_speed: dkim_verify_prepare: %s\n", strerror(-rc));
            exit(1);
        }
        const struct dkim_result *results = NULL;
        size_t result_count = 0;
        rc = dkim_verify_finish(ctx, &source, &results, &result_count);
        if (rc != 0 || result_count != 1 || results[0].code != DKIM_RESULT_PASS) {
            (void)fprintf(stderr, "dkim_speed: verification did not pass: rc %d, %zu results, %s %s\n",
                          rc, result_count,
                          result_count > 0 ? dkim_result_name(results[0].code) : "-",
                          result_count > 0 ? results[0].reason : "");
            exit(1);
        }
        dkim_verify_destroy(&ctx);
        op_count++;
        bench_clock_now(&now);
    } while (bench_seconds_between(&start.cpu, &now.cpu) < seconds);
    rate_out->op_count = op_count;
    rate_out->cpu_s = bench_seconds_between(&start.cpu, &now.cpu);
    rate_out->wall_s = bench_seconds_between(&start.wall, &now.wall);
}

int
main(int argc, char **argv)
{
    double seconds = 2.0;
    size_t sizes[BENCH_SIZES_MAX];
    size_t size_count = 0;
    const char *key_values[BENCH_KEYS_MAX];
    size_t key_count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end = NULL;
            seconds = strtod(argv[++i], &end);
            if (*end != '\0' || !(seconds >= BENCH_SECONDS_MIN && seconds <= BENCH_SECONDS_MAX)) {
                usage();
            }
        } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
            char *end = NULL;
            unsigned long long bytes = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || bytes < BENCH_MESSAGE_BYTES_MIN ||
                bytes > BENCH_MESSAGE_BYTES_MAX || size_count == BENCH_SIZES_MAX) {
                usage();
            }
            sizes[size_count++] = (size_t)bytes;
        } else if (strncmp(argv[i], "--", 2) == 0 || key_count == BENCH_KEYS_MAX) {
            usage();
        } else {
            key_values[key_count++] = argv[i];
        }
    }
    if (key_count == 0) {
        usage();
    }
    if (size_count == 0) {
        sizes[size_count++] = 4096;
        sizes[size_count++] = 65536;
    }

    struct dkim_keys *keys = NULL;
    char err[512] = "";
    int rc = dkim_keys_load(key_values, key_count, &keys, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "dkim_speed: %s\n", err[0] != '\0' ? err : strerror(-rc));
        return 2;
    }
    for (size_t k = 0; k < key_count; k++) {
        struct dkim_key parsed;
        if (dkim_keys_parse_value(key_values[k], &parsed, err, sizeof(err)) != 0) {
            (void)fprintf(stderr, "dkim_speed: %s\n", err);
            return 2;
        }
        const struct dkim_key *found[BENCH_KEYS_MAX];
        size_t found_count = dkim_keys_for_domain(keys, parsed.domain, found, BENCH_KEYS_MAX);
        const struct dkim_key *key = NULL;
        for (size_t f = 0; f < found_count; f++) {
            if (strcmp(found[f]->selector, parsed.selector) == 0) {
                key = found[f];
            }
        }
        if (key == NULL) {
            (void)fprintf(stderr, "dkim_speed: key %s not in the table\n", key_values[k]);
            return 2;
        }
        char name[32];
        key_name(key, name, sizeof(name));
        for (size_t s = 0; s < size_count; s++) {
            size_t message_len = 0;
            char *message = message_make(sizes[s], &message_len);
            int fd = memfd_with("dkim-speed", message, message_len);
            struct bench_rate rate;
            bench_sign(key, fd, seconds, &rate);
            rate_print("sign", name, message_len, &rate);
            int signed_fd = signed_message_fd(key, fd, message, message_len);
            bench_verify(key, signed_fd, seconds, &rate);
            rate_print("verify", name, message_len, &rate);
            (void)close(signed_fd);
            (void)close(fd);
            free(message);
        }
    }
    dkim_keys_destroy(&keys);
    return 0;
}
