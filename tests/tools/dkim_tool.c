/*
 * tests/tools/dkim_tool.c - the DKIM signer and verifier from the command
 * line, for the interoperability tests (tests/integration/test_dkim.py)
 * and for people:
 *
 *   dkim_tool sign --key PEM --domain D --selector S [--canon H/B]
 *                  [--time T] [--expire SECONDS] MESSAGE
 *       prints the DKIM-Signature field(s) to prepend (CRLF line ends)
 *   dkim_tool verify [--time T] [--dns NAME=FILE]... [--dns-tempfail NAME]
 *                  MESSAGE
 *       one line per result: the Authentication-Results fragment; exit 0
 *       when there is at least one result and all pass, else 1
 *   dkim_tool record --key PEM
 *       prints the key record (v=DKIM1; k=...; p=...) of a private key
 *
 * Key records come from files (a DNS answer of one TXT record each); any
 * other name is NXDOMAIN. Exit 2 on usage or I/O errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "filters/dkim_keys.h"
#include "filters/dkim_sign.h"
#include "filters/dkim_verify.h"
#include "tests/unit/test_dkim_dns.h"

int main(int argc, char **argv);

static int
usage(void)
{
    (void)fprintf(stderr, "usage: dkim_tool sign --key PEM --domain D --selector S [--canon H/B]\n"
                          "                      [--time T] [--expire SECONDS] MESSAGE\n"
                          "       dkim_tool verify [--time T] [--dns NAME=FILE]... "
                          "[--dns-tempfail NAME] MESSAGE\n"
                          "       dkim_tool record --key PEM\n");
    return 2;
}

static char *
read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = malloc(65536);
    size_t n = buf != NULL ? fread(buf, 1, 65535, f) : 0;
    (void)fclose(f);
    if (buf != NULL) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            n--;
        }
        buf[n] = '\0';
    }
    *len_out = n;
    return buf;
}

static int
parse_canon(const char *text, struct dkim_sign_options *options)
{
    char header[16] = "";
    char body[16] = "";
    if (sscanf(text, "%15[a-z]/%15[a-z]", header, body) < 1) {
        return -EINVAL;
    }
    if (body[0] == '\0') {
        (void)snprintf(body, sizeof(body), "simple");
    }
    const char *names[2] = {header, body};
    enum dkim_canon *targets[2] = {&options->canon_header, &options->canon_body};
    for (int i = 0; i < 2; i++) {
        if (strcmp(names[i], "relaxed") == 0) {
            *targets[i] = DKIM_CANON_RELAXED;
        } else if (strcmp(names[i], "simple") == 0) {
            *targets[i] = DKIM_CANON_SIMPLE;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

static int
sign_command(int argc, char **argv)
{
    const char *key_path = NULL;
    const char *domain = NULL;
    const char *selector = NULL;
    const char *message = NULL;
    struct dkim_sign_options options;
    dkim_sign_options_default(&options);
    for (int i = 0; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--key") == 0 && next != NULL) {
            key_path = argv[++i];
        } else if (strcmp(argv[i], "--domain") == 0 && next != NULL) {
            domain = argv[++i];
        } else if (strcmp(argv[i], "--selector") == 0 && next != NULL) {
            selector = argv[++i];
        } else if (strcmp(argv[i], "--canon") == 0 && next != NULL) {
            if (parse_canon(argv[++i], &options) != 0) {
                return usage();
            }
        } else if (strcmp(argv[i], "--time") == 0 && next != NULL) {
            options.now_s = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--expire") == 0 && next != NULL) {
            options.expire_after_s = strtoull(argv[++i], NULL, 10);
        } else if (argv[i][0] != '-' && message == NULL) {
            message = argv[i];
        } else {
            return usage();
        }
    }
    if (key_path == NULL || domain == NULL || selector == NULL || message == NULL) {
        return usage();
    }
    char value[2048];
    (void)snprintf(value, sizeof(value), "%s %s %s", domain, selector, key_path);
    const char *values[1] = {value};
    struct dkim_keys *keys = NULL;
    char err[512];
    if (dkim_keys_load(values, 1, &keys, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "dkim_tool: %s\n", err);
        return 2;
    }
    const struct dkim_key *key = NULL;
    (void)dkim_keys_for_domain(keys, domain, &key, 1);
    int fd = open(message, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        (void)fprintf(stderr, "dkim_tool: %s: %s\n", message, strerror(errno));
        dkim_keys_destroy(&keys);
        return 2;
    }
    static char out[DKIM_SIGN_FIELD_BYTES_MAX];
    size_t len = 0;
    int rc = dkim_sign(&key, 1, fd, &options, out, sizeof(out), &len);
    (void)close(fd);
    dkim_keys_destroy(&keys);
    if (rc != 0) {
        (void)fprintf(stderr, "dkim_tool: signing %s: %s\n", message, strerror(-rc));
        return 2;
    }
    if (fwrite(out, 1, len, stdout) != len || fflush(stdout) != 0) {
        return 2;
    }
    return 0;
}

static int
verify_command(int argc, char **argv)
{
    static struct test_dns dns;
    const char *message = NULL;
    uint64_t now_s = (uint64_t)time(NULL);
    for (int i = 0; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--dns") == 0 && next != NULL) {
            char *spec = argv[++i];
            char *eq = strchr(spec, '=');
            if (eq == NULL) {
                return usage();
            }
            *eq = '\0';
            size_t len = 0;
            char *text = read_file(eq + 1, &len);
            if (text == NULL) {
                (void)fprintf(stderr, "dkim_tool: %s: %s\n", eq + 1, strerror(errno));
                return 2;
            }
            if (test_dns_add(&dns, spec, text, len, DNS_STATUS_OK) == NULL) {
                return usage();
            }
        } else if (strcmp(argv[i], "--dns-tempfail") == 0 && next != NULL) {
            if (test_dns_add(&dns, argv[++i], NULL, 0, DNS_STATUS_TEMPFAIL) == NULL) {
                return usage();
            }
        } else if (strcmp(argv[i], "--time") == 0 && next != NULL) {
            now_s = strtoull(argv[++i], NULL, 10);
        } else if (argv[i][0] != '-' && message == NULL) {
            message = argv[i];
        } else {
            return usage();
        }
    }
    if (message == NULL) {
        return usage();
    }
    int fd = open(message, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        (void)fprintf(stderr, "dkim_tool: %s: %s\n", message, strerror(errno));
        return 2;
    }
    struct dkim_verify *ctx = NULL;
    int rc = dkim_verify_prepare(fd, now_s, &ctx);
    (void)close(fd);
    if (rc != 0) {
        (void)fprintf(stderr, "dkim_tool: reading %s: %s\n", message, strerror(-rc));
        return 2;
    }
    struct dns_source source = test_dns_source(&dns);
    const struct dkim_result *results = NULL;
    size_t count = 0;
    rc = dkim_verify_finish(ctx, &source, &results, &count);
    if (rc != 0) {
        (void)fprintf(stderr, "dkim_tool: verify: %s\n", strerror(-rc));
        dkim_verify_destroy(&ctx);
        return 2;
    }
    int status = count > 0 ? 0 : 1;
    if (count == 0) {
        printf("dkim=none\n");
    }
    for (size_t i = 0; i < count; i++) {
        char line[1024];
        (void)dkim_result_format(&results[i], line, sizeof(line));
        printf("%s\n", line);
        if (results[i].code != DKIM_RESULT_PASS) {
            status = 1;
        }
    }
    dkim_verify_destroy(&ctx);
    return status;
}

static int
record_command(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[0], "--key") != 0) {
        return usage();
    }
    EVP_PKEY *pkey = NULL;
    enum dkim_key_type type;
    unsigned bits = 0;
    char err[512];
    if (dkim_keys_read_file(argv[1], &pkey, &type, &bits, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "dkim_tool: %s\n", err);
        return 2;
    }
    char record[DKIM_KEY_RECORD_BYTES_MAX];
    int len = dkim_keys_record(pkey, record, sizeof(record));
    EVP_PKEY_free(pkey);
    if (len < 0) {
        return 2;
    }
    printf("%s\n", record);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        return usage();
    }
    if (strcmp(argv[1], "sign") == 0) {
        return sign_command(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "verify") == 0) {
        return verify_command(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "record") == 0) {
        return record_command(argc - 2, argv + 2);
    }
    return usage();
}
