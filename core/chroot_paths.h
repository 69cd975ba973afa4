/*
 * core/chroot_paths.h - `chroot = /path`, Postfix style: the configuration
 * names files as they are seen from outside the chroot; toasterd checks at
 * start that every file it reads or writes after the chroot lies under it,
 * and then rewrites those paths once, here, to what they are inside
 * (/srv/toaster/data -> /data). toasterctl runs outside and keeps reading
 * the outside paths of the same file.
 *
 * Read after the chroot, so they must lie under it (config_finish refuses
 * the start, naming every key that points outside): data_dir, users_file,
 * aliases_file, control_socket, tls_cert, tls_key, tls_sni (read again on
 * a reload), lmtp_listen's unix: sockets, redis unix:, dns_override_file,
 * sieve_before, sieve_after, sieve_global_dir, clamav_db, spam_rules_file,
 * postscreen_access (a file), transport_file, smtp_sasl_password_file,
 * smtp_tls_policy_file, smtp_tls_ca_file.
 * The configuration file itself is read again on a reload: it lies under
 * the chroot too (or is a symbolic link to a file there).
 * Read before the chroot, so they may lie anywhere and are left as they
 * are: public_suffix_file, dkim_key, and /etc/resolv.conf when dns_servers
 * is empty (its name servers become dns_servers).
 *
 * Main thread only (start and reload); no I/O but the resolv.conf read.
 * Limits: CONFIG_STRING_BYTES per path, CHROOT_PATHS_DNS_BYTES of servers.
 */
#ifndef TOASTER_CORE_CHROOT_PATHS_H
#define TOASTER_CORE_CHROOT_PATHS_H

#include <stddef.h>

struct config;

#define CHROOT_PATHS_DNS_BYTES 512

/* The path inside root of the absolute path `path`, into out: "/" for root
 * itself. Both are taken lexically (symbolic links are not followed): root
 * "/srv/c" holds "/srv/c" and "/srv/c/x" but not "/srv/cx"; trailing and
 * repeated slashes do not matter. Returns 0, -EINVAL (path or root not
 * absolute, or a ".." component), -EXDEV (path is outside root) or
 * -ENAMETOOLONG (out_bytes too small). */
int chroot_paths_strip(const char *root, const char *path, char *out, size_t out_bytes);

/* The configuration file, read again on every reload, must lie in the
 * chroot too: its inside path into out. Symbolic links are followed here
 * (realpath), so /etc/toaster/toasterd.conf may link to a file in the
 * chroot. Returns 0, -EXDEV (outside root), -ENAMETOOLONG or realpath's
 * -errno. */
int chroot_paths_config_file(const char *root, const char *path, char *out, size_t out_bytes);

/* config_finish's check with chroot set (and the paths not yet rewritten):
 * chroot is an absolute directory other than "/", user is set, and every
 * key read after the chroot lies under it. Returns 0 or -EINVAL with the
 * reason (every key outside, by name) in err. */
int chroot_paths_check(const struct config *config, char *err, size_t err_bytes);

/* Before the chroot: when dns_servers is empty, remember the name servers
 * of resolv_path ("/etc/resolv.conf") for chroot_paths_rewrite, which puts
 * them in dns_servers (the chroot has no resolv.conf of its own to read).
 * A missing file is no error (c-ares then asks 127.0.0.1, as it would).
 * Returns 0 or -errno / -E2BIG (more than CHROOT_PATHS_DNS_BYTES). */
int chroot_paths_resolv_load(const char *resolv_path);

/* Rewrite every path read after the chroot to its inside form, set
 * config->is_chrooted, turn spool_unnamed off (O_TMPFILE files are linked
 * through /proc, which the chroot does not have) and fill an empty
 * dns_servers from chroot_paths_resolv_load. All or nothing: on an error
 * *config is unchanged. Nothing without chroot or when already rewritten.
 * Used at start just before chroot(2) and on every reload for the file
 * read again. Returns 0 or -EINVAL / -EXDEV with the key in err. */
int chroot_paths_rewrite(struct config *config, char *err, size_t err_bytes);

#endif
