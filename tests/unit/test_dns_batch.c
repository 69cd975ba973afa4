/*
 * tests/unit/test_dns_batch.c - the resolver's batches and configuration
 * (core/dns) with every answer coming from an override file that makes
 * unlisted names NXDOMAIN, so no packet is ever sent: the dns_source door,
 * answers pinned for the rerun, DNS_BATCH_QUESTIONS_MAX at max and
 * max + 1, invalid names, dns_batch_wait with nothing pending, reset,
 * dns_resolve answering at once, swapping the override file while an old
 * answer is pinned, and configuration errors (ranges, server list, a bad
 * override file named by line). Queries on the network are covered by
 * tests/integration/test_dns.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dns.h"
#include "tests/unit/unit.h"

int main(void);

static char zone_path[] = "/tmp/test_dns_batch_XXXXXX";

static void
write_zone(const char *text)
{
    FILE *f = fopen(zone_path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

static struct dns_resolver *
make_resolver(void)
{
    struct dns_config config;
    dns_config_defaults(&config);
    config.servers = "127.0.0.1:9"; /* never asked: the zone answers everything */
    config.override_file = zone_path;
    struct dns_resolver *resolver = NULL;
    char error[256];
    int rc = dns_resolver_create(&config, &resolver, error, sizeof(error));
    if (rc != 0) {
        fprintf(stderr, "dns_resolver_create: %s\n", error);
    }
    CHECK(rc == 0);
    return resolver;
}

static void
never_ready(void *arg)
{
    (void)arg;
    CHECK(!"ready called with nothing pending");
}

struct done_record {
    int             calls;
    enum dns_status status;
    uint32_t        a;
};

static void
on_done(void *arg, const struct dns_answer *answer)
{
    struct done_record *record = arg;
    record->calls++;
    record->status = answer->status;
    record->a = answer->count > 0 ? answer->records[0].a.s_addr : 0;
}

static void
test_batch(void)
{
    write_zone("$UNLISTED NXDOMAIN\nmx.test A 10.0.0.1\nmx.test TXT \"hello\"\n");
    struct dns_resolver *resolver = make_resolver();
    if (resolver == NULL) {
        return;
    }
    struct dns_batch *batch = NULL;
    CHECK(dns_batch_create(resolver, &batch) == 0);
    struct dns_source source = dns_batch_source(batch);
    const struct dns_answer *a = NULL;
    CHECK(dns_source_lookup(&source, DNS_TYPE_A, "MX.test.", &a) == 0);
    CHECK(a->status == DNS_STATUS_OK && a->count == 1);
    CHECK(a->records[0].a.s_addr == htonl(0x0a000001));
    const struct dns_answer *again = NULL;
    CHECK(dns_source_lookup(&source, DNS_TYPE_A, "mx.test", &again) == 0);
    CHECK(again == a); /* the same pinned answer */
    CHECK(dns_source_lookup(&source, DNS_TYPE_TXT, "mx.test", &a) == 0);
    CHECK_BYTES(a->records[0].txt.text, a->records[0].txt.len, "hello", 5);
    CHECK(dns_source_lookup(&source, DNS_TYPE_MX, "mx.test", &a) == 0);
    CHECK(a->status == DNS_STATUS_NODATA);
    CHECK(dns_source_lookup(&source, DNS_TYPE_A, "elsewhere.example", &a) == 0);
    CHECK(a->status == DNS_STATUS_NXDOMAIN);
    CHECK(dns_source_lookup(&source, DNS_TYPE_A, "bad..name", &a) == -EINVAL);
    CHECK(dns_source_lookup(&source, DNS_TYPE_A, "", &a) == -EINVAL);
    CHECK(dns_batch_pending(batch) == 0);
    CHECK(!dns_batch_wait(batch, never_ready, NULL));

    /* Reset forgets: the batch has room for DNS_BATCH_QUESTIONS_MAX again. */
    dns_batch_reset(batch);
    char name[64];
    for (int i = 0; i < DNS_BATCH_QUESTIONS_MAX; i++) {
        snprintf(name, sizeof(name), "q%d.test", i);
        CHECK(dns_batch_lookup(batch, DNS_TYPE_A, name, &a) == 0);
        CHECK(a->status == DNS_STATUS_NXDOMAIN);
    }
    CHECK(dns_batch_lookup(batch, DNS_TYPE_A, "one.more.test", &a) == 0);
    CHECK(a->status == DNS_STATUS_TEMPFAIL);
    CHECK(dns_batch_lookup(batch, DNS_TYPE_A, "q0.test", &a) == 0); /* asked before: fine */
    CHECK(a->status == DNS_STATUS_NXDOMAIN);
    struct dns_stats stats;
    dns_resolver_stats(resolver, &stats);
    CHECK(stats.refused == 1);
    CHECK(stats.queries_sent == 0);
    CHECK(stats.override_answers == 4 + DNS_BATCH_QUESTIONS_MAX);

    /* dns_resolve with the answer at hand: done before it returns. */
    struct done_record done = { 0 };
    CHECK(dns_resolve(resolver, DNS_TYPE_A, "mx.test", on_done, &done) == 0);
    CHECK(done.calls == 1 && done.status == DNS_STATUS_OK && done.a == htonl(0x0a000001));
    CHECK(dns_resolve(resolver, DNS_TYPE_A, "a..b", on_done, &done) == -EINVAL);
    CHECK(done.calls == 1);

    /* A new override file: pinned answers stay, new questions see it. */
    dns_batch_reset(batch);
    const struct dns_answer *old = NULL;
    CHECK(dns_batch_lookup(batch, DNS_TYPE_A, "mx.test", &old) == 0);
    write_zone("mx.test A 10.0.0.2\n");
    char error[256];
    CHECK(dns_resolver_load_override(resolver, zone_path, error, sizeof(error)) == 0);
    CHECK(old->records[0].a.s_addr == htonl(0x0a000001));
    CHECK(dns_batch_lookup(batch, DNS_TYPE_A, "mx.test", &a) == 0 && a == old);
    struct dns_batch *fresh = NULL;
    CHECK(dns_batch_create(resolver, &fresh) == 0);
    CHECK(dns_batch_lookup(fresh, DNS_TYPE_A, "mx.test", &a) == 0);
    CHECK(a->records[0].a.s_addr == htonl(0x0a000002));
    dns_batch_destroy(&fresh);
    CHECK(fresh == NULL);
    /* A bad file leaves the current one in place. */
    write_zone("mx.test A 10.0.0.3\nmx.test MX x\n");
    CHECK(dns_resolver_load_override(resolver, zone_path, error, sizeof(error)) == -EINVAL);
    CHECK(strstr(error, "line 2: MX takes a preference") != NULL);
    CHECK(dns_batch_create(resolver, &fresh) == 0);
    CHECK(dns_batch_lookup(fresh, DNS_TYPE_A, "mx.test", &a) == 0);
    CHECK(a->records[0].a.s_addr == htonl(0x0a000002));
    dns_batch_destroy(&fresh);

    dns_batch_destroy(&batch);
    dns_batch_destroy(&batch); /* NULL is fine */
    dns_resolver_destroy(&resolver);
    CHECK(resolver == NULL);
}

static int
create_error(struct dns_config *config, char *error, size_t error_bytes)
{
    struct dns_resolver *resolver = NULL;
    int rc = dns_resolver_create(config, &resolver, error, error_bytes);
    if (rc == 0) {
        dns_resolver_destroy(&resolver);
    }
    return rc;
}

static void
test_config(void)
{
    struct dns_config config;
    char error[256];
    dns_config_defaults(&config);
    CHECK(config.timeout_ms == DNS_TIMEOUT_MS_DEFAULT && config.tries == DNS_TRIES_DEFAULT);
    config.servers = "127.0.0.1:53,[::1]:5353";
    CHECK(create_error(&config, error, sizeof(error)) == 0);
    config.timeout_ms = 0;
    CHECK(create_error(&config, error, sizeof(error)) == -EINVAL);
    CHECK_STR(error, "dns timeout_ms must be 1..30000");
    config.timeout_ms = DNS_TIMEOUT_MS_CEILING;
    config.tries = DNS_TRIES_CEILING + 1;
    CHECK(create_error(&config, error, sizeof(error)) == -EINVAL);
    config.tries = DNS_TRIES_CEILING;
    config.cache_entries = 0;
    CHECK(create_error(&config, error, sizeof(error)) == -EINVAL);
    config.cache_entries = 10;
    /* DNS_SERVERS_MAX servers, then one more. */
    config.servers = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,"
                     "127.0.0.8";
    CHECK(create_error(&config, error, sizeof(error)) == 0);
    config.servers = "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,"
                     "127.0.0.8,127.0.0.9";
    CHECK(create_error(&config, error, sizeof(error)) == -EINVAL);
    CHECK_STR(error, "dns servers: more than 8");
    config.servers = "not-an-address";
    CHECK(create_error(&config, error, sizeof(error)) == -EINVAL);
    CHECK(strncmp(error, "dns servers \"not-an-address\": ", 30) == 0);
    config.servers = "127.0.0.1";
    write_zone("ok.test A 1.2.3.4\nbad.test A nope\n");
    config.override_file = zone_path;
    CHECK(create_error(&config, error, sizeof(error)) == -EINVAL);
    char want[128];
    snprintf(want, sizeof(want), "%s: line 2: not an IPv4 address: nope", zone_path);
    CHECK_STR(error, want);
}

int
main(void)
{
    int fd = mkstemp(zone_path);
    CHECK(fd >= 0);
    CHECK(close(fd) == 0);
    test_batch();
    test_config();
    CHECK(unlink(zone_path) == 0);
    UNIT_DONE();
}
