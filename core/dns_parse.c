/*
 * core/dns_parse.c - DNS results, name rules and the reader of raw DNS
 * responses (see dns_parse.h).
 *
 * The response reader trusts nothing in the message: every offset is
 * checked against its length, a compression pointer must point before the
 * start of the name segment that holds it (so a chain of pointers strictly
 * moves backwards and cannot loop), extended label types are refused, and
 * the wire form of a name is bounded by 255 octets (RFC 1035 2.3.4).
 * Every loop is bounded by the message length, DNS_CNAME_HOPS_MAX or
 * DNS_ANSWER_RECORDS_MAX. Pure: any thread; one scratch allocation per
 * response, freed before returning.
 */
#include "core/dns_parse.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"
#include "core/assertions.h"

#define DNS_HEADER_BYTES 12
#define DNS_WIRE_NAME_BYTES_MAX 255
#define DNS_POINTER_HOPS_MAX 64
#define DNS_CLASS_IN 1
#define DNS_TYPE_CNAME_WIRE 5
#define DNS_TYPE_SOA_WIRE 6

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3

static_assert(DNS_NAME_BYTES_MAX + 2 == DNS_WIRE_NAME_BYTES_MAX,
              "presentation form drops the first length octet and the root");

/* One resource record as found in a message: where its data is. */
struct dns_rr {
    char     owner[DNS_NAME_BYTES_MAX + 1];
    bool     is_owner_clean;
    uint16_t type;
    uint16_t klass;
    uint32_t ttl;
    size_t   rdata_offset;
    uint16_t rdata_len;
};

/* ---- names ------------------------------------------------------------- */

/* A character allowed inside a label of a name we hand out. */
static bool
dns_label_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '.' && c != '\\';
}

int
dns_name_normalize(const char *name, char *out)
{
    ASSERT(name != NULL);
    ASSERT(out != NULL);
    size_t len = strnlen(name, DNS_NAME_BYTES_MAX + 2);
    if (len > 0 && name[len - 1] == '.') {
        len--; /* the root's dot is implied */
    }
    if (len == 0 || len > DNS_NAME_BYTES_MAX) {
        return -EINVAL;
    }
    size_t label_len = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label_len == 0) {
                return -EINVAL;
            }
            label_len = 0;
        } else if (!dns_label_char_ok(c)) {
            return -EINVAL;
        } else if (++label_len > DNS_LABEL_BYTES_MAX) {
            return -EINVAL;
        }
        out[i] = (char)ascii_lower(c);
    }
    if (label_len == 0) {
        return -EINVAL; /* "a..", or a name that was only dots */
    }
    out[len] = '\0';
    return 0;
}

/* ---- results ------------------------------------------------------------ */

static size_t
dns_record_extra_bytes(enum dns_type type, const struct dns_record *record)
{
    switch (type) {
    case DNS_TYPE_PTR:
        return strlen(record->ptr) + 1;
    case DNS_TYPE_MX:
        return strlen(record->mx.host) + 1;
    case DNS_TYPE_TXT:
        return (size_t)record->txt.len + 1;
    case DNS_TYPE_TLSA:
        return (size_t)record->tlsa.len;
    case DNS_TYPE_A:
    case DNS_TYPE_AAAA:
        return 0;
    }
    return 0;
}

int
dns_result_create(const char *name, enum dns_type type, enum dns_status status, uint32_t ttl,
                  bool authenticated, const struct dns_record *records, uint32_t count,
                  struct dns_result **result_out)
{
    ASSERT(count <= DNS_ANSWER_RECORDS_MAX);
    if (status != DNS_STATUS_OK) {
        ASSERT(count == 0);
    }
    size_t records_offset = (sizeof(struct dns_result) + alignof(struct dns_record) - 1) /
                            alignof(struct dns_record) * alignof(struct dns_record);
    size_t bytes = records_offset + (size_t)count * sizeof(struct dns_record);
    for (uint32_t i = 0; i < count; i++) {
        bytes += dns_record_extra_bytes(type, &records[i]);
    }
    /* A response is at most 64 KiB and names expand it at most ~4-fold. */
    ASSERT(bytes < UINT32_MAX);
    struct dns_result *result = calloc(1, bytes);
    if (result == NULL) {
        return -ENOMEM;
    }
    result->refs = 1;
    result->bytes = (uint32_t)bytes;
    if (name != NULL) {
        size_t name_len = strnlen(name, DNS_NAME_BYTES_MAX + 1);
        ASSERT(name_len <= DNS_NAME_BYTES_MAX);
        memcpy(result->name, name, name_len);
    }
    struct dns_record *copies = (struct dns_record *)((char *)result + records_offset);
    char *extra = (char *)(copies + count);
    for (uint32_t i = 0; i < count; i++) {
        copies[i] = records[i];
        size_t n = dns_record_extra_bytes(type, &records[i]);
        switch (type) {
        case DNS_TYPE_PTR:
            memcpy(extra, records[i].ptr, n);
            copies[i].ptr = extra;
            break;
        case DNS_TYPE_MX:
            memcpy(extra, records[i].mx.host, n);
            copies[i].mx.host = extra;
            break;
        case DNS_TYPE_TXT:
            if (records[i].txt.len > 0) {
                memcpy(extra, records[i].txt.text, records[i].txt.len);
            }
            extra[records[i].txt.len] = '\0';
            copies[i].txt.text = extra;
            break;
        case DNS_TYPE_TLSA:
            if (n > 0) {
                memcpy(extra, records[i].tlsa.data, n);
            }
            copies[i].tlsa.data = (const uint8_t *)extra;
            break;
        case DNS_TYPE_A:
        case DNS_TYPE_AAAA:
            break;
        }
        extra += n;
    }
    ASSERT((size_t)(extra - (char *)result) == bytes);
    result->answer.type = type;
    result->answer.status = status;
    result->answer.ttl = ttl;
    result->answer.authenticated = authenticated;
    result->answer.count = count;
    result->answer.records = count > 0 ? copies : NULL;
    *result_out = result;
    return 0;
}

struct dns_result *
dns_result_ref(struct dns_result *result)
{
    ASSERT(result != NULL);
    uint32_t before = __atomic_fetch_add(&result->refs, 1, __ATOMIC_RELAXED);
    ASSERT(before > 0);
    return result;
}

void
dns_result_unref(struct dns_result **result)
{
    if (*result == NULL) {
        return;
    }
    uint32_t before = __atomic_fetch_sub(&(*result)->refs, 1, __ATOMIC_ACQ_REL);
    ASSERT(before > 0);
    if (before == 1) {
        free(*result);
    }
    *result = NULL;
}

/* ---- reading a response --------------------------------------------------- */

static uint16_t
read_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
read_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Read the name at *offset into out (lower case, no trailing dot, "" for
 * the root) and move *offset past it where it sits in the record. Sets
 * *is_clean_out to whether every label keeps the name rules. Returns 0,
 * or -EBADMSG for a name that runs out of the message, points forward or
 * loops, uses an extended label type or exceeds 255 octets. */
static int
read_name(const uint8_t *msg, size_t msg_len, size_t *offset, char *out, bool *is_clean_out)
{
    size_t pos = *offset;
    size_t segment_start = pos;
    size_t wire_len = 1; /* the root's zero octet */
    size_t out_len = 0;
    unsigned hops = 0;
    bool has_jumped = false;
    bool is_clean = true;
    for (;;) {
        if (pos >= msg_len) {
            return -EBADMSG;
        }
        uint8_t c = msg[pos];
        if (c == 0) {
            if (!has_jumped) {
                *offset = pos + 1;
            }
            break;
        }
        if ((c & 0xc0) == 0xc0) {
            if (pos + 1 >= msg_len) {
                return -EBADMSG;
            }
            size_t target = ((size_t)(c & 0x3f) << 8) | msg[pos + 1];
            /* Strictly before this segment: the walk always moves back. */
            if (target >= segment_start || ++hops > DNS_POINTER_HOPS_MAX) {
                return -EBADMSG;
            }
            if (!has_jumped) {
                *offset = pos + 2;
                has_jumped = true;
            }
            pos = target;
            segment_start = target;
            continue;
        }
        if ((c & 0xc0) != 0) {
            return -EBADMSG; /* 0x40 and 0x80: extended label types (RFC 6891) */
        }
        if (pos + 1 + c > msg_len) {
            return -EBADMSG;
        }
        wire_len += (size_t)c + 1;
        if (wire_len > DNS_WIRE_NAME_BYTES_MAX) {
            return -EBADMSG;
        }
        if (out_len > 0) {
            out[out_len++] = '.';
        }
        for (size_t i = 0; i < c; i++) {
            unsigned char b = msg[pos + 1 + i];
            if (!dns_label_char_ok(b)) {
                is_clean = false;
            }
            out[out_len++] = (char)ascii_lower(b);
        }
        pos += 1 + (size_t)c;
    }
    ASSERT(out_len <= DNS_NAME_BYTES_MAX);
    out[out_len] = '\0';
    *is_clean_out = is_clean;
    return 0;
}

static int
read_rr(const uint8_t *msg, size_t msg_len, size_t *offset, struct dns_rr *rr)
{
    int rc = read_name(msg, msg_len, offset, rr->owner, &rr->is_owner_clean);
    if (rc != 0) {
        return rc;
    }
    size_t pos = *offset;
    if (msg_len - pos < 10) {
        return -EBADMSG;
    }
    rr->type = read_u16(msg + pos);
    rr->klass = read_u16(msg + pos + 2);
    rr->ttl = read_u32(msg + pos + 4);
    if (rr->ttl > DNS_TTL_WIRE_MAX) {
        rr->ttl = 0;
    }
    rr->rdata_len = read_u16(msg + pos + 8);
    rr->rdata_offset = pos + 10;
    if (rr->rdata_len > msg_len - rr->rdata_offset) {
        return -EBADMSG;
    }
    *offset = rr->rdata_offset + rr->rdata_len;
    return 0;
}

/* A name inside rdata that must end exactly at the rdata's end. */
static int
read_rdata_name(const uint8_t *msg, size_t msg_len, const struct dns_rr *rr, size_t start,
                char *out, bool *is_clean_out)
{
    size_t end = rr->rdata_offset + rr->rdata_len;
    size_t pos = start;
    /* Read within the rdata: a name may point back into the message, but
     * its own labels must not run past the record. */
    int rc = read_name(msg, end, &pos, out, is_clean_out);
    if (rc != 0 || pos != end) {
        return -EBADMSG;
    }
    (void)msg_len;
    return 0;
}

/* Scratch for one response: the records found and the bytes they point to. */
struct dns_parse_scratch {
    struct dns_record records[DNS_ANSWER_RECORDS_MAX];
    size_t            arena_used;
    size_t            arena_bytes;
    char             *arena;
};

static char *
scratch_take(struct dns_parse_scratch *scratch, size_t n)
{
    if (n > scratch->arena_bytes - scratch->arena_used) {
        return NULL;
    }
    char *p = scratch->arena + scratch->arena_used;
    scratch->arena_used += n;
    return p;
}

/* Decode one record of the asked type into *record. Returns 1 when taken,
 * 0 when left out (an unclean target name), -EBADMSG when malformed. */
static int
decode_record(const uint8_t *msg, size_t msg_len, enum dns_type type, const struct dns_rr *rr,
              struct dns_parse_scratch *scratch, struct dns_record *record)
{
    const uint8_t *rdata = msg + rr->rdata_offset;
    memset(record, 0, sizeof(*record));
    char name[DNS_NAME_BYTES_MAX + 1];
    bool is_clean = true;
    switch (type) {
    case DNS_TYPE_A:
        if (rr->rdata_len != 4) {
            return -EBADMSG;
        }
        memcpy(&record->a, rdata, 4);
        return 1;
    case DNS_TYPE_AAAA:
        if (rr->rdata_len != 16) {
            return -EBADMSG;
        }
        memcpy(&record->aaaa, rdata, 16);
        return 1;
    case DNS_TYPE_PTR:
    case DNS_TYPE_MX: {
        size_t start = rr->rdata_offset;
        if (type == DNS_TYPE_MX) {
            if (rr->rdata_len < 3) {
                return -EBADMSG;
            }
            record->mx.preference = read_u16(rdata);
            start += 2;
        }
        if (read_rdata_name(msg, msg_len, rr, start, name, &is_clean) != 0) {
            return -EBADMSG;
        }
        if (!is_clean || (type == DNS_TYPE_PTR && name[0] == '\0')) {
            return 0;
        }
        size_t n = strlen(name) + 1;
        char *copy = scratch_take(scratch, n);
        ASSERT(copy != NULL); /* the arena holds a full name per record */
        memcpy(copy, name, n);
        if (type == DNS_TYPE_MX) {
            record->mx.host = copy;
        } else {
            record->ptr = copy;
        }
        return 1;
    }
    case DNS_TYPE_TXT: {
        /* The character-strings joined: never longer than the rdata. */
        char *text = scratch_take(scratch, rr->rdata_len);
        ASSERT(text != NULL);
        uint32_t len = 0;
        size_t pos = 0;
        while (pos < rr->rdata_len) {
            size_t piece = rdata[pos];
            if (piece > (size_t)rr->rdata_len - pos - 1) {
                return -EBADMSG;
            }
            memcpy(text + len, rdata + pos + 1, piece);
            len += (uint32_t)piece;
            pos += 1 + piece;
        }
        record->txt.text = text;
        record->txt.len = len;
        return 1;
    }
    case DNS_TYPE_TLSA:
        if (rr->rdata_len < 3) {
            return -EBADMSG;
        }
        record->tlsa.usage = rdata[0];
        record->tlsa.selector = rdata[1];
        record->tlsa.matching = rdata[2];
        record->tlsa.data = rdata + 3;
        record->tlsa.len = (uint32_t)rr->rdata_len - 3;
        return 1;
    }
    return -EBADMSG;
}

static uint32_t
min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* The negative TTL from the authority section at *offset (RFC 2308 5):
 * min(SOA TTL, SOA MINIMUM), 0 without an SOA. -EBADMSG if malformed. */
static int
negative_ttl(const uint8_t *msg, size_t msg_len, size_t offset, uint16_t ns_count,
             uint32_t *ttl_out)
{
    *ttl_out = 0;
    struct dns_rr rr;
    char name[DNS_NAME_BYTES_MAX + 1];
    bool is_clean = true;
    for (uint16_t i = 0; i < ns_count; i++) {
        int rc = read_rr(msg, msg_len, &offset, &rr);
        if (rc != 0) {
            return rc;
        }
        if (rr.type != DNS_TYPE_SOA_WIRE || rr.klass != DNS_CLASS_IN) {
            continue;
        }
        size_t end = rr.rdata_offset + rr.rdata_len;
        size_t pos = rr.rdata_offset;
        if (read_name(msg, end, &pos, name, &is_clean) != 0 ||
            read_name(msg, end, &pos, name, &is_clean) != 0 || end - pos != 20) {
            return -EBADMSG;
        }
        uint32_t minimum = read_u32(msg + pos + 16);
        *ttl_out = min_u32(rr.ttl, minimum > DNS_TTL_WIRE_MAX ? 0 : minimum);
        return 0;
    }
    return 0;
}

static int
make_status(const char *qname, enum dns_type type, enum dns_status status, uint32_t ttl,
            bool authenticated, struct dns_result **result_out)
{
    return dns_result_create(qname, type, status, ttl, authenticated, NULL, 0, result_out);
}

int
dns_parse_response(const uint8_t *msg, size_t msg_len, enum dns_type type, const char *qname,
                   uint32_t ttl_max_s, uint32_t negative_ttl_max_s,
                   struct dns_result **result_out)
{
    ASSERT(qname != NULL);
    ASSERT(strlen(qname) <= DNS_NAME_BYTES_MAX);
    if (msg_len < DNS_HEADER_BYTES) {
        return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
    }
    bool is_response = (msg[2] & 0x80) != 0;
    unsigned opcode = (msg[2] >> 3) & 0x0f;
    bool is_truncated = (msg[2] & 0x02) != 0;
    bool authenticated = (msg[3] & 0x20) != 0;
    unsigned rcode = msg[3] & 0x0f;
    uint16_t qd_count = read_u16(msg + 4);
    uint16_t an_count = read_u16(msg + 6);
    uint16_t ns_count = read_u16(msg + 8);
    if (!is_response || opcode != 0 || qd_count > 1) {
        return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
    }
    size_t offset = DNS_HEADER_BYTES;
    if (qd_count == 1) {
        char name[DNS_NAME_BYTES_MAX + 1];
        bool is_clean = true;
        if (read_name(msg, msg_len, &offset, name, &is_clean) != 0 || msg_len - offset < 4 ||
            strcmp(name, qname) != 0 || read_u16(msg + offset) != (uint16_t)type ||
            read_u16(msg + offset + 2) != DNS_CLASS_IN) {
            return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
        }
        offset += 4;
    }
    if (rcode == DNS_RCODE_SERVFAIL) {
        return make_status(qname, type, DNS_STATUS_TEMPFAIL, 0, false, result_out);
    }
    if (rcode != DNS_RCODE_NOERROR && rcode != DNS_RCODE_NXDOMAIN) {
        return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
    }
    if (is_truncated) {
        /* Part of the answer is missing; TCP would have been tried. */
        return make_status(qname, type, DNS_STATUS_TEMPFAIL, 0, false, result_out);
    }

    /* Follow the CNAME chain from the question's name. */
    size_t answer_offset = offset;
    char owner[DNS_NAME_BYTES_MAX + 1];
    memcpy(owner, qname, strlen(qname) + 1);
    uint32_t ttl = ttl_max_s;
    struct dns_rr rr;
    unsigned hops = 0;
    for (;;) {
        size_t pos = answer_offset;
        bool has_link = false;
        for (uint16_t i = 0; i < an_count; i++) {
            if (read_rr(msg, msg_len, &pos, &rr) != 0) {
                return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
            }
            if (rr.type == DNS_TYPE_CNAME_WIRE && rr.klass == DNS_CLASS_IN &&
                strcmp(rr.owner, owner) == 0) {
                char target[DNS_NAME_BYTES_MAX + 1];
                bool is_clean = true;
                if (read_rdata_name(msg, msg_len, &rr, rr.rdata_offset, target, &is_clean) !=
                        0 ||
                    target[0] == '\0') {
                    return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
                }
                memcpy(owner, target, strlen(target) + 1);
                ttl = min_u32(ttl, rr.ttl);
                has_link = true;
                break;
            }
        }
        if (!has_link) {
            break;
        }
        if (++hops > DNS_CNAME_HOPS_MAX) {
            /* A loop or an absurd chain: not an answer we can use. */
            return make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
        }
    }

    struct dns_parse_scratch *scratch = malloc(sizeof(*scratch));
    if (scratch == NULL) {
        return -ENOMEM;
    }
    /* TXT text never exceeds its rdata (so the message), names need at
     * most a full name each. */
    scratch->arena_bytes = msg_len + (size_t)DNS_ANSWER_RECORDS_MAX * (DNS_NAME_BYTES_MAX + 1);
    scratch->arena_used = 0;
    scratch->arena = malloc(scratch->arena_bytes);
    if (scratch->arena == NULL) {
        free(scratch);
        return -ENOMEM;
    }
    uint32_t count = 0;
    int rc = 0;
    bool is_malformed = false;
    offset = answer_offset;
    for (uint16_t i = 0; i < an_count && !is_malformed; i++) {
        if (read_rr(msg, msg_len, &offset, &rr) != 0) {
            is_malformed = true;
            break;
        }
        if (rr.type != (uint16_t)type || rr.klass != DNS_CLASS_IN || strcmp(rr.owner, owner) != 0) {
            continue;
        }
        if (count == DNS_ANSWER_RECORDS_MAX) {
            is_malformed = true;
            break;
        }
        int taken = decode_record(msg, msg_len, type, &rr, scratch, &scratch->records[count]);
        if (taken < 0) {
            is_malformed = true;
        } else if (taken == 1) {
            count++;
            ttl = min_u32(ttl, rr.ttl);
        }
    }
    uint32_t neg_ttl = 0;
    if (!is_malformed && (rcode == DNS_RCODE_NXDOMAIN || count == 0) &&
        negative_ttl(msg, msg_len, offset, ns_count, &neg_ttl) != 0) {
        is_malformed = true;
    }
    if (is_malformed) {
        rc = make_status(qname, type, DNS_STATUS_PERMFAIL, 0, false, result_out);
    } else if (rcode == DNS_RCODE_NXDOMAIN) {
        rc = make_status(qname, type, DNS_STATUS_NXDOMAIN, min_u32(neg_ttl, negative_ttl_max_s),
                         authenticated, result_out);
    } else if (count == 0) {
        rc = make_status(qname, type, DNS_STATUS_NODATA, min_u32(neg_ttl, negative_ttl_max_s),
                         authenticated, result_out);
    } else {
        rc = dns_result_create(qname, type, DNS_STATUS_OK, ttl, authenticated, scratch->records,
                               count, result_out);
    }
    free(scratch->arena);
    free(scratch);
    return rc;
}

/* ---- names of types and statuses ------------------------------------------ */

static const struct {
    enum dns_type type;
    const char   *name;
} dns_type_names[] = {
    { DNS_TYPE_A, "A" },     { DNS_TYPE_AAAA, "AAAA" }, { DNS_TYPE_MX, "MX" },
    { DNS_TYPE_TXT, "TXT" }, { DNS_TYPE_PTR, "PTR" },   { DNS_TYPE_TLSA, "TLSA" },
};

const char *
dns_type_name(enum dns_type type)
{
    for (size_t i = 0; i < sizeof(dns_type_names) / sizeof(dns_type_names[0]); i++) {
        if (dns_type_names[i].type == type) {
            return dns_type_names[i].name;
        }
    }
    return "?";
}

int
dns_type_from_name(const char *text, enum dns_type *type_out)
{
    for (size_t i = 0; i < sizeof(dns_type_names) / sizeof(dns_type_names[0]); i++) {
        if (strcasecmp(text, dns_type_names[i].name) == 0) {
            *type_out = dns_type_names[i].type;
            return 0;
        }
    }
    return -EINVAL;
}

const char *
dns_status_name(enum dns_status status)
{
    switch (status) {
    case DNS_STATUS_OK:
        return "OK";
    case DNS_STATUS_NXDOMAIN:
        return "NXDOMAIN";
    case DNS_STATUS_NODATA:
        return "NODATA";
    case DNS_STATUS_TEMPFAIL:
        return "TEMPFAIL";
    case DNS_STATUS_PERMFAIL:
        return "PERMFAIL";
    }
    return "?";
}
