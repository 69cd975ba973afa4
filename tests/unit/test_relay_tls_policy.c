/*
 * tests/unit/test_relay_tls_policy.c - core/relay_tls_policy: the TLS each
 * hop of a route gets under DANE (RFC 7672) and MTA-STS (RFC 8461). DNS
 * comes from a table in this file that, unlike tests/unit/dns_table, has
 * TLSA records and the AD bit; the policy fetch is a function of the test
 * that serves a body or fails and counts its calls, so no socket is used.
 * Each case runs with every answer at hand and again with each first
 * question answered -EINPROGRESS, rerun until done, and both must agree.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/relay_tls_policy.h"
#include "proto/smtp/mta_sts.h"
#include "tests/unit/unit.h"

int main(void);

/* ---- a DNS table with TLSA and AD ------------------------------------------------ */

#define ROWS_MAX 64
#define ASKED_MAX 256

struct row {
    enum dns_type type;
    char name[300];
    enum dns_status status;
    bool is_secure;
    struct dns_record record;
    uint8_t data[128];
    char text[300];
};

static struct row rows[ROWS_MAX];
static size_t row_count;
static bool is_deferred;
static struct {
    enum dns_type type;
    char name[300];
} asked[ASKED_MAX];
static size_t asked_count;
static size_t question_count;
/* Answers handed out live here until the next reset (as a source's do). */
static struct dns_answer answers[ASKED_MAX];
static struct dns_record answer_records[ASKED_MAX][16];
static size_t answer_count;

static void
zone_reset(void)
{
    row_count = 0;
    asked_count = 0;
    question_count = 0;
    answer_count = 0;
}

static struct row *
row_add(enum dns_type type, const char *name, enum dns_status status, bool is_secure)
{
    if (row_count == ROWS_MAX) {
        abort();
    }
    struct row *row = &rows[row_count++];
    memset(row, 0, sizeof(*row));
    row->type = type;
    (void)snprintf(row->name, sizeof(row->name), "%s", name);
    row->status = status;
    row->is_secure = is_secure;
    return row;
}

static void
tlsa_add(const char *name, bool is_secure, uint8_t usage, uint8_t selector, uint8_t matching,
         size_t len, uint8_t fill)
{
    struct row *row = row_add(DNS_TYPE_TLSA, name, DNS_STATUS_OK, is_secure);
    if (len > sizeof(row->data)) {
        abort();
    }
    memset(row->data, fill, len);
    row->record.tlsa.usage = usage;
    row->record.tlsa.selector = selector;
    row->record.tlsa.matching = matching;
    row->record.tlsa.data = row->data;
    row->record.tlsa.len = (uint32_t)len;
}

static void
txt_add(const char *name, const char *text)
{
    struct row *row = row_add(DNS_TYPE_TXT, name, DNS_STATUS_OK, false);
    (void)snprintf(row->text, sizeof(row->text), "%s", text);
    row->record.txt.text = row->text;
    row->record.txt.len = (uint32_t)strlen(row->text);
}

static void
a_add(const char *name, const char *address)
{
    struct row *row = row_add(DNS_TYPE_A, name, DNS_STATUS_OK, false);
    if (inet_pton(AF_INET, address, &row->record.a) != 1) {
        abort();
    }
}

static int
table_lookup(void *ctx, enum dns_type type, const char *name, const struct dns_answer **out)
{
    (void)ctx;
    if (strlen(name) > 253) {
        return -EINVAL;
    }
    question_count++;
    bool is_known = false;
    for (size_t i = 0; i < asked_count; i++) {
        if (asked[i].type == type && strcmp(asked[i].name, name) == 0) {
            is_known = true;
        }
    }
    if (!is_known) {
        if (asked_count == ASKED_MAX) {
            abort();
        }
        asked[asked_count].type = type;
        (void)snprintf(asked[asked_count].name, sizeof(asked[0].name), "%s", name);
        asked_count++;
        if (is_deferred) {
            return -EINPROGRESS;
        }
    }
    if (answer_count == ASKED_MAX) {
        abort();
    }
    struct dns_answer *answer = &answers[answer_count];
    struct dns_record *records = answer_records[answer_count];
    answer_count++;
    memset(answer, 0, sizeof(*answer));
    answer->type = type;
    answer->records = records;
    bool has_name = false;
    bool is_secure = true;
    for (size_t i = 0; i < row_count; i++) {
        if (strcmp(rows[i].name, name) != 0) {
            continue;
        }
        has_name = true;
        if (rows[i].type != type) {
            continue;
        }
        if (rows[i].status != DNS_STATUS_OK) {
            answer->status = rows[i].status;
            answer->count = 0;
            answer->authenticated = rows[i].is_secure;
            *out = answer;
            return 0;
        }
        if (answer->count == 16) {
            abort();
        }
        records[answer->count++] = rows[i].record;
        is_secure = is_secure && rows[i].is_secure;
    }
    if (answer->count > 0) {
        answer->status = DNS_STATUS_OK;
        answer->authenticated = is_secure;
    } else {
        answer->status = has_name ? DNS_STATUS_NODATA : DNS_STATUS_NXDOMAIN;
    }
    *out = answer;
    return 0;
}

static const struct dns_source source = { .lookup = table_lookup, .ctx = NULL };

static bool
was_asked(enum dns_type type, const char *name)
{
    for (size_t i = 0; i < asked_count; i++) {
        if (asked[i].type == type && strcmp(asked[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- the fetch ---------------------------------------------------------------------- */

static char fetch_body[MTA_STS_POLICY_BYTES_MAX + 16];
static size_t fetch_body_len;
static int fetch_rc;
static unsigned fetch_calls;
static char fetch_domain[300];
static size_t fetch_address_count;

static void
serve(const char *body)
{
    fetch_body_len = strlen(body);
    memcpy(fetch_body, body, fetch_body_len);
    fetch_rc = 0;
}

static int
fake_fetch(void *ctx, const char *domain, const struct relay_tls_fetch_address *addresses,
           size_t address_count, char *body, size_t body_max, size_t *body_len_out, char *err,
           size_t err_bytes)
{
    CHECK(ctx == &fetch_calls);
    fetch_calls++;
    (void)snprintf(fetch_domain, sizeof(fetch_domain), "%s", domain);
    fetch_address_count = address_count;
    CHECK(address_count > 0);
    CHECK(addresses[0].family == AF_INET);
    if (fetch_rc != 0) {
        (void)snprintf(err, err_bytes, "refused by the test");
        return fetch_rc;
    }
    if (fetch_body_len > body_max) {
        (void)snprintf(err, err_bytes, "too big");
        return -E2BIG;
    }
    memcpy(body, fetch_body, fetch_body_len);
    *body_len_out = fetch_body_len;
    return 0;
}

static void
sts_start(size_t cache_max)
{
    relay_tls_policy_stop();
    struct relay_tls_policy_settings settings = {
        .cache_max = cache_max,
        .fetch = fake_fetch,
        .fetch_ctx = &fetch_calls,
    };
    CHECK(relay_tls_policy_start(&settings) == 0);
    CHECK(relay_tls_policy_start(&settings) == -EALREADY);
    fetch_calls = 0;
}

/* ---- routes and runs ------------------------------------------------------------------ */

static struct route_result route;

static void
route_begin(enum route_kind kind)
{
    memset(&route, 0, sizeof(route));
    route.status = ROUTE_OK;
    route.kind = kind;
}

static void
hop_add(const char *host, uint16_t port, bool is_dnssec)
{
    struct route_hop *hop = &route.hops[route.hop_count++];
    (void)snprintf(hop->host, sizeof(hop->host), "%s", host);
    hop->address.family = AF_INET;
    hop->address.v4.s_addr = htonl(0x7f000001u);
    hop->port = port;
    hop->is_dnssec = is_dnssec;
}

static struct relay_tls_hop hops[ROUTE_ADDRESSES_CEILING];
static char reason[200];

/* Run once in the mode given; rerun while -EINPROGRESS (bounded). */
static int
run_mode(const char *domain, enum relay_tls_level level, bool is_mta_sts, int64_t now,
         bool deferred)
{
    struct relay_tls_request request = {
        .domain = domain,
        .level = level,
        .is_mta_sts = is_mta_sts,
        .route = &route,
        .now = now,
    };
    is_deferred = deferred;
    asked_count = 0;
    question_count = 0;
    answer_count = 0;
    int rc = -EINPROGRESS;
    for (int round = 0; round < 10 && rc == -EINPROGRESS; round++) {
        memset(hops, 0xa5, sizeof(hops)); /* every field must be written */
        rc = relay_tls_policy_resolve(&request, &source, hops, reason, sizeof(reason));
        if (!deferred) {
            break;
        }
    }
    return rc;
}

/* Both modes must agree; the deferred one runs first (its fetch, if any,
 * then is the one counted), the immediate one last (its hops are kept). */
static int
run(const char *domain, enum relay_tls_level level, bool is_mta_sts, int64_t now)
{
    struct relay_tls_hop first[ROUTE_ADDRESSES_CEILING];
    char first_reason[sizeof(reason)];
    int rc_deferred = run_mode(domain, level, is_mta_sts, now, true);
    memcpy(first, hops, sizeof(first));
    memcpy(first_reason, reason, sizeof(reason));
    int rc = run_mode(domain, level, is_mta_sts, now, false);
    CHECK(rc_deferred == rc);
    CHECK(strcmp(first_reason, reason) == 0);
    for (size_t i = 0; rc == 0 && i < route.hop_count; i++) {
        CHECK(first[i].level == hops[i].level);
        CHECK(first[i].is_skipped == hops[i].is_skipped);
        CHECK(first[i].tlsa_count == hops[i].tlsa_count);
        CHECK(strcmp(first[i].reason, hops[i].reason) == 0);
    }
    return rc;
}

/* ---- levels ----------------------------------------------------------------------- */

static void
test_levels(void)
{
    static const char *const names[] = { "none", "may", "encrypt", "verify", "dane",
                                         "dane-only" };
    for (size_t i = 0; i < 6; i++) {
        enum relay_tls_level level = RELAY_TLS_NONE;
        CHECK(relay_tls_level_parse(names[i], &level) == 0);
        CHECK((size_t)level == i);
        CHECK_STR(relay_tls_level_name(level), names[i]);
    }
    enum relay_tls_level level = RELAY_TLS_NONE;
    CHECK(relay_tls_level_parse("secure", &level) == 0 && level == RELAY_TLS_VERIFY);
    CHECK(relay_tls_level_parse("Dane", &level) == -EINVAL);
    CHECK(relay_tls_level_parse("", &level) == -EINVAL);
    CHECK(relay_tls_level_parse("dane-only ", &level) == -EINVAL);
    /* The first four keep the values core/relay_internal.h had. */
    CHECK(RELAY_TLS_NONE == 0 && RELAY_TLS_MAY == 1 && RELAY_TLS_ENCRYPT == 2 &&
          RELAY_TLS_VERIFY == 3);
}

/* ---- DANE ------------------------------------------------------------------------- */

static void
test_dane_usable(void)
{
    zone_reset();
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 1, 32, 0xab);
    tlsa_add("_25._tcp.mx.example.com", true, 2, 0, 2, 64, 0xcd);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_DANE_ONLY);
    CHECK(!hops[0].is_skipped);
    CHECK(!hops[0].is_mta_sts);
    CHECK(hops[0].tlsa_count == 2);
    CHECK(hops[0].tlsa[0].usage == 3 && hops[0].tlsa[0].selector == 1 &&
          hops[0].tlsa[0].matching_type == 1 && hops[0].tlsa[0].len == 32 &&
          hops[0].tlsa[0].data[31] == 0xab);
    CHECK(hops[0].tlsa[1].usage == 2 && hops[0].tlsa[1].len == 64 &&
          hops[0].tlsa[1].data[0] == 0xcd);
    CHECK(strstr(hops[0].reason, "2 usable TLSA records") != NULL);
    CHECK(was_asked(DNS_TYPE_TLSA, "_25._tcp.mx.example.com"));
    struct tls_tlsa records[TLS_TLSA_MAX];
    CHECK(relay_tls_hop_tlsa(&hops[0], records) == 2);
    CHECK(records[0].data == hops[0].tlsa[0].data && records[0].len == 32);
    CHECK(records[1].usage == 2 && records[1].selector == 0 && records[1].matching_type == 2);

    /* The same for dane-only; and another port in the TLSA name. */
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_DANE_ONLY && hops[0].tlsa_count == 2);
    zone_reset();
    tlsa_add("_2525._tcp.mx.example.com", true, 3, 1, 1, 32, 1);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 2525, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_DANE_ONLY && hops[0].tlsa_count == 1);
}

static void
test_dane_insecure(void)
{
    /* The route is not DNSSEC-validated: no TLSA question, may. */
    zone_reset();
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 1, 32, 1);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && !hops[0].is_skipped && hops[0].tlsa_count == 0);
    CHECK(question_count == 0);
    /* dane-only: nowhere to go. */
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == -EAGAIN);
    CHECK(strncmp(reason, "no usable hop for ", 18) == 0);
    CHECK(strstr(reason, "not DNSSEC-validated") != NULL);

    /* A secure route, but the TLSA answer is not authenticated. */
    zone_reset();
    tlsa_add("_25._tcp.mx.example.com", false, 3, 1, 1, 32, 1);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && hops[0].tlsa_count == 0);
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == -EAGAIN);

    /* No TLSA records (NXDOMAIN, NODATA). */
    zone_reset();
    a_add("_25._tcp.mx.example.com", "127.0.0.1"); /* the name exists: NODATA for TLSA */
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    hop_add("mx2.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && hops[1].level == RELAY_TLS_MAY);
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == -EAGAIN);
    CHECK(strstr(reason, "dane-only: no DNSSEC-validated TLSA records for "
                         "_25._tcp.mx.example.com") != NULL);

    /* An address literal never gets DANE. */
    zone_reset();
    route_begin(ROUTE_KIND_LITERAL);
    hop_add("127.0.0.1", 25, true);
    CHECK(run("[127.0.0.1]", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && question_count == 0);
}

static void
test_dane_failures(void)
{
    /* TLSA SERVFAIL on a signed route: that hop is not used (RFC 7672
     * 2.1.1); with no other hop the group is deferred. */
    zone_reset();
    row_add(DNS_TYPE_TLSA, "_25._tcp.mx.example.com", DNS_STATUS_TEMPFAIL, false);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == -EAGAIN);
    CHECK(strncmp(reason, "no usable hop for ", 18) == 0);
    CHECK_STR(reason, "no usable hop for example.com: TLSA lookup error for "
                      "_25._tcp.mx.example.com");
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == -EAGAIN);

    /* ... with a second MX that is fine, the first is skipped only. */
    tlsa_add("_25._tcp.mx2.example.com", true, 3, 1, 1, 32, 7);
    hop_add("mx2.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].is_skipped);
    CHECK(!hops[1].is_skipped && hops[1].level == RELAY_TLS_DANE_ONLY);
    /* A PERMFAIL (REFUSED) is the same. */
    zone_reset();
    row_add(DNS_TYPE_TLSA, "_25._tcp.mx.example.com", DNS_STATUS_PERMFAIL, false);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == -EAGAIN);

    /* A host name so long the TLSA name is over 253 octets: no TLSA. */
    zone_reset();
    route_begin(ROUTE_KIND_MX);
    char host[254];
    memset(host, 'a', 253);
    for (size_t i = 60; i < 253; i += 61) {
        host[i] = '.';
    }
    host[253] = '\0';
    hop_add(host, 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY);
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == -EAGAIN);
}

static void
test_dane_unusable(void)
{
    /* Only PKIX-TA(0) / PKIX-EE(1) records: TLS, unauthenticated (RFC
     * 7672 2.2, 3.1.3). */
    zone_reset();
    tlsa_add("_25._tcp.mx.example.com", true, 0, 0, 1, 32, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 1, 1, 1, 32, 2);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_ENCRYPT && hops[0].tlsa_count == 0);
    CHECK(strstr(hops[0].reason, "none usable") != NULL);
    CHECK(run("example.com", RELAY_TLS_DANE_ONLY, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_ENCRYPT);

    /* Malformed: a digest of the wrong length, an unknown selector or
     * matching type, usage 4; a full record over the data bound. One
     * good record among them is kept alone. */
    zone_reset();
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 1, 31, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 2, 63, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 3, 2, 1, 32, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 3, 32, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 4, 1, 1, 32, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 0, RELAY_TLS_POLICY_TLSA_DATA_BYTES + 1, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 0, 0, 1);
    tlsa_add("_25._tcp.mx.example.com", true, 3, 0, 0, RELAY_TLS_POLICY_TLSA_DATA_BYTES, 9);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_DANE_ONLY && hops[0].tlsa_count == 1);
    CHECK(hops[0].tlsa[0].len == RELAY_TLS_POLICY_TLSA_DATA_BYTES &&
          hops[0].tlsa[0].matching_type == 0 && hops[0].tlsa[0].data[0] == 9);

    /* The per-hop bound: max + 1 usable records keep max. */
    zone_reset();
    for (unsigned i = 0; i < RELAY_TLS_POLICY_TLSA_MAX + 1; i++) {
        tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 1, 32, (uint8_t)i);
    }
    CHECK(run("example.com", RELAY_TLS_DANE, false, 1000) == 0);
    CHECK(hops[0].tlsa_count == RELAY_TLS_POLICY_TLSA_MAX);
    CHECK(hops[0].tlsa[RELAY_TLS_POLICY_TLSA_MAX - 1].data[0] ==
          (uint8_t)(RELAY_TLS_POLICY_TLSA_MAX - 1));
}

static void
test_no_dane_levels(void)
{
    /* Levels other than dane and dane-only ask nothing and pass through. */
    zone_reset();
    tlsa_add("_25._tcp.mx.example.com", true, 3, 1, 1, 32, 1);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.example.com", 25, true);
    static const enum relay_tls_level levels[] = { RELAY_TLS_NONE, RELAY_TLS_MAY,
                                                   RELAY_TLS_ENCRYPT, RELAY_TLS_VERIFY };
    for (size_t i = 0; i < 4; i++) {
        CHECK(run("example.com", levels[i], false, 1000) == 0);
        CHECK(hops[0].level == levels[i] && !hops[0].is_skipped && hops[0].tlsa_count == 0);
        CHECK(hops[0].reason[0] == '\0');
        CHECK(question_count == 0);
    }
}

/* ---- MTA-STS ------------------------------------------------------------------------ */

static const char policy_enforce[] = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\n"
                                     "mx: *.mail.example.com\r\nmax_age: 86400\r\n";

static void
sts_zone(const char *id)
{
    zone_reset();
    char text[100];
    (void)snprintf(text, sizeof(text), "v=STSv1; id=%s;", id);
    txt_add("_mta-sts.example.com", text);
    txt_add("_mta-sts.example.com", "some other record");
    a_add("mta-sts.example.com", "127.0.0.1");
}

static void
test_sts_enforce(void)
{
    sts_start(100);
    sts_zone("20260101");
    serve(policy_enforce);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx1.example.com", 25, false);
    hop_add("mx2.example.com", 25, false);
    hop_add("a.mail.example.com", 25, false);
    hop_add("a.b.mail.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 1); /* the deferred run fetched; the second used the cache */
    CHECK_STR(fetch_domain, "example.com");
    CHECK(fetch_address_count == 1);
    CHECK(hops[0].level == RELAY_TLS_VERIFY && hops[0].is_mta_sts && !hops[0].is_skipped);
    CHECK(hops[1].is_skipped && !hops[1].is_mta_sts);
    CHECK(strstr(hops[1].reason, "MTA-STS enforce: mx2.example.com is not in the policy") !=
          NULL);
    CHECK(hops[2].level == RELAY_TLS_VERIFY && !hops[2].is_skipped);
    CHECK(hops[3].is_skipped); /* one label only for the wildcard */
    CHECK(relay_tls_policy_cache_count() == 1);
    CHECK(relay_tls_policy_fetch_count() == 1);
    /* Enforce raises none too. */
    CHECK(run("example.com", RELAY_TLS_NONE, true, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_VERIFY);

    /* No listed MX: the group waits. */
    route_begin(ROUTE_KIND_MX);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == -EAGAIN);
    CHECK(strncmp(reason, "no usable hop for ", 18) == 0);
    CHECK(strstr(reason, "MTA-STS enforce") != NULL);

    /* Implicit MX: the domain itself is the host to match. */
    route_begin(ROUTE_KIND_IMPLICIT);
    hop_add("example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == -EAGAIN);

    /* Not an MX route, or smtp_mta_sts = no: nothing asked. */
    route_begin(ROUTE_KIND_TRANSPORT);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && question_count == 0);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, false, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && question_count == 0);
    CHECK(fetch_calls == 1);
}

static void
test_sts_testing_none(void)
{
    sts_start(100);
    sts_zone("t1");
    serve("version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 600\n");
    route_begin(ROUTE_KIND_MX);
    hop_add("mx1.example.com", 25, false);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_MAY && !hops[0].is_skipped && !hops[0].is_mta_sts);
    CHECK(hops[1].level == RELAY_TLS_MAY && !hops[1].is_skipped);
    CHECK(strstr(hops[1].reason, "MTA-STS testing") != NULL);
    CHECK(hops[0].reason[0] == '\0');

    /* The domain withdraws: mode none, a new id. */
    sts_zone("t2");
    serve("version: STSv1\nmode: none\nmax_age: 600\n");
    CHECK(run("example.com", RELAY_TLS_ENCRYPT, true, 1000) == 0);
    CHECK(fetch_calls == 2);
    CHECK(hops[0].level == RELAY_TLS_ENCRYPT && hops[1].level == RELAY_TLS_ENCRYPT);
    CHECK(hops[1].reason[0] == '\0');
}

static void
test_sts_cache(void)
{
    sts_start(100);
    sts_zone("id1");
    serve(policy_enforce); /* max_age 86400 */
    route_begin(ROUTE_KIND_MX);
    hop_add("mx1.example.com", 25, false);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 1);
    /* Same id, later, unexpired: the cache, no fetch, no address lookup. */
    CHECK(run("example.com", RELAY_TLS_MAY, true, 50000) == 0);
    CHECK(fetch_calls == 1);
    CHECK(!was_asked(DNS_TYPE_A, "mta-sts.example.com"));
    CHECK(hops[1].is_skipped);

    /* The id changes: a fetch, the new policy (testing) in force. */
    sts_zone("id2");
    serve("version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 1000\n");
    CHECK(run("example.com", RELAY_TLS_MAY, true, 60000) == 0);
    CHECK(fetch_calls == 2);
    CHECK(!hops[1].is_skipped);

    /* Expired (fetched at 60000, max_age 1000): fetched again with the same id. */
    serve(policy_enforce);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 60999) == 0);
    CHECK(fetch_calls == 2);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 61000) == 0);
    CHECK(fetch_calls == 3);
    CHECK(hops[1].is_skipped); /* enforce again, until 61000 + 86400 */

    /* The TXT record disappears: the cached policy stays in force (RFC
     * 8461 5.1), and without a TXT record nothing is fetched. */
    zone_reset();
    CHECK(run("example.com", RELAY_TLS_MAY, true, 70000) == 0);
    CHECK(fetch_calls == 3);
    CHECK(hops[1].is_skipped);
    /* A TXT SERVFAIL: the same. */
    row_add(DNS_TYPE_TXT, "_mta-sts.example.com", DNS_STATUS_TEMPFAIL, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 70000) == 0);
    CHECK(hops[1].is_skipped);
    /* Past max_age with no TXT: no policy any more. */
    CHECK(run("example.com", RELAY_TLS_MAY, true, 61000 + 86400) == 0);
    CHECK(!hops[1].is_skipped && hops[0].level == RELAY_TLS_MAY);
    CHECK(fetch_calls == 3);
}

static void
test_sts_fetch_failure(void)
{
    sts_start(100);
    sts_zone("good");
    serve(policy_enforce);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx1.example.com", 25, false);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 1);

    /* A new id whose fetch fails: the cached policy stays in force. */
    sts_zone("newer");
    fetch_rc = -ECONNREFUSED;
    CHECK(run("example.com", RELAY_TLS_MAY, true, 2000) == 0);
    CHECK(fetch_calls == 1 + 1); /* the second run backs off */
    CHECK(hops[1].is_skipped && hops[0].level == RELAY_TLS_VERIFY);
    /* Backing off: no new fetch of that id for RELAY_TLS_POLICY_FETCH_RETRY_S. */
    CHECK(run("example.com", RELAY_TLS_MAY, true, 2000 + RELAY_TLS_POLICY_FETCH_RETRY_S - 1) ==
          0);
    CHECK(fetch_calls == 2);
    CHECK(!was_asked(DNS_TYPE_A, "mta-sts.example.com"));
    /* Then tried again, and now it works. */
    serve("version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 1000\n");
    CHECK(run("example.com", RELAY_TLS_MAY, true, 2000 + RELAY_TLS_POLICY_FETCH_RETRY_S) == 0);
    CHECK(fetch_calls == 3);
    CHECK(!hops[1].is_skipped);

    /* A body that does not parse is a failed fetch: no policy for a new domain. */
    zone_reset();
    txt_add("_mta-sts.example.net", "v=STSv1; id=x1;");
    a_add("mta-sts.example.net", "127.0.0.1");
    serve("version: STSv1\nmode: enforce\nmax_age: 600\n"); /* enforce without mx */
    route_begin(ROUTE_KIND_MX);
    hop_add("mx2.example.net", 25, false);
    CHECK(run("example.net", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 4);
    CHECK(!hops[0].is_skipped && hops[0].level == RELAY_TLS_MAY);

    /* mta-sts.<domain> without an address: a failure without a call. */
    zone_reset();
    txt_add("_mta-sts.example.org", "v=STSv1; id=x1;");
    route_begin(ROUTE_KIND_MX);
    hop_add("mx2.example.org", 25, false);
    CHECK(run("example.org", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 4);
    CHECK(relay_tls_policy_fetch_count() == 5); /* counted, though not called */
    CHECK(!hops[0].is_skipped);

    /* Two STSv1 records, or a bad one: no policy announced, no fetch. */
    zone_reset();
    txt_add("_mta-sts.example.info", "v=STSv1; id=a;");
    txt_add("_mta-sts.example.info", "v=STSv1; id=b;");
    a_add("mta-sts.example.info", "127.0.0.1");
    route_begin(ROUTE_KIND_MX);
    hop_add("mx2.example.info", 25, false);
    serve(policy_enforce);
    CHECK(run("example.info", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 4 && !hops[0].is_skipped);
    zone_reset();
    txt_add("_mta-sts.example.info", "v=STSv1; id=not-alnum;");
    CHECK(run("example.info", RELAY_TLS_MAY, true, 1000) == 0);
    CHECK(fetch_calls == 4);
}

static void
test_sts_deferred_questions(void)
{
    /* The deferred run asks TXT, then the policy host's addresses, then
     * fetches once; nothing is fetched while a DANE answer is missing. */
    sts_start(100);
    sts_zone("q1");
    tlsa_add("_25._tcp.mx1.example.com", true, 3, 1, 1, 32, 5);
    serve(policy_enforce);
    route_begin(ROUTE_KIND_MX);
    hop_add("mx1.example.com", 25, true);
    struct relay_tls_request request = {
        .domain = "example.com",
        .level = RELAY_TLS_DANE,
        .is_mta_sts = true,
        .route = &route,
        .now = 1000,
    };
    is_deferred = true;
    asked_count = 0;
    answer_count = 0;
    CHECK(relay_tls_policy_resolve(&request, &source, hops, reason, sizeof(reason)) ==
          -EINPROGRESS);
    CHECK(was_asked(DNS_TYPE_TLSA, "_25._tcp.mx1.example.com"));
    CHECK(was_asked(DNS_TYPE_TXT, "_mta-sts.example.com"));
    CHECK(!was_asked(DNS_TYPE_A, "mta-sts.example.com"));
    CHECK(relay_tls_policy_resolve(&request, &source, hops, reason, sizeof(reason)) ==
          -EINPROGRESS);
    CHECK(was_asked(DNS_TYPE_A, "mta-sts.example.com"));
    CHECK(was_asked(DNS_TYPE_AAAA, "mta-sts.example.com"));
    CHECK(fetch_calls == 0);
    CHECK(relay_tls_policy_resolve(&request, &source, hops, reason, sizeof(reason)) == 0);
    CHECK(fetch_calls == 1);
    /* DANE wins over the enforce policy that lists the host anyway. */
    CHECK(hops[0].level == RELAY_TLS_DANE_ONLY && !hops[0].is_mta_sts);

    /* DANE wins over an enforce policy that does not list the host. */
    route_begin(ROUTE_KIND_MX);
    hop_add("mx9.example.com", 25, true);
    tlsa_add("_25._tcp.mx9.example.com", true, 3, 1, 1, 32, 5);
    CHECK(run("example.com", RELAY_TLS_DANE, true, 1000) == 0);
    CHECK(!hops[0].is_skipped && hops[0].level == RELAY_TLS_DANE_ONLY);
    /* Where DANE does not apply (insecure hop), MTA-STS does. */
    hop_add("mx8.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_DANE, true, 1000) == 0);
    CHECK(hops[0].level == RELAY_TLS_DANE_ONLY);
    CHECK(hops[1].is_skipped && strstr(hops[1].reason, "MTA-STS enforce") != NULL);
}

static void
test_sts_cache_bound(void)
{
    /* cache_max 2: a third domain evicts the entry that expires first. */
    sts_start(2);
    const char *domains[3] = { "a.example", "b.example", "c.example" };
    const char *policies[3] = {
        "version: STSv1\nmode: enforce\nmx: mx.a.example\nmax_age: 500\n",
        "version: STSv1\nmode: enforce\nmx: mx.b.example\nmax_age: 100\n",
        "version: STSv1\nmode: enforce\nmx: mx.c.example\nmax_age: 900\n",
    };
    for (size_t i = 0; i < 3; i++) {
        char name[64];
        zone_reset();
        (void)snprintf(name, sizeof(name), "_mta-sts.%s", domains[i]);
        txt_add(name, "v=STSv1; id=1;");
        (void)snprintf(name, sizeof(name), "mta-sts.%s", domains[i]);
        a_add(name, "127.0.0.1");
        serve(policies[i]);
        route_begin(ROUTE_KIND_MX);
        hop_add("mx.other.example", 25, false);
        CHECK(run(domains[i], RELAY_TLS_MAY, true, 1000) == -EAGAIN);
        CHECK(relay_tls_policy_cache_count() == (i < 2 ? i + 1 : 2));
    }
    CHECK(fetch_calls == 3);
    /* b (expiring first) went: asking for it fetches again; a did not. */
    zone_reset();
    txt_add("_mta-sts.a.example", "v=STSv1; id=1;");
    a_add("mta-sts.a.example", "127.0.0.1");
    route_begin(ROUTE_KIND_MX);
    hop_add("mx.other.example", 25, false);
    CHECK(run("a.example", RELAY_TLS_MAY, true, 1001) == -EAGAIN);
    CHECK(fetch_calls == 3);
    zone_reset();
    txt_add("_mta-sts.b.example", "v=STSv1; id=1;");
    a_add("mta-sts.b.example", "127.0.0.1");
    serve(policies[1]);
    CHECK(run("b.example", RELAY_TLS_MAY, true, 1001) == -EAGAIN);
    CHECK(fetch_calls == 4);
    CHECK(relay_tls_policy_cache_count() == 2);

    /* Settings at their bounds. */
    relay_tls_policy_stop();
    relay_tls_policy_stop(); /* twice is fine */
    struct relay_tls_policy_settings settings = { .cache_max = 0, .fetch = fake_fetch };
    CHECK(relay_tls_policy_start(&settings) == -EINVAL);
    settings.cache_max = RELAY_TLS_POLICY_CACHE_CEILING + 1;
    CHECK(relay_tls_policy_start(&settings) == -EINVAL);
    settings.cache_max = 1;
    settings.fetch = NULL; /* no client either */
    CHECK(relay_tls_policy_start(&settings) == -EINVAL);
    CHECK(relay_tls_policy_cache_count() == 0);

    /* Without start, MTA-STS is off: nothing asked. */
    zone_reset();
    txt_add("_mta-sts.a.example", "v=STSv1; id=1;");
    CHECK(run("a.example", RELAY_TLS_MAY, true, 1001) == 0);
    CHECK(question_count == 0 && !hops[0].is_skipped);
}

static void
test_sts_body_bound(void)
{
    /* A fetch returning the most the RFC allows parses; the fake refuses
     * more (the real fetch's bound is tested in test_relay_tls.py). */
    sts_start(10);
    sts_zone("big");
    char *body = fetch_body;
    size_t len = 0;
    len += (size_t)sprintf(body + len, "version: STSv1\nmode: enforce\nmx: mx1.example.com\n"
                                       "max_age: 600\n");
    while (len + 12 <= MTA_STS_POLICY_BYTES_MAX) {
        len += (size_t)sprintf(body + len, "x-pad: 123\n");
    }
    while (len < MTA_STS_POLICY_BYTES_MAX) {
        body[len++] = '\n';
    }
    fetch_body_len = len;
    fetch_rc = 0;
    route_begin(ROUTE_KIND_MX);
    hop_add("mx2.example.com", 25, false);
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == -EAGAIN); /* enforce */
    sts_zone("big2");
    fetch_body[len] = '\n';
    fetch_body_len = len + 1;
    CHECK(run("example.com", RELAY_TLS_MAY, true, 1000) == -EAGAIN); /* the cached one */
    CHECK(fetch_calls == 2);
}

int
main(void)
{
    test_levels();
    test_dane_usable();
    test_dane_insecure();
    test_dane_failures();
    test_dane_unusable();
    test_no_dane_levels();
    test_sts_enforce();
    test_sts_testing_none();
    test_sts_cache();
    test_sts_fetch_failure();
    test_sts_deferred_questions();
    test_sts_cache_bound();
    test_sts_body_bound();
    relay_tls_policy_stop();
    UNIT_DONE();
}
