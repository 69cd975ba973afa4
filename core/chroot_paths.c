/*
 * core/chroot_paths.c - which configured paths must lie in the chroot, and
 * their rewrite to inside paths (see core/chroot_paths.h).
 *
 * Owns one table (the keys read after the chroot) and the name servers
 * read from resolv.conf before the chroot. Main thread only. Paths are
 * judged lexically: a symbolic link under the chroot that points outside
 * it resolves inside the chroot afterwards, as in Postfix.
 * Limits: CONFIG_STRING_BYTES per path, CHROOT_PATHS_DNS_BYTES of servers,
 * CHROOT_PATHS_RESOLV_BYTES_MAX of resolv.conf.
 */
#define _GNU_SOURCE
#include "core/chroot_paths.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/config.h"
#include "core/fd_io.h"

#define CHROOT_PATHS_RESOLV_BYTES_MAX (64u * 1024u)

/* Plain path keys read after the chroot ("" keeps its default meaning). */
static const struct {
    const char *name;
    size_t      offset;
} chroot_paths_keys[] = {
    { "data_dir", offsetof(struct config, data_dir) },
    { "users_file", offsetof(struct config, users_file) },
    { "aliases_file", offsetof(struct config, aliases_file) },
    { "control_socket", offsetof(struct config, control_socket) },
    { "tls_cert", offsetof(struct config, tls_cert) },
    { "tls_key", offsetof(struct config, tls_key) },
    { "dns_override_file", offsetof(struct config, dns_override_file) },
    { "sieve_after", offsetof(struct config, sieve_after) },
    { "sieve_global_dir", offsetof(struct config, sieve_global_dir) },
    { "clamav_db", offsetof(struct config, clamav_db) },
    { "spam_rules_file", offsetof(struct config, spam_rules_file) },
    { "transport_file", offsetof(struct config, transport_file) },
    { "smtp_sasl_password_file", offsetof(struct config, smtp_sasl_password_file) },
    { "smtp_tls_policy_file", offsetof(struct config, smtp_tls_policy_file) },
    { "smtp_tls_ca_file", offsetof(struct config, smtp_tls_ca_file) },
    /* Derived by config_finish from the keys above. */
    { "users_file", offsetof(struct config, users_path) },
    { "aliases_file", offsetof(struct config, aliases_path) },
    { "control_socket", offsetof(struct config, control_socket_path) },
};

/* Name servers of resolv.conf, comma separated ("" when none were read). */
static char chroot_paths_dns[CHROOT_PATHS_DNS_BYTES];

/* Scratch for the all-or-nothing rewrite: struct config is big. */
static struct config chroot_paths_scratch;

/* A ".." component anywhere in path. */
static bool
chroot_paths_has_dotdot(const char *path)
{
    for (const char *p = path; *p != '\0';) {
        while (*p == '/') {
            p++;
        }
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            return true;
        }
        p += len;
    }
    return false;
}

/* The length of the next component at *p (slashes and "." skipped first). */
static size_t
chroot_paths_component(const char **p)
{
    for (;;) {
        while (**p == '/') {
            (*p)++;
        }
        size_t len = strcspn(*p, "/");
        if (len == 1 && (*p)[0] == '.') {
            (*p)++;
            continue;
        }
        return len;
    }
}

int
chroot_paths_strip(const char *root, const char *path, char *out, size_t out_bytes)
{
    ASSERT(root != NULL && path != NULL && out != NULL && out_bytes > 0);
    if (root[0] != '/' || path[0] != '/' || chroot_paths_has_dotdot(root) ||
        chroot_paths_has_dotdot(path)) {
        return -EINVAL;
    }
    const char *r = root;
    const char *p = path;
    for (;;) {
        size_t root_len = chroot_paths_component(&r);
        if (root_len == 0) {
            break; /* every component of root matched */
        }
        size_t path_len = chroot_paths_component(&p);
        if (path_len != root_len || memcmp(r, p, root_len) != 0) {
            return -EXDEV; /* "/srv/cx" is not under "/srv/c" */
        }
        r += root_len;
        p += path_len;
    }
    while (*p == '/') {
        p++;
    }
    int n = snprintf(out, out_bytes, "/%s", p);
    if (n < 0 || (size_t)n >= out_bytes) {
        return -ENAMETOOLONG;
    }
    return 0;
}

int
chroot_paths_config_file(const char *root, const char *path, char *out, size_t out_bytes)
{
    ASSERT(root != NULL && path != NULL && out != NULL && out_bytes > 0);
    char *real = realpath(path, NULL);
    if (real == NULL) {
        return -errno;
    }
    int rc = chroot_paths_strip(root, real, out, out_bytes);
    free(real);
    return rc;
}

/* The path part of a key's value, or NULL when the value names no file
 * (empty, "builtin", an inline access list, a TCP Redis). */
static const char *
chroot_paths_special_path(const char *name, const char *value)
{
    if (strcmp(name, "sieve_before") == 0) {
        return value[0] != '\0' && strcmp(value, "builtin") != 0 ? value : NULL;
    }
    if (strcmp(name, "postscreen_access") == 0) {
        return value[0] == '/' ? value : NULL;
    }
    if (strcmp(name, "redis") == 0) {
        return strncmp(value, "unix:", 5) == 0 ? value + 5 : NULL;
    }
    return value[0] != '\0' ? value : NULL;
}

/* Rewrite (or, with is_dry, only judge) one value in place: prefix_len
 * bytes of it stay (a "unix:" before the path). Appends the key to bad on
 * failure. Returns 0 or the strip's error. */
static int
chroot_paths_one(const char *root, const char *name, char *value, size_t value_bytes,
                 size_t prefix_len, bool is_dry, char *bad, size_t bad_bytes)
{
    char inside[CONFIG_STRING_BYTES];
    int rc = chroot_paths_strip(root, value + prefix_len, inside, sizeof(inside));
    if (rc == 0 && !is_dry) {
        int n = snprintf(value + prefix_len, value_bytes - prefix_len, "%s", inside);
        ASSERT(n >= 0 && (size_t)n < value_bytes - prefix_len); /* it only got shorter */
    }
    if (rc != 0 && bad_bytes > 0) {
        size_t used = strlen(bad);
        (void)snprintf(bad + used, bad_bytes - used, "%s%s (%s)", used > 0 ? ", " : "", name,
                       rc == -EXDEV ? value : "want an absolute path without \"..\"");
    }
    return rc;
}

/* Every key read after the chroot, judged (is_dry) or rewritten. Returns
 * 0 or the first error, with every bad key listed in bad. */
static int
chroot_paths_walk(struct config *config, bool is_dry, char *bad, size_t bad_bytes)
{
    const char *root = config->chroot;
    int first = 0;
    bad[0] = '\0';
    for (size_t i = 0; i < sizeof(chroot_paths_keys) / sizeof(chroot_paths_keys[0]); i++) {
        char *value = (char *)config + chroot_paths_keys[i].offset;
        if (value[0] == '\0') {
            continue;
        }
        /* The derived paths are only rewritten: their keys were judged. */
        bool is_derived = i >= sizeof(chroot_paths_keys) / sizeof(chroot_paths_keys[0]) - 3;
        int rc = chroot_paths_one(root, chroot_paths_keys[i].name, value, CONFIG_STRING_BYTES, 0,
                                  is_dry, is_derived ? bad + strlen(bad) : bad,
                                  is_derived ? 0 : bad_bytes);
        first = first != 0 ? first : rc;
    }
    static const struct {
        const char *name;
        size_t      offset;
    } specials[] = {
        { "sieve_before", offsetof(struct config, sieve_before) },
        { "postscreen_access", offsetof(struct config, postscreen_access) },
        { "redis", offsetof(struct config, redis) },
    };
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        char *value = (char *)config + specials[i].offset;
        const char *path = chroot_paths_special_path(specials[i].name, value);
        if (path == NULL) {
            continue;
        }
        int rc = chroot_paths_one(root, specials[i].name, value, CONFIG_STRING_BYTES,
                                  (size_t)(path - value), is_dry, bad, bad_bytes);
        first = first != 0 ? first : rc;
    }
    for (size_t i = 0; i < config->tls_sni.count; i++) {
        struct tls_sni_entry *entry = &config->tls_sni.entries[i];
        int rc = chroot_paths_one(root, "tls_sni", entry->cert_file, sizeof(entry->cert_file), 0,
                                  is_dry, bad, bad_bytes);
        first = first != 0 ? first : rc;
        rc = chroot_paths_one(root, "tls_sni", entry->key_file, sizeof(entry->key_file), 0,
                              is_dry, bad, bad_bytes);
        first = first != 0 ? first : rc;
    }
    for (int protocol = 0; protocol < LISTENER_PROTOCOL_COUNT; protocol++) {
        struct listen_list *list = &config->listen[protocol];
        for (size_t i = 0; i < list->count; i++) {
            struct listen_address *address = &list->addresses[i];
            if (address->addr.ss_family != AF_UNIX) {
                continue;
            }
            /* The text stays as configured: logs show the outside path. */
            struct sockaddr_un *sun = (struct sockaddr_un *)&address->addr;
            char inside[sizeof(sun->sun_path)];
            int rc = chroot_paths_strip(root, sun->sun_path, inside, sizeof(inside));
            if (rc != 0) {
                size_t used = strlen(bad);
                (void)snprintf(bad + used, bad_bytes - used, "%s%s (%s)", used > 0 ? ", " : "",
                               "lmtp_listen", address->text);
            } else if (!is_dry) {
                size_t len = strlen(inside);
                memcpy(sun->sun_path, inside, len + 1);
                address->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
            }
            first = first != 0 ? first : rc;
        }
    }
    return first;
}

int
chroot_paths_check(const struct config *config, char *err, size_t err_bytes)
{
    ASSERT(config != NULL);
    const char *root = config->chroot;
    if (root[0] == '\0') {
        return 0;
    }
    char inside[CONFIG_STRING_BYTES];
    if (chroot_paths_strip(root, root, inside, sizeof(inside)) != 0) {
        (void)snprintf(err, err_bytes, "chroot = %s: want an absolute path without \"..\"", root);
        return -EINVAL;
    }
    if (chroot_paths_strip("/", root, inside, sizeof(inside)) == 0 && strcmp(inside, "/") == 0) {
        (void)snprintf(err, err_bytes, "chroot = %s: the whole file system is no chroot; leave "
                       "chroot empty", root);
        return -EINVAL;
    }
    if (config->user[0] == '\0') {
        (void)snprintf(err, err_bytes, "chroot = %s needs user: a process left root inside a "
                       "chroot can leave it; set user (and group) to the mail user", root);
        return -EINVAL;
    }
    memcpy(&chroot_paths_scratch, config, sizeof(chroot_paths_scratch));
    static char bad[2048];
    if (chroot_paths_walk(&chroot_paths_scratch, true, bad, sizeof(bad)) != 0) {
        (void)snprintf(err, err_bytes, "chroot = %s: toasterd reads these after entering the "
                       "chroot, so they must lie under it: %s", root, bad);
        return -EINVAL;
    }
    return 0;
}

/* One "nameserver ADDRESS" value: an IPv4 or IPv6 address, maybe with a
 * %zone; anything else is skipped. */
static bool
chroot_paths_is_address(const char *text, size_t len)
{
    if (len == 0 || len > 64) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool is_ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '.' || c == ':' || c == '%' || c == '-' || c == '_';
        if (!is_ok) {
            return false;
        }
    }
    return true;
}

int
chroot_paths_resolv_load(const char *resolv_path)
{
    ASSERT(resolv_path != NULL);
    chroot_paths_dns[0] = '\0';
    int fd = open(resolv_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    /* Whole or not at all: a part of the file could miss its servers. */
    static char text[CHROOT_PATHS_RESOLV_BYTES_MAX + 1];
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? -errno
             : !S_ISREG(st.st_mode) ? -EINVAL
             : (uint64_t)st.st_size > CHROOT_PATHS_RESOLV_BYTES_MAX ? -EFBIG
                                                                   : 0;
    size_t got = rc == 0 ? (size_t)st.st_size : 0;
    if (rc == 0) {
        rc = fd_read_all(fd, text, got);
    }
    (void)close(fd); /* read only */
    if (rc != 0) {
        return rc == -ENODATA ? -EIO : rc; /* shorter than fstat said: changed under us */
    }
    text[got] = '\0';
    size_t used = 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        if (strncmp(line, "nameserver", 10) == 0 && (line[10] == ' ' || line[10] == '\t')) {
            char *address = line + 10;
            address += strspn(address, " \t");
            size_t len = strcspn(address, " \t\r#;");
            if (chroot_paths_is_address(address, len)) {
                int n = snprintf(chroot_paths_dns + used, sizeof(chroot_paths_dns) - used,
                                 "%s%.*s", used > 0 ? "," : "", (int)len, address);
                if (n < 0 || (size_t)n >= sizeof(chroot_paths_dns) - used) {
                    chroot_paths_dns[0] = '\0';
                    return -E2BIG;
                }
                used += (size_t)n;
            }
        }
        line = next;
    }
    return 0;
}

int
chroot_paths_rewrite(struct config *config, char *err, size_t err_bytes)
{
    ASSERT(config != NULL);
    if (config->chroot[0] == '\0' || config->is_chrooted) {
        return 0;
    }
    memcpy(&chroot_paths_scratch, config, sizeof(chroot_paths_scratch));
    static char bad[2048];
    int rc = chroot_paths_walk(&chroot_paths_scratch, false, bad, sizeof(bad));
    if (rc != 0) {
        (void)snprintf(err, err_bytes, "chroot = %s: these lie outside it: %s", config->chroot,
                       bad);
        return rc;
    }
    if (chroot_paths_scratch.dns_servers[0] == '\0') {
        (void)snprintf(chroot_paths_scratch.dns_servers, sizeof(chroot_paths_scratch.dns_servers),
                       "%s", chroot_paths_dns);
    }
    chroot_paths_scratch.spool_unnamed = false;
    chroot_paths_scratch.is_chrooted = true;
    memcpy(config, &chroot_paths_scratch, sizeof(*config));
    return 0;
}
