/*
 * proto/http/mta_sts_policy.c - the MTA-STS policy we publish and its id
 * (see mta_sts_policy.h).
 */
#include "proto/http/mta_sts_policy.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "core/assertions.h"
#include "core/config.h"

#define MX_PATTERN_BYTES_MAX 253u

/* The next pattern of the list at *pos: its start and length; false at
 * the end. */
static bool
mx_next(const char *list, size_t *pos, const char **start_out, size_t *len_out)
{
    size_t i = *pos;
    while (list[i] == ',' || list[i] == ' ' || list[i] == '\t') {
        i++;
    }
    if (list[i] == '\0') {
        *pos = i;
        return false;
    }
    size_t start = i;
    while (list[i] != '\0' && list[i] != ',' && list[i] != ' ' && list[i] != '\t') {
        i++;
    }
    *start_out = list + start;
    *len_out = i - start;
    *pos = i;
    return true;
}

/* "mx.example.com" or "*.example.com" (RFC 8461 3.2 mx-pattern). */
static bool
mx_pattern_ok(const char *p, size_t len)
{
    if (len >= 2 && p[0] == '*' && p[1] == '.') {
        p += 2;
        len -= 2;
    }
    if (len == 0 || len > MX_PATTERN_BYTES_MAX) {
        return false;
    }
    size_t label_len = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '.') {
            if (label_len == 0 || p[i - 1] == '-') {
                return false;
            }
            label_len = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c == '-' && label_len > 0)) {
            if (++label_len > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return label_len > 0 && p[len - 1] != '-';
}

void
mta_sts_policy_config_from(const struct config *config, struct mta_sts_policy_config *out)
{
    out->mode = config->mta_sts_mode;
    out->mx = config->mta_sts_mx[0] != '\0' ? config->mta_sts_mx : config->myhostname;
    out->max_age_s = config->mta_sts_max_age_s;
}

bool
mta_sts_policy_config_ok(const struct mta_sts_policy_config *config, const char **reason)
{
    if (strcmp(config->mode, "testing") != 0 && strcmp(config->mode, "enforce") != 0 &&
        strcmp(config->mode, "none") != 0) {
        *reason = "mode must be testing, enforce or none";
        return false;
    }
    if (config->max_age_s > MTA_STS_POLICY_MAX_AGE_MAX) {
        *reason = "max_age must be at most 31557600 seconds (RFC 8461)";
        return false;
    }
    size_t pos = 0;
    size_t count = 0;
    const char *start = NULL;
    size_t len = 0;
    while (mx_next(config->mx, &pos, &start, &len)) {
        if (!mx_pattern_ok(start, len)) {
            *reason = "an mx pattern is not a host name (or *.domain)";
            return false;
        }
        if (++count > MTA_STS_POLICY_MX_MAX) {
            *reason = "more than 16 mx patterns";
            return false;
        }
    }
    if (count == 0) {
        *reason = "no mx pattern";
        return false;
    }
    return true;
}

int
mta_sts_policy_text(const struct mta_sts_policy_config *config, char *out, size_t out_bytes)
{
    const char *reason = NULL;
    if (!mta_sts_policy_config_ok(config, &reason)) {
        return -EINVAL;
    }
    size_t at = 0;
    int n = snprintf(out, out_bytes, "version: STSv1\r\nmode: %s\r\n", config->mode);
    if (n < 0 || (size_t)n >= out_bytes) {
        return -ENOSPC;
    }
    at = (size_t)n;
    size_t pos = 0;
    const char *start = NULL;
    size_t len = 0;
    while (mx_next(config->mx, &pos, &start, &len)) {
        n = snprintf(out + at, out_bytes - at, "mx: ");
        if (n < 0 || (size_t)n >= out_bytes - at || len + 2 >= out_bytes - at - (size_t)n) {
            return -ENOSPC;
        }
        at += (size_t)n;
        for (size_t i = 0; i < len; i++) {
            char c = start[i];
            out[at++] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
        }
        out[at++] = '\r';
        out[at++] = '\n';
    }
    n = snprintf(out + at, out_bytes - at, "max_age: %llu\r\n",
                 (unsigned long long)config->max_age_s);
    if (n < 0 || (size_t)n >= out_bytes - at) {
        return -ENOSPC;
    }
    at += (size_t)n;
    return (int)at;
}

int
mta_sts_policy_id(const char *text, size_t len, char out[MTA_STS_POLICY_ID_BYTES])
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    if (EVP_Digest(text, len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
        digest_len < (MTA_STS_POLICY_ID_BYTES - 1) / 2) {
        return -EIO;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < (MTA_STS_POLICY_ID_BYTES - 1) / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[MTA_STS_POLICY_ID_BYTES - 1] = '\0';
    return 0;
}
