/*
 * proto/smtp/mta_sts.h - MTA-STS (RFC 8461) as text: the "_mta-sts" TXT
 * record (section 3.1), the policy file a domain serves at
 * https://mta-sts.<domain>/.well-known/mta-sts.txt (section 3.2), and
 * whether an MX host is one the policy names (section 4.1). The fetching,
 * caching and enforcing are the delivery agent's; this reads bytes only.
 *
 * Pure: no I/O, no allocation. Bounds: MTA_STS_POLICY_BYTES_MAX of policy
 * (the RFC's 64 KiB), MTA_STS_MX_MAX patterns, names of 253 octets.
 */
#ifndef TOASTER_PROTO_SMTP_MTA_STS_H
#define TOASTER_PROTO_SMTP_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTA_STS_POLICY_BYTES_MAX (64u * 1024u)
#define MTA_STS_MX_MAX 64u
#define MTA_STS_NAME_BYTES 254u /* 253 octets + NUL */
#define MTA_STS_ID_BYTES 33u    /* 1*32 alphanumerics + NUL */
#define MTA_STS_MAX_AGE_MAX 31557600u /* one year, section 3.2 */
#define MTA_STS_ERROR_BYTES 160u

enum mta_sts_mode {
    MTA_STS_MODE_NONE,    /* the domain withdraws its policy */
    MTA_STS_MODE_TESTING, /* check and report, deliver anyway */
    MTA_STS_MODE_ENFORCE, /* only to a listed MX, over verified TLS */
};

struct mta_sts_policy {
    enum mta_sts_mode mode;
    uint32_t max_age; /* seconds */
    size_t mx_count;
    char mx[MTA_STS_MX_MAX][MTA_STS_NAME_BYTES]; /* lower case; "*.example.com" kept as written */
};

/* The id of an "_mta-sts" TXT record ("v=STSv1; id=20160831085700Z;")
 * into id_out. Returns 0, or -EINVAL when the record is not an STSv1
 * record (it must start with "v=STSv1"; such records are ignored) or has
 * no valid id. Unknown fields are ignored. */
int mta_sts_txt_parse(const char *text, size_t len, char id_out[MTA_STS_ID_BYTES]);

/* The policy file text[0..len) into policy_out. Lines end in LF or CRLF;
 * "version: STSv1", "mode" and "max_age" are required, and at least one
 * "mx" unless the mode is none; unknown fields are ignored; a field given
 * twice (but mx) is an error. Returns 0, or -EINVAL / -E2BIG with the
 * reason and line in err (a policy that fails to parse is treated as no
 * policy, section 3.3). */
int mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *policy_out,
                         char *err, size_t err_bytes);

/* Whether host (an MX name, a trailing dot allowed, any case) matches one
 * of the policy's mx patterns: equal, or "*.suffix" with exactly one more
 * label on the left (section 4.1). */
bool mta_sts_mx_matches(const struct mta_sts_policy *policy, const char *host);

#endif
