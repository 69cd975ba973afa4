/*
 * proto/http/mta_sts_policy.h - the MTA-STS policy we publish for the
 * domains we host (RFC 8461 3.2), served at
 * https://mta-sts.<domain>/.well-known/mta-sts.txt, and the id of its
 * "_mta-sts" TXT record (3.1), derived from the policy text so that it
 * changes exactly when the policy does.
 *
 * Pure: no I/O, no allocation (the id's SHA-256 through OpenSSL).
 */
#ifndef TOASTER_PROTO_HTTP_MTA_STS_POLICY_H
#define TOASTER_PROTO_HTTP_MTA_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MTA_STS_POLICY_BYTES_MAX 4096u    /* ours; RFC 8461 allows 64 KiB */
#define MTA_STS_POLICY_MX_MAX 16u         /* mx lines */
#define MTA_STS_POLICY_MAX_AGE_MAX 31557600u /* RFC 8461 3.2: about a year */
#define MTA_STS_POLICY_ID_BYTES 21u       /* 20 hex digits and NUL */

/* mode: "testing", "enforce" or "none"; mx: a comma- or blank-separated
 * list of MX patterns ("mx.example.com", "*.example.net"). */
struct mta_sts_policy_config {
    const char *mode;
    const char *mx;
    uint64_t max_age_s;
};

struct config;

/* The policy the configuration asks for (mta_sts_mode, mta_sts_mx with ""
 * meaning myhostname, mta_sts_max_age). The strings are the config's. */
void mta_sts_policy_config_from(const struct config *config, struct mta_sts_policy_config *out);

/* Whether the configuration makes a valid policy: a known mode, 1 to
 * MTA_STS_POLICY_MX_MAX patterns of LDH labels (a leading "*." allowed),
 * max_age at most MTA_STS_POLICY_MAX_AGE_MAX. On false, *reason says why. */
bool mta_sts_policy_config_ok(const struct mta_sts_policy_config *config, const char **reason);

/* The policy text, CRLF lines:
 *   version: STSv1 / mode: M / mx: P (one per pattern) / max_age: N
 * Returns its length, -EINVAL (config not ok), -ENOSPC. */
int mta_sts_policy_text(const struct mta_sts_policy_config *config, char *out, size_t out_bytes);

/* The TXT record's id for a policy text: the first 20 hex digits of its
 * SHA-256. Returns 0 or -EIO. */
int mta_sts_policy_id(const char *text, size_t len, char out[MTA_STS_POLICY_ID_BYTES]);

#endif
