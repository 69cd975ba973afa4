/*
 * tests/unit/test_chroot_paths.c - chroot = /path (core/chroot_paths): the
 * prefix strip ("/chroot" holds "/chroot/x" but not "/chrootx", trailing
 * and repeated slashes, "." and "..", relative paths, the output bound),
 * config_finish's check naming every key outside the chroot, the
 * all-or-nothing rewrite (data_dir, derived paths, tls_sni, unix: sockets,
 * redis unix:, the special values of sieve_before / postscreen_access,
 * spool_unnamed off, dns_servers from resolv.conf) and a reload's second
 * rewrite of a file read again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/chroot_paths.h"
#include "core/config.h"
#include "tests/unit/unit.h"

static void
set(struct config *c, const char *key, const char *value)
{
    char err[256];
    if (config_set(c, key, value, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "config_set %s = %s: %s\n", key, value, err);
        exit(2);
    }
}

static int
strip(const char *root, const char *path, char *out, size_t out_bytes)
{
    memset(out, 'X', out_bytes);
    out[out_bytes - 1] = '\0';
    return chroot_paths_strip(root, path, out, out_bytes);
}

static void
test_strip(void)
{
    char out[64];
    CHECK(strip("/srv/chroot", "/srv/chroot/data", out, sizeof(out)) == 0);
    CHECK_STR(out, "/data");
    CHECK(strip("/srv/chroot", "/srv/chroot/data/users", out, sizeof(out)) == 0);
    CHECK_STR(out, "/data/users");
    /* The root itself is "/" inside. */
    CHECK(strip("/srv/chroot", "/srv/chroot", out, sizeof(out)) == 0);
    CHECK_STR(out, "/");
    CHECK(strip("/srv/chroot", "/srv/chroot/", out, sizeof(out)) == 0);
    CHECK_STR(out, "/");
    /* A prefix of the name is not a parent directory. */
    CHECK(strip("/srv/chroot", "/srv/chrootx/data", out, sizeof(out)) == -EXDEV);
    CHECK(strip("/srv/chroot", "/srv/chrootx", out, sizeof(out)) == -EXDEV);
    CHECK(strip("/srv/chrootx", "/srv/chroot/data", out, sizeof(out)) == -EXDEV);
    CHECK(strip("/srv/chroot", "/srv/chroo", out, sizeof(out)) == -EXDEV);
    CHECK(strip("/srv/chroot", "/srv", out, sizeof(out)) == -EXDEV);
    CHECK(strip("/srv/chroot", "/etc/passwd", out, sizeof(out)) == -EXDEV);
    CHECK(strip("/srv/chroot", "/", out, sizeof(out)) == -EXDEV);
    /* Trailing, repeated slashes and "." components of either side. */
    CHECK(strip("/srv/chroot/", "/srv/chroot/data", out, sizeof(out)) == 0);
    CHECK_STR(out, "/data");
    CHECK(strip("/srv/chroot///", "//srv//chroot//data/", out, sizeof(out)) == 0);
    CHECK_STR(out, "/data/");
    CHECK(strip("/srv/./chroot", "/srv/chroot/./data", out, sizeof(out)) == 0);
    CHECK_STR(out, "/./data");
    /* Root "/" holds everything, unchanged. */
    CHECK(strip("/", "/var/lib/toaster", out, sizeof(out)) == 0);
    CHECK_STR(out, "/var/lib/toaster");
    /* Relative paths and ".." are refused, whatever they would resolve to. */
    CHECK(strip("/srv/chroot", "data", out, sizeof(out)) == -EINVAL);
    CHECK(strip("/srv/chroot", "./data", out, sizeof(out)) == -EINVAL);
    CHECK(strip("/srv/chroot", "", out, sizeof(out)) == -EINVAL);
    CHECK(strip("srv/chroot", "/srv/chroot/data", out, sizeof(out)) == -EINVAL);
    CHECK(strip("/srv/chroot", "/srv/chroot/../etc/passwd", out, sizeof(out)) == -EINVAL);
    CHECK(strip("/srv/chroot", "/srv/chroot/data/..", out, sizeof(out)) == -EINVAL);
    CHECK(strip("/srv/../chroot", "/chroot/data", out, sizeof(out)) == -EINVAL);
    /* "..." and "..x" are names, not the parent. */
    CHECK(strip("/srv/chroot", "/srv/chroot/.../..x", out, sizeof(out)) == 0);
    CHECK_STR(out, "/.../..x");
    /* The output bound: "/data" needs 6 bytes. */
    CHECK(strip("/srv/chroot", "/srv/chroot/data", out, 6) == 0);
    CHECK_STR(out, "/data");
    CHECK(strip("/srv/chroot", "/srv/chroot/data", out, 5) == -ENAMETOOLONG);
    CHECK(strip("/srv/chroot", "/srv/chroot", out, 2) == 0);
    CHECK_STR(out, "/");
    CHECK(strip("/srv/chroot", "/srv/chroot", out, 1) == -ENAMETOOLONG);
}

/* A configuration with everything under /srv/c. */
static void
inside_config(struct config *c)
{
    config_defaults(c);
    set(c, "chroot", "/srv/c");
    set(c, "user", "vmail");
    set(c, "data_dir", "/srv/c/data");
    set(c, "users_file", "/srv/c/etc/users");
    set(c, "aliases_file", "/srv/c/etc/aliases");
    set(c, "tls_cert", "/srv/c/tls/cert.pem");
    set(c, "tls_key", "/srv/c/tls/key.pem");
    set(c, "tls_sni", "mail.example.org /srv/c/tls/org.pem /srv/c/tls/org.key");
    set(c, "lmtp_listen", "unix:/srv/c/run/lmtp.sock, 127.0.0.1:2424");
    set(c, "redis", "unix:/srv/c/run/redis.sock");
    set(c, "postscreen_access", "192.0.2.0/24 reject");
    set(c, "sieve_global_dir", "/srv/c/sieve/global");
    set(c, "clamav_db", "/srv/c/clamav");
    /* Read before the chroot: may be anywhere. */
    set(c, "public_suffix_file", "/usr/share/publicsuffix/public_suffix_list.dat");
    set(c, "dkim_key", "example.com s1 /etc/dkim/example.com.pem");
}

static void
test_check(void)
{
    char err[2048];
    struct config c;
    inside_config(&c);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.users_path, "/srv/c/etc/users");

    /* Every key outside is named, with its value. */
    inside_config(&c);
    set(&c, "users_file", "/etc/toaster/users");
    set(&c, "tls_key", "/srv/cx/key.pem");
    set(&c, "tls_sni", "b.example /srv/c/b.pem /etc/b.key");
    set(&c, "lmtp_listen", "unix:/run/lmtp.sock");
    set(&c, "redis", "unix:/run/redis.sock");
    set(&c, "postscreen_access", "/etc/postscreen_access");
    set(&c, "sieve_before", "/etc/sieve/before.sieve");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "chroot = /srv/c: ") != NULL);
    CHECK(strstr(err, "users_file (/etc/toaster/users)") != NULL);
    CHECK(strstr(err, "tls_key (/srv/cx/key.pem)") != NULL);
    CHECK(strstr(err, "tls_sni (/etc/b.key)") != NULL);
    CHECK(strstr(err, "lmtp_listen (unix:/run/lmtp.sock)") != NULL);
    CHECK(strstr(err, "redis (unix:/run/redis.sock)") != NULL);
    CHECK(strstr(err, "postscreen_access (/etc/postscreen_access)") != NULL);
    CHECK(strstr(err, "sieve_before (/etc/sieve/before.sieve)") != NULL);
    CHECK(strstr(err, "data_dir") == NULL);
    CHECK(strstr(err, "aliases_file") == NULL);

    /* The default data_dir is relative: refused under a chroot. */
    config_defaults(&c);
    set(&c, "chroot", "/srv/c");
    set(&c, "user", "vmail");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "data_dir (want an absolute path") != NULL);

    /* The derived users path follows data_dir: outside with it. */
    inside_config(&c);
    set(&c, "data_dir", "/var/lib/toaster");
    set(&c, "users_file", "");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "data_dir (/var/lib/toaster)") != NULL);

    /* chroot itself: absolute, not "/", no "..", and with a user. */
    inside_config(&c);
    set(&c, "chroot", "srv/c");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "want an absolute path") != NULL);
    set(&c, "chroot", "/srv/../srv/c");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    set(&c, "chroot", "//");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "the whole file system is no chroot") != NULL);
    inside_config(&c);
    set(&c, "user", "");
    CHECK(config_finish(&c, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "needs user") != NULL);
    /* A trailing slash on chroot changes nothing. */
    inside_config(&c);
    set(&c, "chroot", "/srv/c/");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    /* Without chroot nothing is judged. */
    inside_config(&c);
    set(&c, "chroot", "");
    set(&c, "users_file", "/etc/toaster/users");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
}

static void
test_rewrite(void)
{
    char err[2048];
    static struct config c;
    inside_config(&c);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(c.spool_unnamed);
    CHECK(chroot_paths_rewrite(&c, err, sizeof(err)) == 0);
    CHECK(c.is_chrooted);
    CHECK_STR(c.chroot, "/srv/c"); /* the outside root stays */
    CHECK_STR(c.data_dir, "/data");
    CHECK_STR(c.users_file, "/etc/users");
    CHECK_STR(c.users_path, "/etc/users");
    CHECK_STR(c.aliases_path, "/etc/aliases");
    CHECK_STR(c.control_socket_path, "/data/toasterd.sock");
    CHECK_STR(c.tls_cert, "/tls/cert.pem");
    CHECK_STR(c.tls_key, "/tls/key.pem");
    CHECK_STR(c.tls_sni.entries[0].cert_file, "/tls/org.pem");
    CHECK_STR(c.tls_sni.entries[0].key_file, "/tls/org.key");
    CHECK_STR(c.redis, "unix:/run/redis.sock");
    CHECK_STR(c.postscreen_access, "192.0.2.0/24 reject");
    CHECK_STR(c.sieve_before, "builtin");
    CHECK_STR(c.sieve_global_dir, "/sieve/global");
    CHECK_STR(c.clamav_db, "/clamav");
    CHECK_STR(c.public_suffix_file, "/usr/share/publicsuffix/public_suffix_list.dat");
    CHECK_STR(c.dkim_key.lines[0], "example.com s1 /etc/dkim/example.com.pem");
    CHECK(!c.spool_unnamed);
    const struct listen_list *lmtp = &c.listen[LISTENER_LMTP];
    CHECK(lmtp->count == 2);
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&lmtp->addresses[0].addr;
    CHECK_STR(sun->sun_path, "/run/lmtp.sock");
    CHECK(lmtp->addresses[0].addr_len ==
          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen("/run/lmtp.sock") + 1));
    CHECK_STR(lmtp->addresses[0].text, "unix:/srv/c/run/lmtp.sock"); /* logs: as configured */
    /* Once is enough: a second call changes nothing. */
    CHECK(chroot_paths_rewrite(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.data_dir, "/data");
    /* config_finish again (a reload's merge) keeps the inside paths. */
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.users_path, "/etc/users");

    /* A reload: the file read again names outside paths; rewritten, it
     * equals the running configuration key for key. */
    static struct config next;
    inside_config(&next);
    set(&next, "users_file", "/srv/c/etc/users2");
    CHECK(config_finish(&next, err, sizeof(err)) == 0);
    CHECK(chroot_paths_rewrite(&next, err, sizeof(err)) == 0);
    CHECK_STR(next.users_path, "/etc/users2");
    for (size_t i = 0; i < config_key_count(); i++) {
        bool is_users = strcmp(config_key_name(i), "users_file") == 0;
        if (config_key_equal(&c, &next, i) == is_users) {
            (void)fprintf(stderr, "key %s\n", config_key_name(i));
        }
        CHECK(config_key_equal(&c, &next, i) != is_users);
    }

    /* All or nothing: a path outside leaves the configuration untouched. */
    static struct config bad;
    inside_config(&bad);
    set(&bad, "aliases_file", "/etc/aliases");
    CHECK(chroot_paths_rewrite(&bad, err, sizeof(err)) == -EXDEV);
    CHECK(strstr(err, "aliases_file (/etc/aliases)") != NULL);
    CHECK(!bad.is_chrooted);
    CHECK_STR(bad.data_dir, "/srv/c/data");
    CHECK(bad.spool_unnamed);
    /* Without chroot: nothing. */
    inside_config(&bad);
    set(&bad, "chroot", "");
    CHECK(chroot_paths_rewrite(&bad, err, sizeof(err)) == 0);
    CHECK(!bad.is_chrooted);
    CHECK_STR(bad.data_dir, "/srv/c/data");
}

static void
test_resolv(void)
{
    char path[] = "/tmp/toaster-resolv-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    static const char text[] = "# generated\n"
                               "search example.com\n"
                               "nameserver 192.0.2.53\n"
                               "nameserver\t2001:db8::53 # a comment\n"
                               "nameserver ../../etc/passwd\n"
                               "nameservers 198.51.100.1\n"
                               "options edns0\n"
                               "nameserver fe80::1%eth0";
    CHECK(write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
    (void)close(fd);
    CHECK(chroot_paths_resolv_load(path) == 0);
    char err[512];
    static struct config c;
    inside_config(&c);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(chroot_paths_rewrite(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.dns_servers, "192.0.2.53,2001:db8::53,fe80::1%eth0");
    /* Configured servers win. */
    inside_config(&c);
    set(&c, "dns_servers", "127.0.0.1:5353");
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(chroot_paths_rewrite(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.dns_servers, "127.0.0.1:5353");
    /* The bound: more servers than CHROOT_PATHS_DNS_BYTES hold. */
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    for (int i = 0; i < 60; i++) {
        (void)fprintf(f, "nameserver 203.0.113.%d\n", 100 + i);
    }
    (void)fclose(f);
    CHECK(chroot_paths_resolv_load(path) == -E2BIG);
    /* A file past its bound is refused whole, not read in part. */
    f = fopen(path, "w");
    CHECK(f != NULL);
    for (int i = 0; i < 5000; i++) { /* 75,000 bytes, past the 64 KiB bound */
        (void)fprintf(f, "# padding.....\n");
    }
    (void)fprintf(f, "nameserver 192.0.2.9\n");
    (void)fclose(f);
    CHECK(chroot_paths_resolv_load(path) == -EFBIG);
    (void)unlink(path);
    /* No file: no servers, no error. */
    CHECK(chroot_paths_resolv_load(path) == 0);
    inside_config(&c);
    CHECK(config_finish(&c, err, sizeof(err)) == 0);
    CHECK(chroot_paths_rewrite(&c, err, sizeof(err)) == 0);
    CHECK_STR(c.dns_servers, "");
}

/* The configuration file: realpath, then the strip. */
static void
test_config_file(void)
{
    char dir[] = "/tmp/toaster-chroot-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char root[128], conf[160], link[160], sibling[160], out[256];
    (void)snprintf(root, sizeof(root), "%s/jail", dir);
    (void)snprintf(conf, sizeof(conf), "%s/jail/toasterd.conf", dir);
    (void)snprintf(link, sizeof(link), "%s/link.conf", dir);
    (void)snprintf(sibling, sizeof(sibling), "%s/jailx.conf", dir);
    CHECK(mkdir(root, 0700) == 0);
    FILE *f = fopen(conf, "w");
    CHECK(f != NULL);
    (void)fclose(f);
    f = fopen(sibling, "w");
    CHECK(f != NULL);
    (void)fclose(f);
    CHECK(symlink(conf, link) == 0);
    CHECK(chroot_paths_config_file(root, conf, out, sizeof(out)) == 0);
    CHECK_STR(out, "/toasterd.conf");
    CHECK(chroot_paths_config_file(root, link, out, sizeof(out)) == 0); /* followed */
    CHECK_STR(out, "/toasterd.conf");
    CHECK(chroot_paths_config_file(root, sibling, out, sizeof(out)) == -EXDEV);
    CHECK(chroot_paths_config_file(root, "/nonexistent/toasterd.conf", out, sizeof(out)) ==
          -ENOENT);
    CHECK(chroot_paths_config_file(root, conf, out, 8) == -ENAMETOOLONG);
    (void)unlink(link);
    (void)unlink(sibling);
    (void)unlink(conf);
    (void)rmdir(root);
    (void)rmdir(dir);
}

int
main(void)
{
    test_strip();
    test_check();
    test_rewrite();
    test_resolv();
    test_config_file();
    UNIT_DONE();
}
