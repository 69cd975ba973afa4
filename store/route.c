/*
 * store/route.c - the routing table and next-hop resolution of the
 * outbound agent (see route.h).
 *
 * The table is built once (start-up or reload) into sorted arrays that
 * are never written again, so lookups on any thread need no lock: a
 * transport entry for the domain, else the nearest ".parent" entry, else
 * relay_host (except for relay_domains), else the domain's MX.
 *
 * route_resolve() owns nothing past a call. Each run asks the source
 * afresh; answers not here yet make it ask for every other answer it can
 * already know it needs, then return -EINPROGRESS, so one rerun usually
 * finishes. The order of equal-preference MX hosts and of a host's
 * addresses comes from a splitmix64 generator seeded by the request, so a
 * rerun (and a test) sees the same order. No allocation; runs on any
 * thread. Choices, after Postfix: at most ROUTE_ADDRESSES_DEFAULT
 * addresses (smtp_mx_address_limit); how many of them are tried in one
 * delivery attempt (smtp_mx_session_limit, 2) is the agent's business.
 * A null MX is honoured only when it is the domain's only MX (RFC 7505
 * section 3); beside other records it is skipped. Self-detection applies
 * to names found through an MX lookup (and implicit MX), not to bracketed
 * configured hosts: an operator who writes [127.0.0.1]:10025 means it.
 * Limits: ROUTE_* in route.h.
 */
#include "store/route.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"

static_assert(ROUTE_ADDRESSES_DEFAULT <= ROUTE_ADDRESSES_CEILING, "address limits");
static_assert(ROUTE_HOST_ADDRESSES_MAX <= ROUTE_ADDRESSES_CEILING, "host address limit");
/* One MX question plus A and AAAA per host fits a DNS batch (64). */
static_assert(1 + 2 * ROUTE_MX_HOSTS_MAX <= 64, "questions per resolution");

#define NAME_BUFFER_BYTES (ROUTE_NAME_BYTES_MAX + 2) /* leading dot of a ".domain" key + NUL */
#define PRINTABLE_BYTES 68u /* a bad name quoted in a message: 64 characters and "..." */

struct transport_entry {
    char                 key[NAME_BUFFER_BYTES]; /* "example.com" or ".example.com" */
    uint32_t             line;
    struct route_nexthop nexthop;
};

struct relay_domain {
    char key[NAME_BUFFER_BYTES];
};

struct route_table {
    bool                    has_relay_host;
    struct route_nexthop    relay_host;
    size_t                  transport_count;
    struct transport_entry *transport;
    size_t                  relay_domain_count;
    struct relay_domain    *relay_domains;
};

/* One MX host in the order it will be tried. name points into an answer
 * (valid while the source holds it) or into the run's own buffers. */
struct mx_host {
    const char *name;
    uint16_t    preference;
};

/* One run of route_resolve. */
struct run {
    const struct route_request *request;
    const struct dns_source    *source;
    struct route_result        *result;
    uint64_t                    rng;
    uint16_t                    port;
    bool                        is_configured; /* the next hop came from the configuration */
    bool                        is_self_check; /* the hosts came from an MX lookup */
    bool                        is_mx_dnssec;
    const char                 *domain; /* the recipient domain as checked, for messages */
    char                        myhostname[NAME_BUFFER_BYTES];
};

static int name_normalize(const char *text, size_t len, bool allow_leading_dot,
                          char out[NAME_BUFFER_BYTES]);
static const char *printable(const char *text, size_t len, char out[PRINTABLE_BYTES]);
static int literal_parse(const char *text, size_t len, struct route_address *address_out);
static void error_set(char *error_out, size_t error_bytes, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int transport_parse(struct route_table *table, const char *text, size_t bytes,
                           char *error_out, size_t error_bytes);
static int relay_domains_parse(struct route_table *table, const char *text, char *error_out,
                               size_t error_bytes);
static int key_compare(const void *a, const void *b);
static const void *key_find(const void *base, size_t count, size_t size, const char *key);
static const void *key_find_walk(const void *base, size_t count, size_t size,
                                 const char *domain);
static void fail(struct run *run, enum route_status status, uint16_t code, const char *enhanced,
                 const char *format, ...) __attribute__((format(printf, 5, 6)));
static int resolve_hosts(struct run *run, struct mx_host *hosts, size_t host_count);
static int resolve_mx(struct run *run, const char *name);
static bool family_allowed(enum route_family family, int address_family);
static size_t family_types(enum route_family family, enum dns_type types_out[2]);
static bool address_is_self(const struct run *run, const struct route_address *address);
static uint64_t rng_next(uint64_t *state);
static void hop_add(struct run *run, const char *host, const struct route_address *address,
                    uint16_t preference, bool is_dnssec);

int
route_nexthop_parse(const char *text, size_t len, struct route_nexthop *nexthop_out,
                    char *error_out, size_t error_bytes)
{
    ASSERT(text != NULL || len == 0);
    ASSERT(nexthop_out != NULL);
    memset(nexthop_out, 0, sizeof(*nexthop_out));
    nexthop_out->port = ROUTE_PORT_DEFAULT;
    if (len >= 5 && strncasecmp(text, "smtp:", 5) == 0) {
        text += 5;
        len -= 5;
    }
    if (len == 0) {
        error_set(error_out, error_bytes, "empty next hop");
        return -EINVAL;
    }
    const char *host = text;
    size_t host_len;
    const char *rest;
    if (text[0] == '[') {
        const char *close = memchr(text, ']', len);
        if (close == NULL) {
            error_set(error_out, error_bytes, "'[' without ']'");
            return -EINVAL;
        }
        host = text + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
    } else {
        nexthop_out->is_mx_lookup = true;
        const char *colon = memchr(text, ':', len);
        host_len = colon != NULL ? (size_t)(colon - text) : len;
        rest = text + host_len;
    }
    size_t rest_len = len - (size_t)(rest - text);
    if (rest_len > 0) {
        if (rest[0] != ':' || rest_len < 2 || rest_len > 6) {
            error_set(error_out, error_bytes, "bad port");
            return -EINVAL;
        }
        uint32_t port = 0;
        for (size_t i = 1; i < rest_len; i++) {
            if (rest[i] < '0' || rest[i] > '9') {
                error_set(error_out, error_bytes, "bad port");
                return -EINVAL;
            }
            port = port * 10 + (uint32_t)(rest[i] - '0');
        }
        if (port == 0 || port > 65535) {
            error_set(error_out, error_bytes, "port out of range");
            return -EINVAL;
        }
        nexthop_out->port = (uint16_t)port;
    }
    if (literal_parse(host, host_len, &nexthop_out->literal) == 0) {
        if (nexthop_out->is_mx_lookup) {
            error_set(error_out, error_bytes, "an IP address must be in brackets");
            return -EINVAL;
        }
        nexthop_out->is_literal = true;
        const void *raw = nexthop_out->literal.family == AF_INET
                              ? (const void *)&nexthop_out->literal.v4
                              : (const void *)&nexthop_out->literal.v6;
        if (inet_ntop(nexthop_out->literal.family, raw, nexthop_out->host,
                      sizeof(nexthop_out->host)) == NULL) {
            error_set(error_out, error_bytes, "bad address");
            return -EINVAL;
        }
        return 0;
    }
    char name[NAME_BUFFER_BYTES];
    if (name_normalize(host, host_len, false, name) != 0) {
        error_set(error_out, error_bytes, "bad host name");
        return -EINVAL;
    }
    memcpy(nexthop_out->host, name, strlen(name) + 1);
    return 0;
}

int
route_table_create(const char *relay_host, const char *relay_domains,
                   const char *transport_text, size_t transport_bytes,
                   struct route_table **table_out, char *error_out, size_t error_bytes)
{
    ASSERT(table_out != NULL);
    ASSERT(transport_text != NULL || transport_bytes == 0);
    *table_out = NULL;
    error_set(error_out, error_bytes, "%s", "");
    if (transport_bytes > ROUTE_TRANSPORT_BYTES_MAX) {
        error_set(error_out, error_bytes, "transport_file: over %u bytes",
                  ROUTE_TRANSPORT_BYTES_MAX);
        return -E2BIG;
    }
    struct route_table *table = calloc(1, sizeof(*table));
    if (table == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    if (relay_host != NULL && relay_host[0] != '\0') {
        char why[128];
        rc = route_nexthop_parse(relay_host, strlen(relay_host), &table->relay_host, why,
                                 sizeof(why));
        if (rc != 0) {
            error_set(error_out, error_bytes, "relay_host: %s", why);
            goto failed;
        }
        table->has_relay_host = true;
    }
    if (relay_domains != NULL) {
        rc = relay_domains_parse(table, relay_domains, error_out, error_bytes);
        if (rc != 0) {
            goto failed;
        }
    }
    if (transport_bytes > 0) {
        rc = transport_parse(table, transport_text, transport_bytes, error_out, error_bytes);
        if (rc != 0) {
            goto failed;
        }
    }
    *table_out = table;
    return 0;
failed:
    route_table_destroy(&table);
    return rc;
}

int
route_table_load(const char *relay_host, const char *relay_domains, const char *transport_path,
                 struct route_table **table_out, char *error_out, size_t error_bytes)
{
    ASSERT(table_out != NULL);
    *table_out = NULL;
    if (transport_path == NULL || transport_path[0] == '\0') {
        return route_table_create(relay_host, relay_domains, NULL, 0, table_out, error_out,
                                  error_bytes);
    }
    int fd = open(transport_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno;
        error_set(error_out, error_bytes, "transport_file %s: %s", transport_path,
                  strerror(err));
        return -err;
    }
    /* Read one byte past the bound to tell "exactly at it" from "over". */
    size_t capacity = ROUTE_TRANSPORT_BYTES_MAX + 1;
    char *text = malloc(capacity);
    if (text == NULL) {
        (void)close(fd); /* read-only: nothing to lose */
        return -ENOMEM;
    }
    size_t used = 0;
    int rc = 0;
    while (used < capacity) {
        ssize_t n = read(fd, text + used, capacity - used);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            error_set(error_out, error_bytes, "transport_file %s: %s", transport_path,
                      strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        used += (size_t)n;
    }
    (void)close(fd); /* read-only: nothing to lose */
    if (rc == 0 && used > ROUTE_TRANSPORT_BYTES_MAX) {
        error_set(error_out, error_bytes, "transport_file %s: over %u bytes", transport_path,
                  ROUTE_TRANSPORT_BYTES_MAX);
        rc = -E2BIG;
    }
    if (rc == 0) {
        rc = route_table_create(relay_host, relay_domains, text, used, table_out, error_out,
                                error_bytes);
    }
    free(text);
    return rc;
}

void
route_table_destroy(struct route_table **table)
{
    ASSERT(table != NULL);
    if (*table == NULL) {
        return;
    }
    free((*table)->transport);
    free((*table)->relay_domains);
    free(*table);
    *table = NULL;
}

size_t
route_table_transport_count(const struct route_table *table)
{
    ASSERT(table != NULL);
    return table->transport_count;
}

bool
route_table_is_relay_domain(const struct route_table *table, const char *domain)
{
    ASSERT(table != NULL);
    ASSERT(domain != NULL);
    char name[NAME_BUFFER_BYTES];
    if (name_normalize(domain, strlen(domain), false, name) != 0) {
        return false;
    }
    return key_find_walk(table->relay_domains, table->relay_domain_count,
                         sizeof(table->relay_domains[0]), name) != NULL;
}

bool
route_table_find(const struct route_table *table, const char *domain,
                 struct route_nexthop *nexthop_out)
{
    ASSERT(table != NULL);
    ASSERT(domain != NULL);
    ASSERT(nexthop_out != NULL);
    char name[NAME_BUFFER_BYTES];
    bool is_name = name_normalize(domain, strlen(domain), false, name) == 0;
    if (is_name) {
        const struct transport_entry *entry = key_find_walk(
            table->transport, table->transport_count, sizeof(table->transport[0]), name);
        if (entry != NULL) {
            *nexthop_out = entry->nexthop;
            return true;
        }
        if (route_table_is_relay_domain(table, name)) {
            return false;
        }
    }
    if (table->has_relay_host) {
        *nexthop_out = table->relay_host;
        return true;
    }
    return false;
}

int
route_resolve(const struct route_request *request, const struct dns_source *source,
              struct route_result *result_out)
{
    ASSERT(request != NULL);
    ASSERT(request->domain != NULL);
    ASSERT(source != NULL);
    ASSERT(result_out != NULL);
    ASSERT(request->addresses_max <= ROUTE_ADDRESSES_CEILING);
    ASSERT(request->selves != NULL || request->self_count == 0);
    memset(result_out, 0, sizeof(*result_out));
    struct run run = {
        .request = request,
        .source = source,
        .result = result_out,
        .rng = request->seed,
        .port = request->mx_port != 0 ? request->mx_port : ROUTE_PORT_DEFAULT,
        .is_mx_dnssec = true,
    };
    if (request->myhostname != NULL &&
        name_normalize(request->myhostname, strlen(request->myhostname), false,
                       run.myhostname) != 0) {
        run.myhostname[0] = '\0';
    }
    const char *domain = request->domain;
    size_t domain_len = strnlen(domain, ROUTE_NAME_BYTES_MAX + 2);
    char name[NAME_BUFFER_BYTES];
    struct route_address literal;
    bool is_literal = false;
    if (domain_len > 1 && domain[0] == '[' && domain[domain_len - 1] == ']') {
        if (literal_parse(domain + 1, domain_len - 2, &literal) != 0) {
            char shown[PRINTABLE_BYTES];
            fail(&run, ROUTE_PERMFAIL, 501, "5.1.2", "bad address literal %s",
                 printable(domain, domain_len, shown));
            return 0;
        }
        is_literal = true;
        run.domain = domain;
    } else if (name_normalize(domain, domain_len, false, name) != 0) {
        char shown[PRINTABLE_BYTES];
        fail(&run, ROUTE_PERMFAIL, 501, "5.1.2", "bad domain name %s",
             printable(domain, domain_len, shown));
        return 0;
    } else {
        run.domain = name;
    }
    struct route_nexthop nexthop;
    if (request->table != NULL &&
        route_table_find(request->table, is_literal ? "" : name, &nexthop)) {
        /* An address literal matches no transport entry but does go to
         * relay_host, as in Postfix; "" finds only that. */
        bool is_transport = !is_literal && key_find_walk(request->table->transport,
                                                         request->table->transport_count,
                                                         sizeof(request->table->transport[0]),
                                                         name) != NULL;
        result_out->kind = is_transport ? ROUTE_KIND_TRANSPORT : ROUTE_KIND_RELAY_HOST;
        run.is_configured = true;
        run.port = nexthop.port;
        if (nexthop.is_literal) {
            if (!family_allowed(request->family, nexthop.literal.family)) {
                fail(&run, ROUTE_TEMPFAIL, 451, "4.3.5",
                     "next hop [%s] is of an address family not in use", nexthop.host);
                return 0;
            }
            hop_add(&run, nexthop.host, &nexthop.literal, 0, false);
            return 0;
        }
        if (!nexthop.is_mx_lookup) {
            struct mx_host host = {.name = nexthop.host, .preference = 0};
            return resolve_hosts(&run, &host, 1);
        }
        return resolve_mx(&run, nexthop.host);
    }
    if (is_literal) {
        result_out->kind = ROUTE_KIND_LITERAL;
        char text[INET6_ADDRSTRLEN];
        const void *raw = literal.family == AF_INET ? (const void *)&literal.v4
                                                    : (const void *)&literal.v6;
        const char *printed = inet_ntop(literal.family, raw, text, sizeof(text));
        ASSERT(printed != NULL); /* a parsed address always prints */
        if (!family_allowed(request->family, literal.family)) {
            fail(&run, ROUTE_PERMFAIL, 550, "5.4.4",
                 "address literal [%s] is of an address family not in use", text);
            return 0;
        }
        if (address_is_self(&run, &literal)) {
            fail(&run, ROUTE_PERMFAIL, 554, "5.4.6", "mail for [%s] loops back to myself",
                 text);
            return 0;
        }
        hop_add(&run, text, &literal, 0, false);
        return 0;
    }
    result_out->kind = ROUTE_KIND_MX;
    return resolve_mx(&run, name);
}

/* Lower case, without the trailing dot, checked: labels of 1 to 63
 * letters, digits, '-' or '_' (seen in the wild), 253 octets at most; a
 * leading dot kept where allowed (".domain" keys). */
static int
name_normalize(const char *text, size_t len, bool allow_leading_dot,
               char out[NAME_BUFFER_BYTES])
{
    if (len > 0 && text[len - 1] == '.') {
        len--;
    }
    size_t used = 0;
    if (allow_leading_dot && len > 0 && text[0] == '.') {
        out[used++] = '.';
        text++;
        len--;
    }
    if (len == 0 || len > ROUTE_NAME_BYTES_MAX) {
        return -EINVAL;
    }
    size_t label_len = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = ascii_lower((unsigned char)text[i]);
        if (c == '.') {
            if (label_len == 0) {
                return -EINVAL;
            }
            label_len = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            label_len++;
            if (label_len > ROUTE_LABEL_BYTES_MAX) {
                return -EINVAL;
            }
        } else {
            return -EINVAL;
        }
        out[used++] = (char)c;
    }
    if (label_len == 0) {
        return -EINVAL;
    }
    out[used] = '\0';
    return 0;
}

/* A name that failed the checks, fit for a log line or a DSN: at most 64
 * characters, anything but printable ASCII as '?'. */
static const char *
printable(const char *text, size_t len, char out[PRINTABLE_BYTES])
{
    size_t shown = len > 64 ? 64 : len;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    size_t used = shown;
    if (len > shown) {
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used] = '\0';
    return out;
}

/* "192.0.2.1", "ipv6:2001:db8::1" (RFC 5321 4.1.3) or "2001:db8::1". */
static int
literal_parse(const char *text, size_t len, struct route_address *address_out)
{
    char buffer[INET6_ADDRSTRLEN + 8];
    if (len >= 5 && strncasecmp(text, "ipv6:", 5) == 0) {
        text += 5;
        len -= 5;
        if (len == 0 || len >= sizeof(buffer)) {
            return -EINVAL;
        }
        memcpy(buffer, text, len);
        buffer[len] = '\0';
        memset(address_out, 0, sizeof(*address_out));
        address_out->family = AF_INET6;
        return inet_pton(AF_INET6, buffer, &address_out->v6) == 1 ? 0 : -EINVAL;
    }
    if (len == 0 || len >= sizeof(buffer)) {
        return -EINVAL;
    }
    memcpy(buffer, text, len);
    buffer[len] = '\0';
    memset(address_out, 0, sizeof(*address_out));
    if (inet_pton(AF_INET, buffer, &address_out->v4) == 1) {
        address_out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buffer, &address_out->v6) == 1) {
        address_out->family = AF_INET6;
        return 0;
    }
    return -EINVAL;
}

static void
error_set(char *error_out, size_t error_bytes, const char *format, ...)
{
    if (error_out == NULL || error_bytes == 0) {
        return;
    }
    va_list args;
    va_start(args, format);
    (void)vsnprintf(error_out, error_bytes, format, args); /* truncation is fine for a message */
    va_end(args);
}

/* Lines of "key nexthop"; see route_table_create. */
static int
transport_parse(struct route_table *table, const char *text, size_t bytes, char *error_out,
                size_t error_bytes)
{
    size_t capacity = 0;
    size_t pos = 0;
    uint32_t line = 0;
    while (pos < bytes) {
        line++;
        const char *start = text + pos;
        const char *lf = memchr(start, '\n', bytes - pos);
        size_t line_len = lf != NULL ? (size_t)(lf - start) : bytes - pos;
        pos += line_len + (lf != NULL ? 1 : 0);
        if (line_len > 0 && start[line_len - 1] == '\r') {
            line_len--;
        }
        if (line_len > ROUTE_TRANSPORT_LINE_BYTES_MAX) {
            error_set(error_out, error_bytes, "transport_file: line %u: over %u bytes", line,
                      ROUTE_TRANSPORT_LINE_BYTES_MAX);
            return -E2BIG;
        }
        if (memchr(start, '\0', line_len) != NULL) {
            error_set(error_out, error_bytes, "transport_file: line %u: NUL byte", line);
            return -EINVAL;
        }
        /* Up to three blank-separated fields: two make an entry, a third
         * is an error. */
        const char *field[3];
        size_t field_len[3];
        size_t field_count = 0;
        size_t i = 0;
        while (i < line_len) {
            while (i < line_len && ascii_is_blank(start[i])) {
                i++;
            }
            if (i == line_len || (field_count == 0 && start[i] == '#')) {
                break;
            }
            if (field_count == 3) {
                break;
            }
            field[field_count] = start + i;
            while (i < line_len && !ascii_is_blank(start[i])) {
                i++;
            }
            field_len[field_count] = (size_t)(start + i - field[field_count]);
            field_count++;
        }
        if (field_count == 0) {
            continue;
        }
        if (field_count != 2) {
            error_set(error_out, error_bytes, "transport_file: line %u: want \"domain nexthop\"",
                      line);
            return -EINVAL;
        }
        if (table->transport_count == ROUTE_TRANSPORT_ENTRIES_MAX) {
            error_set(error_out, error_bytes, "transport_file: line %u: over %u entries", line,
                      ROUTE_TRANSPORT_ENTRIES_MAX);
            return -E2BIG;
        }
        if (table->transport_count == capacity) {
            size_t next = capacity == 0 ? 64 : capacity * 2;
            if (next > ROUTE_TRANSPORT_ENTRIES_MAX) {
                next = ROUTE_TRANSPORT_ENTRIES_MAX;
            }
            struct transport_entry *grown = realloc(table->transport, next * sizeof(*grown));
            if (grown == NULL) {
                return -ENOMEM;
            }
            table->transport = grown;
            capacity = next;
        }
        struct transport_entry *entry = &table->transport[table->transport_count];
        memset(entry, 0, sizeof(*entry));
        entry->line = line;
        if (name_normalize(field[0], field_len[0], true, entry->key) != 0) {
            error_set(error_out, error_bytes, "transport_file: line %u: bad domain", line);
            return -EINVAL;
        }
        char why[96];
        if (route_nexthop_parse(field[1], field_len[1], &entry->nexthop, why, sizeof(why)) !=
            0) {
            error_set(error_out, error_bytes, "transport_file: line %u: %s", line, why);
            return -EINVAL;
        }
        table->transport_count++;
    }
    if (table->transport_count == 0) {
        return 0;
    }
    qsort(table->transport, table->transport_count, sizeof(table->transport[0]), key_compare);
    for (size_t i = 1; i < table->transport_count; i++) {
        const struct transport_entry *a = &table->transport[i - 1];
        const struct transport_entry *b = &table->transport[i];
        if (strcmp(a->key, b->key) == 0) {
            uint32_t first = a->line < b->line ? a->line : b->line;
            uint32_t second = a->line < b->line ? b->line : a->line;
            error_set(error_out, error_bytes,
                      "transport_file: line %u: %s is listed twice (first on line %u)", second,
                      a->key, first);
            return -EINVAL;
        }
    }
    return 0;
}

static int
relay_domains_parse(struct route_table *table, const char *text, char *error_out,
                    size_t error_bytes)
{
    /* Two passes: count, then fill an array of exactly that size. */
    for (int pass = 0; pass < 2; pass++) {
        size_t count = 0;
        const char *p = text;
        for (;;) {
            while (*p == ',' || ascii_is_blank(*p)) {
                p++;
            }
            if (*p == '\0') {
                break;
            }
            const char *start = p;
            while (*p != '\0' && *p != ',' && !ascii_is_blank(*p)) {
                p++;
            }
            if (count == ROUTE_RELAY_DOMAINS_MAX) {
                error_set(error_out, error_bytes, "relay_domains: over %u domains",
                          ROUTE_RELAY_DOMAINS_MAX);
                return -E2BIG;
            }
            if (pass == 1) {
                ASSERT(count < table->relay_domain_count);
                if (name_normalize(start, (size_t)(p - start), true,
                                   table->relay_domains[count].key) != 0) {
                    char shown[PRINTABLE_BYTES];
                    error_set(error_out, error_bytes, "relay_domains: bad domain %s",
                              printable(start, (size_t)(p - start), shown));
                    return -EINVAL;
                }
            }
            count++;
        }
        if (pass == 0) {
            if (count == 0) {
                return 0;
            }
            table->relay_domains = calloc(count, sizeof(table->relay_domains[0]));
            if (table->relay_domains == NULL) {
                return -ENOMEM;
            }
            table->relay_domain_count = count;
        }
    }
    qsort(table->relay_domains, table->relay_domain_count, sizeof(table->relay_domains[0]),
          key_compare);
    return 0;
}

/* Both entry types start with their NUL-terminated key. */
static int
key_compare(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static const void *
key_find(const void *base, size_t count, size_t size, const char *key)
{
    if (count == 0) {
        return NULL;
    }
    return bsearch(key, base, count, size, key_compare);
}

/* The entry for domain itself, else for the nearest ".parent". */
static const void *
key_find_walk(const void *base, size_t count, size_t size, const char *domain)
{
    const void *found = key_find(base, count, size, domain);
    /* At most 127 dots in 253 octets. */
    for (const char *p = strchr(domain, '.'); found == NULL && p != NULL;
         p = strchr(p + 1, '.')) {
        found = key_find(base, count, size, p);
    }
    return found;
}

static void
fail(struct run *run, enum route_status status, uint16_t code, const char *enhanced,
     const char *format, ...)
{
    ASSERT(status != ROUTE_OK);
    struct route_result *result = run->result;
    result->status = status;
    result->reply_code = code;
    ASSERT(strlen(enhanced) < sizeof(result->enhanced));
    memcpy(result->enhanced, enhanced, strlen(enhanced) + 1);
    va_list args;
    va_start(args, format);
    (void)vsnprintf(result->reason, sizeof(result->reason), format, args); /* may truncate */
    va_end(args);
    result->hop_count = 0;
}

static bool
family_allowed(enum route_family family, int address_family)
{
    switch (family) {
    case ROUTE_FAMILY_IPV4_ONLY:
        return address_family == AF_INET;
    case ROUTE_FAMILY_IPV6_ONLY:
        return address_family == AF_INET6;
    case ROUTE_FAMILY_PREFER_IPV4:
    case ROUTE_FAMILY_PREFER_IPV6:
        return true;
    }
    ASSERT(!"unknown route_family");
    return false;
}

/* The address types to ask, preferred first; returns how many. */
static size_t
family_types(enum route_family family, enum dns_type types_out[2])
{
    switch (family) {
    case ROUTE_FAMILY_PREFER_IPV4:
        types_out[0] = DNS_TYPE_A;
        types_out[1] = DNS_TYPE_AAAA;
        return 2;
    case ROUTE_FAMILY_PREFER_IPV6:
        types_out[0] = DNS_TYPE_AAAA;
        types_out[1] = DNS_TYPE_A;
        return 2;
    case ROUTE_FAMILY_IPV4_ONLY:
        types_out[0] = DNS_TYPE_A;
        return 1;
    case ROUTE_FAMILY_IPV6_ONLY:
        types_out[0] = DNS_TYPE_AAAA;
        return 1;
    }
    ASSERT(!"unknown route_family");
    return 0;
}

/* The MX lookup of name and what follows from it. */
static int
resolve_mx(struct run *run, const char *name)
{
    const struct dns_answer *answer;
    int rc = dns_source_lookup(run->source, DNS_TYPE_MX, name, &answer);
    if (rc == -EINPROGRESS) {
        return rc;
    }
    if (rc != 0) {
        if (run->is_configured) {
            fail(run, ROUTE_TEMPFAIL, 451, "4.3.5", "next hop %s from the configuration: bad name",
                 name);
        } else {
            char shown[PRINTABLE_BYTES];
            fail(run, ROUTE_PERMFAIL, 501, "5.1.2", "bad domain name %s",
                 printable(name, strlen(name), shown));
        }
        return 0;
    }
    run->is_self_check = true;
    if (answer->status == DNS_STATUS_NODATA ||
        (answer->status == DNS_STATUS_OK && answer->count == 0)) {
        /* RFC 5321 5.1: no MX, so the name itself is the one host, at
         * preference 0. */
        if (!run->is_configured) {
            run->result->kind = ROUTE_KIND_IMPLICIT;
        }
        run->is_mx_dnssec = answer->authenticated;
        struct mx_host host = {.name = name, .preference = 0};
        return resolve_hosts(run, &host, 1);
    }
    if (answer->status == DNS_STATUS_NXDOMAIN) {
        if (run->is_configured) {
            fail(run, ROUTE_TEMPFAIL, 451, "4.3.5",
                 "next hop %s from the configuration: host not found", name);
        } else {
            fail(run, ROUTE_PERMFAIL, 550, "5.1.2",
                 "Host or domain name not found. Name service error for name=%s type=MX: "
                 "Host not found",
                 name);
        }
        return 0;
    }
    if (answer->status != DNS_STATUS_OK) {
        /* TEMPFAIL, and PERMFAIL too (REFUSED, FORMERR, a broken answer):
         * that is a resolver's or server's trouble, not proof that the
         * domain has no mail, so the mail waits. */
        fail(run, ROUTE_TEMPFAIL, 451, "4.4.3",
             "Host or domain name not found. Name service error for name=%s type=MX: "
             "Host not found, try again",
             name);
        return 0;
    }
    run->is_mx_dnssec = answer->authenticated;
    uint32_t record_count = answer->count;
    if (record_count > ROUTE_ANSWER_RECORDS_MAX) {
        record_count = ROUTE_ANSWER_RECORDS_MAX;
    }
    struct mx_host hosts[ROUTE_MX_RECORDS_MAX];
    size_t host_count = 0;
    for (uint32_t i = 0; i < record_count; i++) {
        const struct dns_record *record = &answer->records[i];
        if (record->mx.host == NULL || record->mx.host[0] == '\0') {
            continue; /* a null MX beside real ones (RFC 7505 3: must not be) */
        }
        struct mx_host host = {.name = record->mx.host, .preference = record->mx.preference};
        if (host_count < ROUTE_MX_RECORDS_MAX) {
            hosts[host_count++] = host;
            continue;
        }
        /* Full: keep the lowest preferences; replace the last of the worst. */
        size_t worst = 0;
        for (size_t j = 1; j < host_count; j++) {
            if (hosts[j].preference >= hosts[worst].preference) {
                worst = j;
            }
        }
        if (host.preference < hosts[worst].preference) {
            hosts[worst] = host;
        }
    }
    if (host_count == 0) {
        fail(run, ROUTE_PERMFAIL, 556, "5.1.10", "Domain %s does not accept mail (nullMX)",
             run->is_configured ? name : run->domain);
        return 0;
    }
    /* Stable insertion sort by preference, then each run of equal
     * preferences shuffled (RFC 5321 5.1: "randomize them to spread the
     * load"). */
    for (size_t i = 1; i < host_count; i++) {
        struct mx_host moving = hosts[i];
        size_t j = i;
        while (j > 0 && hosts[j - 1].preference > moving.preference) {
            hosts[j] = hosts[j - 1];
            j--;
        }
        hosts[j] = moving;
    }
    for (size_t start = 0; start < host_count;) {
        size_t end = start + 1;
        while (end < host_count && hosts[end].preference == hosts[start].preference) {
            end++;
        }
        for (size_t k = end - start; k > 1; k--) {
            size_t pick = (size_t)(rng_next(&run->rng) % k);
            struct mx_host swap = hosts[start + k - 1];
            hosts[start + k - 1] = hosts[start + pick];
            hosts[start + pick] = swap;
        }
        start = end;
    }
    return resolve_hosts(run, hosts, host_count);
}

/* The addresses of hosts (sorted, shuffled), into the result. */
static int
resolve_hosts(struct run *run, struct mx_host *hosts, size_t host_count)
{
    const struct route_request *request = run->request;
    struct route_result *result = run->result;
    uint32_t limit = request->addresses_max != 0 ? request->addresses_max
                                                 : ROUTE_ADDRESSES_DEFAULT;
    uint32_t self_preference = UINT32_MAX;
    if (run->is_self_check && run->myhostname[0] != '\0') {
        for (size_t i = 0; i < host_count; i++) {
            if (strcmp(hosts[i].name, run->myhostname) == 0 &&
                hosts[i].preference < self_preference) {
                self_preference = hosts[i].preference;
            }
        }
    }
    enum dns_type types[2];
    size_t type_count = family_types(request->family, types);
    bool is_pending = false;
    bool is_tempfail = false;
    bool is_limit_reached = false;
    uint32_t limit_preference = 0;
    size_t looked_count = 0;
    for (size_t i = 0; i < host_count && looked_count < ROUTE_MX_HOSTS_MAX; i++) {
        const struct mx_host *host = &hosts[i];
        if (host->preference >= self_preference) {
            break;
        }
        /* Past the limit, the rest of its preference is still looked at:
         * one of them may be us, and then none of that preference counts. */
        if (is_limit_reached && host->preference > limit_preference) {
            break;
        }
        looked_count++;
        struct route_address found[2][ROUTE_HOST_ADDRESSES_MAX];
        size_t found_count[2] = {0, 0};
        bool is_dnssec = run->is_mx_dnssec;
        bool is_host_pending = false;
        for (size_t t = 0; t < type_count; t++) {
            const struct dns_answer *answer;
            int rc = dns_source_lookup(run->source, types[t], host->name, &answer);
            if (rc == -EINPROGRESS) {
                is_host_pending = true;
                continue;
            }
            if (rc != 0) {
                continue; /* an MX naming an invalid host: that host is skipped */
            }
            if (answer->status == DNS_STATUS_TEMPFAIL || answer->status == DNS_STATUS_PERMFAIL) {
                is_tempfail = true;
                continue;
            }
            if (answer->status != DNS_STATUS_OK) {
                continue;
            }
            if (!answer->authenticated) {
                is_dnssec = false;
            }
            /* A random few of the host's addresses, in random order. */
            uint32_t count = answer->count;
            if (count > ROUTE_ANSWER_RECORDS_MAX) {
                count = ROUTE_ANSWER_RECORDS_MAX;
            }
            uint16_t order[ROUTE_ANSWER_RECORDS_MAX];
            for (uint32_t k = 0; k < count; k++) {
                order[k] = (uint16_t)k;
            }
            for (uint32_t k = 0; k < count && found_count[t] < ROUTE_HOST_ADDRESSES_MAX; k++) {
                uint32_t pick = k + (uint32_t)(rng_next(&run->rng) % (count - k));
                uint16_t swap = order[k];
                order[k] = order[pick];
                order[pick] = swap;
                const struct dns_record *record = &answer->records[order[k]];
                struct route_address *address = &found[t][found_count[t]++];
                memset(address, 0, sizeof(*address));
                if (types[t] == DNS_TYPE_A) {
                    address->family = AF_INET;
                    address->v4 = record->a;
                } else {
                    address->family = AF_INET6;
                    address->v6 = record->aaaa;
                }
            }
        }
        if (is_host_pending) {
            is_pending = true;
        }
        if (is_pending) {
            continue; /* this run's result is void; ask for the rest too */
        }
        bool is_self = false;
        for (size_t t = 0; t < type_count && run->is_self_check; t++) {
            for (size_t k = 0; k < found_count[t]; k++) {
                if (address_is_self(run, &found[t][k])) {
                    is_self = true;
                }
            }
        }
        if (is_self) {
            self_preference = host->preference;
            break;
        }
        size_t taken = 0;
        for (size_t t = 0; t < type_count; t++) {
            for (size_t k = 0; k < found_count[t]; k++) {
                if (taken == ROUTE_HOST_ADDRESSES_MAX || result->hop_count >= limit) {
                    break;
                }
                hop_add(run, host->name, &found[t][k], host->preference, is_dnssec);
                taken++;
            }
        }
        if (result->hop_count >= limit && !is_limit_reached) {
            is_limit_reached = true;
            limit_preference = host->preference;
        }
    }
    if (is_pending) {
        result->hop_count = 0;
        return -EINPROGRESS;
    }
    if (self_preference != UINT32_MAX) {
        size_t kept = 0;
        for (size_t i = 0; i < result->hop_count; i++) {
            if (result->hops[i].preference < self_preference) {
                result->hops[kept++] = result->hops[i];
            }
        }
        result->hop_count = kept;
        if (kept == 0) {
            fail(run, ROUTE_PERMFAIL, 554, "5.4.6", "mail for %s loops back to myself",
                 run->domain);
            return 0;
        }
    }
    if (result->hop_count == 0) {
        const char *first = host_count > 0 ? hosts[0].name : run->domain;
        if (run->is_configured) {
            fail(run, ROUTE_TEMPFAIL, 451, "4.3.5",
                 "next hop %s from the configuration: no address found", first);
        } else if (is_tempfail) {
            fail(run, ROUTE_TEMPFAIL, 451, "4.4.3",
                 "Host or domain name not found. Name service error for name=%s type=A: "
                 "Host not found, try again",
                 first);
        } else {
            fail(run, ROUTE_PERMFAIL, 550, "5.4.4",
                 "Host or domain name not found. Name service error for name=%s type=A: "
                 "Host not found",
                 first);
        }
        return 0;
    }
    result->status = ROUTE_OK;
    return 0;
}

static bool
address_is_self(const struct run *run, const struct route_address *address)
{
    const struct route_request *request = run->request;
    for (size_t i = 0; i < request->self_count; i++) {
        const struct route_self *self = &request->selves[i];
        if (self->address.family != address->family) {
            continue;
        }
        if (self->port != 0 && self->port != run->port) {
            continue;
        }
        bool is_same = address->family == AF_INET
                           ? memcmp(&self->address.v4, &address->v4, sizeof(address->v4)) == 0
                           : memcmp(&self->address.v6, &address->v6, sizeof(address->v6)) == 0;
        if (is_same) {
            return true;
        }
    }
    return false;
}

/* splitmix64: small, fast, and the same sequence for the same seed. */
static uint64_t
rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
hop_add(struct run *run, const char *host, const struct route_address *address,
        uint16_t preference, bool is_dnssec)
{
    struct route_result *result = run->result;
    ASSERT(result->hop_count < ROUTE_ADDRESSES_CEILING);
    struct route_hop *hop = &result->hops[result->hop_count];
    size_t host_len = strnlen(host, sizeof(hop->host));
    if (host_len == sizeof(hop->host)) {
        return; /* longer than a DNS name can be: not from a sane source */
    }
    memcpy(hop->host, host, host_len + 1);
    hop->address = *address;
    hop->port = run->port;
    hop->preference = preference;
    hop->is_dnssec = is_dnssec;
    result->hop_count++;
    result->status = ROUTE_OK;
}
