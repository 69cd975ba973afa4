/*
 * bench/bench_args.c - the value parsers the command lines of toaster-bench
 * smtp and imap share.
 *
 * Owns nothing and allocates nothing: results go into the caller's
 * buffers. Runs once on the main thread while the options are parsed.
 * Limits: list items and hosts are copied into fixed buffers (the caller's
 * item_bytes, INET6_ADDRSTRLEN + 2), longer ones are refused.
 */
#include "bench/bench_args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_BYTES_MAX (INET6_ADDRSTRLEN + 2)

int
bench_args_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;

    if (text[0] < '0' || text[0] > '9') {
        return -EINVAL;
    }
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max) {
        return -EINVAL;
    }
    *out = (uint64_t)n;
    return 0;
}

int
bench_args_double(const char *text, double min, double max, double *out)
{
    char *end = NULL;

    errno = 0;
    double d = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(d) || d < min || d > max) {
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int
bench_args_address(const char *text, struct sockaddr_storage *out, socklen_t *bytes_out)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        *bytes_out = sizeof(*in4);
        return 0;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        *bytes_out = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

int
bench_args_host_port(const char *text, struct sockaddr_storage *out, socklen_t *bytes_out,
                     char *text_out, size_t text_bytes)
{
    char host[HOST_BYTES_MAX];
    const char *port_text;
    size_t host_bytes;
    uint64_t port;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            return -EINVAL;
        }
        host_bytes = (size_t)(close - text - 1);
        if (host_bytes == 0 || host_bytes >= sizeof(host)) {
            return -EINVAL;
        }
        memcpy(host, text + 1, host_bytes);
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || strchr(text, ':') != colon) {
            return -EINVAL; /* no port, or an IPv6 literal without brackets */
        }
        host_bytes = (size_t)(colon - text);
        if (host_bytes == 0 || host_bytes >= sizeof(host)) {
            return -EINVAL;
        }
        memcpy(host, text, host_bytes);
        port_text = colon + 1;
    }
    host[host_bytes] = '\0';
    if (bench_args_u64(port_text, 1, 65535, &port) < 0) {
        return -EINVAL;
    }
    if (bench_args_address(host, out, bytes_out) < 0) {
        return -EINVAL;
    }
    if (out->ss_family == AF_INET) {
        ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
        (void)snprintf(text_out, text_bytes, "%s:%" PRIu64, host, port);
    } else {
        ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
        (void)snprintf(text_out, text_bytes, "[%s]:%" PRIu64, host, port);
    }
    return 0;
}

int
bench_args_list_next(const char **cursor, char *item, size_t item_bytes)
{
    const char *p = *cursor;

    if (*p == '\0') {
        return 0;
    }
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= item_bytes) {
        return -EINVAL;
    }
    memcpy(item, p, n);
    item[n] = '\0';
    p += n;
    if (*p == ',') {
        p++;
        if (*p == '\0') {
            return -EINVAL;
        }
    }
    *cursor = p;
    return 1;
}

int
bench_args_sources(const char *text, sa_family_t family, struct sockaddr_storage *sources,
                   uint32_t sources_max, uint32_t *count_out, socklen_t *bytes_out)
{
    const char *cursor = text;
    char item[HOST_BYTES_MAX];
    uint32_t count = 0;
    int rc;

    *count_out = 0;
    while ((rc = bench_args_list_next(&cursor, item, sizeof(item))) > 0) {
        if (count == sources_max) {
            return -EINVAL;
        }
        char *host = item;
        size_t n = strlen(item);
        if (host[0] == '[' && host[n - 1] == ']') {
            host[n - 1] = '\0';
            host++;
        }
        if (bench_args_address(host, &sources[count], bytes_out) < 0 ||
            sources[count].ss_family != family) {
            return -EINVAL;
        }
        count++;
    }
    if (rc < 0 || count == 0) {
        return -EINVAL;
    }
    *count_out = count;
    return 0;
}

int
bench_args_usage_error(const char *command, const char *option, const char *value, const char *why)
{
    if (value != NULL) {
        (void)fprintf(stderr, "toaster-bench %s: %s %s: %s\n", command, option, value, why);
    } else {
        (void)fprintf(stderr, "toaster-bench %s: %s %s\n", command, option, why);
    }
    return -EINVAL;
}
