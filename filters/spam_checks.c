/*
 * filters/spam_checks.c - the checks that turn a message analysis, the
 * other filters' results and DNS list answers into symbols (see
 * spam_checks.h for the groups).
 *
 * Owns nothing. Runs on workers. Regex rules read bounded bytes: a header
 * rule at most SPAM_HEADER_VALUE_BYTES_MAX of each decoded field (within
 * the SPAM_HEADER_BYTES_MAX header block), a body rule at most
 * SPAM_BODY_REGEX_BYTES_MAX of the decoded text; patterns have no
 * back-references (spam_rules refuses them), so matching time is bounded
 * by those bytes. DNS lookups: one per dnsbl zone, at most
 * uribl_lookups_max per uribl zone.
 */
#include "filters/spam_checks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/assertions.h"
#include "core/span.h"
#include "proto/imap/imap_rfc822.h"
#include "proto/imap/imap_text.h"

static void check_header_rules(const struct spam_rules *rules, const struct spam_message *m,
                               struct spam_symbols *symbols);
static void check_body_rules(const struct spam_rules *rules, const struct spam_message *m,
                             struct spam_symbols *symbols);
static bool client_is_listable(const struct spam_client *client);
static bool zone_seen_before(const struct spam_rules *rules, size_t index);

void
spam_checks_message(const struct spam_rules *rules, const struct spam_config *config,
                    const struct spam_message *m, struct spam_symbols *symbols)
{
    ASSERT(rules != NULL);
    ASSERT(m != NULL);
    if (m->is_gtube) {
        spam_symbols_add(symbols, rules, "GTUBE", 1.0, "");
    }
    if (!m->has_date) {
        spam_symbols_add(symbols, rules, "MISSING_DATE", 1.0, "");
    }
    if (!m->has_message_id) {
        spam_symbols_add(symbols, rules, "MISSING_MID", 1.0, "");
    }
    if (!m->has_from) {
        spam_symbols_add(symbols, rules, "MISSING_FROM", 1.0, "");
    }
    if (m->html_part_count > 0 && m->plain_part_count == 0) {
        spam_symbols_add(symbols, rules, "MIME_HTML_ONLY", 1.0, "");
    }
    if (m->from_domain[0] != '\0' && m->reply_to_domain[0] != '\0') {
        char from_org[SPAM_DOMAIN_BYTES];
        char reply_org[SPAM_DOMAIN_BYTES];
        spam_checks_org_domain(config, m->from_domain, from_org, sizeof(from_org));
        spam_checks_org_domain(config, m->reply_to_domain, reply_org, sizeof(reply_org));
        if (strcmp(from_org, reply_org) != 0) {
            spam_symbols_add(symbols, rules, "REPLYTO_DOM_NEQ_FROM_DOM", 1.0, "");
        }
    }
    if (m->is_multipart_no_boundary) {
        spam_symbols_add(symbols, rules, "BROKEN_CONTENT_TYPE", 1.0, "no boundary");
    } else if (m->is_multipart_no_children) {
        spam_symbols_add(symbols, rules, "BROKEN_CONTENT_TYPE", 1.0, "boundary not found");
    }
    if (m->bad_name_count > 0) {
        char options[SPAM_OPTIONS_BYTES];
        size_t n = 0;
        options[0] = '\0';
        size_t shown = m->bad_name_count < SPAM_BAD_NAMES_MAX ? m->bad_name_count
                                                              : SPAM_BAD_NAMES_MAX;
        for (size_t i = 0; i < shown; i++) {
            int w = snprintf(options + n, sizeof(options) - n, "%s%s", i > 0 ? "," : "",
                             m->bad_names[i]);
            if (w < 0 || (size_t)w >= sizeof(options) - n) {
                break;
            }
            n += (size_t)w;
        }
        spam_symbols_add(symbols, rules,
                         m->has_double_bad_name ? "MIME_DOUBLE_BAD_EXTENSION"
                                                : "MIME_BAD_EXTENSION",
                         1.0, options);
    }
    check_header_rules(rules, m, symbols);
    check_body_rules(rules, m, symbols);
}

void
spam_checks_inputs(const struct spam_rules *rules, const struct spam_config *config,
                   const struct spam_message *m, const struct spam_inputs *in,
                   struct spam_symbols *symbols)
{
    static const char *const spf_names[] = {
        [SPAM_SPF_PASS] = "R_SPF_ALLOW",        [SPAM_SPF_FAIL] = "R_SPF_FAIL",
        [SPAM_SPF_SOFTFAIL] = "R_SPF_SOFTFAIL", [SPAM_SPF_NEUTRAL] = "R_SPF_NEUTRAL",
        [SPAM_SPF_NONE] = "R_SPF_NA",           [SPAM_SPF_TEMPERROR] = "R_SPF_DNSFAIL",
        [SPAM_SPF_PERMERROR] = "R_SPF_PERMFAIL",
    };
    static const char *const dkim_names[] = {
        [SPAM_DKIM_PASS] = "R_DKIM_ALLOW",          [SPAM_DKIM_FAIL] = "R_DKIM_REJECT",
        [SPAM_DKIM_NONE] = "R_DKIM_NA",             [SPAM_DKIM_TEMPERROR] = "R_DKIM_TEMPFAIL",
        [SPAM_DKIM_PERMERROR] = "R_DKIM_PERMFAIL",
    };
    static const char *const dmarc_names[] = {
        [SPAM_DMARC_PASS] = "DMARC_POLICY_ALLOW",
        [SPAM_DMARC_FAIL_REJECT] = "DMARC_POLICY_REJECT",
        [SPAM_DMARC_FAIL_QUARANTINE] = "DMARC_POLICY_QUARANTINE",
        [SPAM_DMARC_FAIL_NONE] = "DMARC_POLICY_SOFTFAIL",
        [SPAM_DMARC_NONE] = "DMARC_NA",
        [SPAM_DMARC_TEMPERROR] = "DMARC_DNSFAIL",
        [SPAM_DMARC_PERMERROR] = "DMARC_BAD_POLICY",
    };
    ASSERT(in != NULL);
    if (in->spf != SPAM_SPF_UNCHECKED && (size_t)in->spf < sizeof(spf_names) / sizeof(spf_names[0])) {
        spam_symbols_add(symbols, rules, spf_names[in->spf], 1.0,
                         in->spf_domain != NULL ? in->spf_domain : "");
    }
    if (in->dkim != SPAM_DKIM_UNCHECKED &&
        (size_t)in->dkim < sizeof(dkim_names) / sizeof(dkim_names[0])) {
        spam_symbols_add(symbols, rules, dkim_names[in->dkim], 1.0,
                         in->dkim_domain != NULL ? in->dkim_domain : "");
    }
    if (in->dmarc != SPAM_DMARC_UNCHECKED &&
        (size_t)in->dmarc < sizeof(dmarc_names) / sizeof(dmarc_names[0])) {
        spam_symbols_add(symbols, rules, dmarc_names[in->dmarc], 1.0,
                         in->dmarc_domain != NULL ? in->dmarc_domain : "");
    }
    if (in->virus_name != NULL) {
        spam_symbols_add(symbols, rules, "CLAM_VIRUS", 1.0, in->virus_name);
    }
    size_t rcpts = m->header_rcpt_count > in->rcpt_count ? m->header_rcpt_count : in->rcpt_count;
    if (config->many_recipients > 0 && rcpts > config->many_recipients) {
        char options[24];
        (void)snprintf(options, sizeof(options), "%zu", rcpts);
        spam_symbols_add(symbols, rules, "MANY_RECIPIENTS", 1.0, options);
    }
}

/* Addresses of 127.0.0.0/8 in an A answer, without the lists' error
 * codes (127.255.255.0/24: Spamhaus says "query refused / typo / too
 * many queries" there). */
static size_t
listed_codes(const struct dns_answer *answer, uint32_t *codes, size_t cap)
{
    size_t n = 0;
    if (answer->type != DNS_TYPE_A || answer->status != DNS_STATUS_OK) {
        return 0;
    }
    for (uint32_t i = 0; i < answer->count && i < 64 && n < cap; i++) {
        uint32_t a = ntohl(answer->records[i].a.s_addr);
        if ((a >> 24) != 127 || (a >> 8) == 0x7fffffu) {
            continue;
        }
        codes[n++] = a;
    }
    return n;
}

/* Add the symbols of zone (rules of kind from index first on) for the
 * listed codes; option is what was listed (an IP or a domain). The options
 * of a symbol that fires for several domains are joined by ','. */
static void
fire_zone(const struct spam_rules *rules, size_t first, const uint32_t *codes, size_t code_count,
          const char *what, char (*options)[SPAM_OPTIONS_BYTES], bool *fired)
{
    const struct spam_rule *z = &rules->rules[first];
    bool any_code_rule = false;
    for (size_t i = first; i < rules->rule_count; i++) {
        const struct spam_rule *r = &rules->rules[i];
        if (r->kind != z->kind || strcmp(r->zone, z->zone) != 0 || !r->has_code) {
            continue;
        }
        for (size_t c = 0; c < code_count; c++) {
            if (codes[c] == r->code) {
                any_code_rule = true;
                fired[i] = true;
                size_t len = strlen(options[i]);
                (void)snprintf(options[i] + len, SPAM_OPTIONS_BYTES - len, "%s%s",
                               len > 0 ? "," : "", what);
            }
        }
    }
    if (any_code_rule || code_count == 0) {
        return;
    }
    for (size_t i = first; i < rules->rule_count; i++) {
        const struct spam_rule *r = &rules->rules[i];
        if (r->kind != z->kind || strcmp(r->zone, z->zone) != 0 || r->has_code) {
            continue;
        }
        fired[i] = true;
        size_t len = strlen(options[i]);
        (void)snprintf(options[i] + len, SPAM_OPTIONS_BYTES - len, "%s%s", len > 0 ? "," : "",
                       what);
    }
}

int
spam_checks_dns(const struct spam_rules *rules, const struct spam_config *config,
                const struct spam_message *m, const struct spam_inputs *in,
                const struct dns_source *dns, struct spam_symbols *symbols)
{
    ASSERT(dns != NULL);
    size_t pending = 0;
    bool *fired = calloc(rules->rule_count, sizeof(*fired));
    char(*options)[SPAM_OPTIONS_BYTES] = calloc(rules->rule_count, SPAM_OPTIONS_BYTES);
    if (fired == NULL || options == NULL) {
        free(fired);
        free(options);
        return -ENOMEM;
    }
    char name[300];
    char ip_text[INET6_ADDRSTRLEN];
    bool is_listable = !in->is_authenticated && client_is_listable(&in->client);
    if (is_listable) {
        const void *a = in->client.family == AF_INET ? (const void *)&in->client.addr4
                                                     : (const void *)&in->client.addr6;
        if (inet_ntop(in->client.family, a, ip_text, sizeof(ip_text)) == NULL) {
            is_listable = false;
        }
    }
    size_t uribl_max = config->uribl_lookups_max < SPAM_URIBL_LOOKUPS_MAX
                           ? config->uribl_lookups_max
                           : SPAM_URIBL_LOOKUPS_MAX;
    for (size_t i = 0; i < rules->rule_count; i++) {
        const struct spam_rule *r = &rules->rules[i];
        if ((r->kind != SPAM_RULE_DNSBL && r->kind != SPAM_RULE_URIBL) ||
            zone_seen_before(rules, i)) {
            continue;
        }
        uint32_t codes[16];
        const struct dns_answer *answer = NULL;
        if (r->kind == SPAM_RULE_DNSBL) {
            if (!is_listable ||
                spam_checks_dnsbl_name(&in->client, r->zone, name, sizeof(name)) != 0) {
                continue;
            }
            int rc = dns_source_lookup(dns, DNS_TYPE_A, name, &answer);
            if (rc == -EINPROGRESS) {
                pending++;
            } else if (rc == 0) {
                size_t n = listed_codes(answer, codes, 16);
                fire_zone(rules, i, codes, n, ip_text, options, fired);
            }
            continue;
        }
        /* uribl: the organizational domain of each link, each once. */
        char looked[SPAM_URIBL_LOOKUPS_MAX][SPAM_DOMAIN_BYTES];
        size_t looked_count = 0;
        for (size_t u = 0; u < m->url_domain_count && looked_count < uribl_max; u++) {
            char org[SPAM_DOMAIN_BYTES];
            spam_checks_org_domain(config, m->url_domains[u], org, sizeof(org));
            bool dup = false;
            for (size_t k = 0; k < looked_count; k++) {
                if (strcmp(looked[k], org) == 0) {
                    dup = true;
                    break;
                }
            }
            if (dup || org[0] == '\0') {
                continue;
            }
            memcpy(looked[looked_count++], org, strlen(org) + 1);
            int w = snprintf(name, sizeof(name), "%s.%s", org, r->zone);
            if (w < 0 || (size_t)w >= sizeof(name)) {
                continue;
            }
            int rc = dns_source_lookup(dns, DNS_TYPE_A, name, &answer);
            if (rc == -EINPROGRESS) {
                pending++;
            } else if (rc == 0) {
                size_t n = listed_codes(answer, codes, 16);
                fire_zone(rules, i, codes, n, org, options, fired);
            }
        }
    }
    for (size_t i = 0; i < rules->rule_count; i++) {
        if (fired[i]) {
            spam_symbols_add(symbols, rules, rules->rules[i].name, 1.0, options[i]);
        }
    }
    free(fired);
    free(options);
    return pending > 0 ? -EINPROGRESS : 0;
}

int
spam_checks_dnsbl_name(const struct spam_client *client, const char *zone, char *out,
                       size_t out_bytes)
{
    int n;
    if (client->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&client->addr6)) {
        struct spam_client v4 = { .family = AF_INET };
        memcpy(&v4.addr4.s_addr, client->addr6.s6_addr + 12, 4);
        return spam_checks_dnsbl_name(&v4, zone, out, out_bytes);
    }
    if (client->family == AF_INET) {
        const uint8_t *b = (const uint8_t *)&client->addr4.s_addr;
        n = snprintf(out, out_bytes, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone);
    } else if (client->family == AF_INET6) {
        static const char hex[] = "0123456789abcdef";
        char nibbles[65];
        size_t k = 0;
        for (int i = 15; i >= 0; i--) {
            uint8_t byte = client->addr6.s6_addr[i];
            nibbles[k++] = hex[byte & 15];
            nibbles[k++] = '.';
            nibbles[k++] = hex[byte >> 4];
            nibbles[k++] = '.';
        }
        nibbles[k] = '\0';
        n = snprintf(out, out_bytes, "%s%s", nibbles, zone);
    } else {
        return -EINVAL;
    }
    if (n < 0 || (size_t)n >= out_bytes) {
        return -ENOSPC;
    }
    return 0;
}

void
spam_checks_org_domain(const struct spam_config *config, const char *name, char *out,
                       size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    if (config != NULL && config->org_domain != NULL &&
        config->org_domain(config->org_domain_ctx, name, out, out_bytes) >= 0) {
        return;
    }
    size_t len = strlen(name);
    size_t dots[3] = { 0 };
    size_t dot_count = 0;
    for (size_t i = len; i > 0 && dot_count < 3; i--) {
        if (name[i - 1] == '.') {
            dots[dot_count++] = i - 1;
        }
    }
    size_t start = 0;
    if (dot_count >= 2) {
        start = dots[1] + 1; /* last two labels */
        size_t tld_len = len - dots[0] - 1;
        size_t sld_len = dots[0] - dots[1] - 1;
        /* co.uk, com.au, or.jp: a short second level under a country code. */
        if (tld_len == 2 && sld_len <= 3) {
            start = dot_count >= 3 ? dots[2] + 1 : 0;
        }
    }
    (void)snprintf(out, out_bytes, "%s", name + start);
}

static void
check_header_rules(const struct spam_rules *rules, const struct spam_message *m,
                   struct spam_symbols *symbols)
{
    char *value = malloc(SPAM_HEADER_VALUE_BYTES_MAX + 1);
    if (value == NULL) {
        return; /* out of memory: header rules say nothing this time */
    }
    for (size_t i = 0; i < rules->rule_count; i++) {
        const struct spam_rule *r = &rules->rules[i];
        if (r->kind != SPAM_RULE_HEADER) {
            continue;
        }
        size_t pos = 0;
        struct imap_rfc822_field f;
        while (imap_rfc822_header_next(m->header_block, m->header_len, &pos, &f)) {
            if (!span_equals_nocase(f.name, r->field)) {
                continue;
            }
            size_t n = imap_text_decode_header(f.value.ptr, f.value.len, value,
                                               SPAM_HEADER_VALUE_BYTES_MAX);
            for (size_t k = 0; k < n; k++) {
                if (value[k] == '\0') {
                    value[k] = ' ';
                }
            }
            value[n] = '\0';
            regmatch_t span[1] = { { .rm_so = 0, .rm_eo = (regoff_t)n } };
            if (regexec(&r->regex, value, 1, span, REG_STARTEND) == 0) {
                spam_symbols_add(symbols, rules, r->name, 1.0, "");
                break;
            }
        }
    }
    free(value);
}

static void
check_body_rules(const struct spam_rules *rules, const struct spam_message *m,
                 struct spam_symbols *symbols)
{
    size_t n = m->text_len < SPAM_BODY_REGEX_BYTES_MAX ? m->text_len : SPAM_BODY_REGEX_BYTES_MAX;
    for (size_t i = 0; i < rules->rule_count; i++) {
        const struct spam_rule *r = &rules->rules[i];
        if (r->kind != SPAM_RULE_BODY) {
            continue;
        }
        /* REG_STARTEND bounds the bytes read; the text holds no NUL. */
        regmatch_t span[1] = { { .rm_so = 0, .rm_eo = (regoff_t)n } };
        if (regexec(&r->regex, m->text, 1, span, REG_STARTEND) == 0) {
            spam_symbols_add(symbols, rules, r->name, 1.0, "");
        }
    }
}

/* Loopback, private, link-local and unspecified addresses are never
 * looked up in public lists (they are ours or meaningless there). */
static bool
client_is_listable(const struct spam_client *client)
{
    if (client->family == AF_INET) {
        uint32_t a = ntohl(client->addr4.s_addr);
        uint32_t o1 = a >> 24;
        uint32_t o2 = (a >> 16) & 255;
        if (o1 == 0 || o1 == 10 || o1 == 127 || (o1 == 169 && o2 == 254) ||
            (o1 == 172 && o2 >= 16 && o2 <= 31) || (o1 == 192 && o2 == 168) ||
            (o1 == 100 && o2 >= 64 && o2 <= 127)) {
            return false;
        }
        return true;
    }
    if (client->family == AF_INET6) {
        const struct in6_addr *a = &client->addr6;
        if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
            (a->s6_addr[0] & 0xfe) == 0xfc) {
            return false;
        }
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct spam_client v4 = { .family = AF_INET };
            memcpy(&v4.addr4.s_addr, a->s6_addr + 12, 4);
            return client_is_listable(&v4);
        }
        return true;
    }
    return false;
}

/* True when an earlier rule of the same kind has the same zone. */
static bool
zone_seen_before(const struct spam_rules *rules, size_t index)
{
    const struct spam_rule *r = &rules->rules[index];
    for (size_t i = 0; i < index; i++) {
        if (rules->rules[i].kind == r->kind && strcmp(rules->rules[i].zone, r->zone) == 0) {
            return true;
        }
    }
    return false;
}
