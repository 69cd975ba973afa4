/*
 * proto/http/mail_autoconfig.h - the documents mail clients fetch to set
 * themselves up, generated from the server's configuration:
 *   - Thunderbird autoconfig (clientConfig version 1.1),
 *   - Outlook Autodiscover (the "outlook" response schema 2006a), with the
 *     small bounded extractor of the request's <EMailAddress>,
 *   - an Apple configuration profile (.mobileconfig, com.apple.mail.managed,
 *     unsigned), whose payload UUIDs are name-based (RFC 4122 version 5)
 *     on the address, so the same address always gets the same profile.
 * Plus the e-mail address and domain checks the routes apply first.
 *
 * Pure functions into the caller's buffer: no I/O, no allocation. Every
 * text inserted into XML is escaped. Implicit TLS (RFC 8314) is offered
 * before STARTTLS wherever a client takes the first entry.
 */
#ifndef TOASTER_PROTO_HTTP_MAIL_AUTOCONFIG_H
#define TOASTER_PROTO_HTTP_MAIL_AUTOCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX 254u  /* RFC 5321 4.5.3.1.3 path, less the <> */
#define MAIL_AUTOCONFIG_LOCAL_BYTES_MAX 64u
#define MAIL_AUTOCONFIG_DOMAIN_BYTES_MAX 253u
#define MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX (16u * 1024u) /* every document fits */
#define MAIL_AUTOCONFIG_UUID_BYTES 37u                   /* 36 characters and NUL */

/* Where clients connect. A port 0 is a service not offered. */
struct mail_autoconfig_server {
    const char *hostname;      /* myhostname */
    uint16_t imaps_port;       /* IMAP, implicit TLS */
    uint16_t imap_port;        /* IMAP, STARTTLS (plaintext without TLS) */
    uint16_t submissions_port; /* SMTP submission, implicit TLS */
    uint16_t submission_port;  /* SMTP submission, STARTTLS (plaintext without TLS) */
    bool has_tls;              /* false: only the plaintext ports, marked so */
};

struct config;

/* The server as the configuration describes it: myhostname, and the port
 * of the first address of imaps_listen, imap_listen, submissions_listen and
 * submission_listen (0 where a list is empty). TLS is always on: toasterd
 * makes a self-signed certificate when none is configured. */
void mail_autoconfig_server_from_config(const struct config *config,
                                        struct mail_autoconfig_server *out);

/* Whether domain is a host name we put in a document: LDH labels of 1..63
 * bytes, at most MAIL_AUTOCONFIG_DOMAIN_BYTES_MAX, no trailing dot. */
bool mail_autoconfig_domain_ok(const char *domain, size_t len);

/* Check an address "local@domain": a dot-atom local part (RFC 5322 3.2.3)
 * of at most 64 bytes, '@', a domain as above, at most 254 in all. Writes
 * it to out (NUL-terminated, the domain in lower case) and sets *at_out to
 * the index of the '@'. Returns 0 or -EINVAL. */
int mail_autoconfig_address_normalize(const char *address, size_t len,
                                      char out[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1],
                                      size_t *at_out);

/* Thunderbird's config-v1.1.xml for domain (checked by the caller).
 * Returns the length written, or -ENOSPC. */
int mail_autoconfig_thunderbird(const struct mail_autoconfig_server *server, const char *domain,
                                char *out, size_t out_bytes);

/* The address in an Autodiscover request body: the text of the first
 * <EMailAddress> element (any namespace prefix), blanks trimmed, copied to
 * out. Only the first MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX bytes of body are
 * looked at. Returns its length, -ENOENT (no such element, or it does not
 * end), -EINVAL (markup or an entity inside it), -ENOSPC. */
int mail_autoconfig_autodiscover_address(const char *body, size_t len, char *out,
                                         size_t out_bytes);

/* Outlook's Autodiscover answer (responseschema 2006a) for address
 * (normalized by mail_autoconfig_address_normalize). Returns the length
 * written, or -ENOSPC. */
int mail_autoconfig_autodiscover(const struct mail_autoconfig_server *server, const char *address,
                                 char *out, size_t out_bytes);

/* The RFC 4122 version 5 UUID of name in the URL namespace, upper case
 * (Apple's profiles write them so). Returns 0 or -EIO (the digest failed). */
int mail_autoconfig_uuid(const char *name, char out[MAIL_AUTOCONFIG_UUID_BYTES]);

/* The .mobileconfig profile (a property list, unsigned) for address
 * (normalized). Returns the length written, -ENOSPC, or -EIO. */
int mail_autoconfig_mobileconfig(const struct mail_autoconfig_server *server,
                                 const char *address, char *out, size_t out_bytes);

#endif
