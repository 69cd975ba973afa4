/*
 * proto/http/mail_autoconfig.c - mail client configuration documents (see
 * mail_autoconfig.h). Each document is written through a bounded writer
 * that remembers running out of room, so a document is whole or refused
 * (-ENOSPC), never cut.
 */
#include "proto/http/mail_autoconfig.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/config.h"

struct doc {
    char *out;
    size_t len;
    size_t cap;
    bool is_full;
};

static void
doc_bytes(struct doc *d, const char *bytes, size_t len)
{
    if (d->is_full || len > d->cap - d->len) {
        d->is_full = true;
        return;
    }
    memcpy(d->out + d->len, bytes, len);
    d->len += len;
}

static void
doc_text(struct doc *d, const char *text)
{
    doc_bytes(d, text, strlen(text));
}

static void __attribute__((format(printf, 2, 3)))
doc_printf(struct doc *d, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < sizeof(buf)); /* our formats insert no peer text */
    doc_bytes(d, buf, (size_t)n);
}

/* text with XML's five special characters escaped. */
static void
doc_xml(struct doc *d, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        switch (*p) {
        case '&': doc_text(d, "&amp;"); break;
        case '<': doc_text(d, "&lt;"); break;
        case '>': doc_text(d, "&gt;"); break;
        case '"': doc_text(d, "&quot;"); break;
        case '\'': doc_text(d, "&apos;"); break;
        default: doc_bytes(d, p, 1); break;
        }
    }
}

/* indent <name>text</name> LF, text escaped. */
static void
doc_element(struct doc *d, const char *indent, const char *name, const char *text)
{
    doc_printf(d, "%s<%s>", indent, name);
    doc_xml(d, text);
    doc_printf(d, "</%s>\n", name);
}

static int
doc_end(const struct doc *d)
{
    if (d->is_full || d->len > (size_t)INT32_MAX) {
        return -ENOSPC;
    }
    return (int)d->len;
}

/* ---- the server ------------------------------------------------------------ */

static uint16_t
listen_port(const struct listen_list *list)
{
    if (list->count == 0) {
        return 0;
    }
    const struct sockaddr_storage *addr = &list->addresses[0].addr;
    if (addr->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

void
mail_autoconfig_server_from_config(const struct config *config,
                                   struct mail_autoconfig_server *out)
{
    memset(out, 0, sizeof(*out));
    out->hostname = config->myhostname;
    out->imaps_port = listen_port(&config->listen[LISTENER_IMAPS]);
    out->imap_port = listen_port(&config->listen[LISTENER_IMAP]);
    out->submissions_port = listen_port(&config->listen[LISTENER_SUBMISSIONS]);
    out->submission_port = listen_port(&config->listen[LISTENER_SUBMISSION]);
    out->has_tls = true;
}

/* ---- addresses ------------------------------------------------------------- */

bool
mail_autoconfig_domain_ok(const char *domain, size_t len)
{
    if (len == 0 || len > MAIL_AUTOCONFIG_DOMAIN_BYTES_MAX) {
        return false;
    }
    size_t label_len = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)domain[i];
        if (c == '.') {
            if (label_len == 0 || domain[i - 1] == '-') {
                return false;
            }
            label_len = 0;
            continue;
        }
        bool is_ldh = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-';
        if (!is_ldh || (c == '-' && label_len == 0) || ++label_len > 63) {
            return false;
        }
    }
    return label_len > 0 && domain[len - 1] != '-';
}

static bool
is_atext(unsigned char c)
{
    /* RFC 5322 3.2.3 atext. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

int
mail_autoconfig_address_normalize(const char *address, size_t len,
                                  char out[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1], size_t *at_out)
{
    if (len == 0 || len > MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX) {
        return -EINVAL;
    }
    const char *at = memchr(address, '@', len);
    if (at == NULL) {
        return -EINVAL;
    }
    size_t local_len = (size_t)(at - address);
    if (local_len == 0 || local_len > MAIL_AUTOCONFIG_LOCAL_BYTES_MAX ||
        address[0] == '.' || address[local_len - 1] == '.') {
        return -EINVAL;
    }
    for (size_t i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)address[i];
        if (c == '.' ? address[i + 1] == '.' : !is_atext(c)) {
            return -EINVAL; /* two dots in a row, or not a dot-atom character */
        }
    }
    const char *domain = at + 1;
    size_t domain_len = len - local_len - 1;
    if (!mail_autoconfig_domain_ok(domain, domain_len)) {
        return -EINVAL;
    }
    memcpy(out, address, local_len + 1);
    for (size_t i = 0; i < domain_len; i++) {
        out[local_len + 1 + i] = (char)ascii_lower((unsigned char)domain[i]);
    }
    out[len] = '\0';
    *at_out = local_len;
    return 0;
}

/* ---- Thunderbird ------------------------------------------------------------ */

static void
thunderbird_server(struct doc *d, const struct mail_autoconfig_server *server, bool is_incoming,
                   uint16_t port, const char *socket_type)
{
    const char *tag = is_incoming ? "incomingServer" : "outgoingServer";
    doc_printf(d, "    <%s type=\"%s\">\n", tag, is_incoming ? "imap" : "smtp");
    doc_element(d, "      ", "hostname", server->hostname);
    doc_printf(d, "      <port>%u</port>\n", (unsigned)port);
    doc_printf(d, "      <socketType>%s</socketType>\n", socket_type);
    doc_text(d, "      <authentication>password-cleartext</authentication>\n");
    doc_text(d, "      <username>%EMAILADDRESS%</username>\n");
    doc_printf(d, "    </%s>\n", tag);
}

int
mail_autoconfig_thunderbird(const struct mail_autoconfig_server *server, const char *domain,
                            char *out, size_t out_bytes)
{
    struct doc d = { .out = out, .cap = out_bytes };
    doc_text(&d, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<clientConfig version=\"1.1\">\n"
                 "  <emailProvider id=\"");
    doc_xml(&d, domain);
    doc_text(&d, "\">\n");
    doc_element(&d, "    ", "domain", domain);
    doc_element(&d, "    ", "displayName", domain);
    doc_element(&d, "    ", "displayShortName", domain);
    if (server->has_tls && server->imaps_port != 0) {
        thunderbird_server(&d, server, true, server->imaps_port, "SSL");
    }
    if (server->imap_port != 0) {
        thunderbird_server(&d, server, true, server->imap_port,
                           server->has_tls ? "STARTTLS" : "plain");
    }
    if (server->has_tls && server->submissions_port != 0) {
        thunderbird_server(&d, server, false, server->submissions_port, "SSL");
    }
    if (server->submission_port != 0) {
        thunderbird_server(&d, server, false, server->submission_port,
                           server->has_tls ? "STARTTLS" : "plain");
    }
    doc_text(&d, "  </emailProvider>\n"
                 "</clientConfig>\n");
    return doc_end(&d);
}

/* ---- Outlook Autodiscover ------------------------------------------------------ */

int
mail_autoconfig_autodiscover_address(const char *body, size_t len, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    if (len > MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX) {
        len = MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX;
    }
    static const char want[] = "EMailAddress";
    const size_t want_len = sizeof(want) - 1;
    for (size_t i = 0; i < len; i++) {
        if (body[i] != '<') {
            continue;
        }
        /* The tag's name: "<EMailAddress>" or "<ns:EMailAddress ...>". */
        size_t name = i + 1;
        size_t end = name;
        while (end < len && body[end] != '>' && body[end] != ' ' && body[end] != '\t' &&
               body[end] != '\r' && body[end] != '\n' && body[end] != '/') {
            end++;
        }
        const char *colon = memchr(body + name, ':', end - name);
        size_t local = colon != NULL ? (size_t)(colon - body) + 1 : name;
        if (end - local != want_len || memcmp(body + local, want, want_len) != 0) {
            continue;
        }
        const char *close = memchr(body + end, '>', len - end);
        if (close == NULL || close[-1] == '/') {
            return -ENOENT; /* unterminated, or an empty element */
        }
        size_t start = (size_t)(close - body) + 1;
        size_t stop = start;
        while (stop < len && body[stop] != '<') {
            stop++;
        }
        if (stop == len) {
            return -ENOENT;
        }
        while (start < stop && (body[start] == ' ' || body[start] == '\t' ||
                                body[start] == '\r' || body[start] == '\n')) {
            start++;
        }
        while (stop > start && (body[stop - 1] == ' ' || body[stop - 1] == '\t' ||
                                body[stop - 1] == '\r' || body[stop - 1] == '\n')) {
            stop--;
        }
        if (memchr(body + start, '&', stop - start) != NULL ||
            memchr(body + start, '>', stop - start) != NULL) {
            return -EINVAL; /* entities are not decoded: such an address is refused */
        }
        if (stop - start >= out_bytes) {
            return -ENOSPC;
        }
        memcpy(out, body + start, stop - start);
        out[stop - start] = '\0';
        return (int)(stop - start);
    }
    return -ENOENT;
}

static void
autodiscover_protocol(struct doc *d, const struct mail_autoconfig_server *server,
                      const char *type, uint16_t port, const char *encryption,
                      const char *address)
{
    doc_text(d, "      <Protocol>\n");
    doc_element(d, "        ", "Type", type);
    doc_element(d, "        ", "Server", server->hostname);
    doc_printf(d, "        <Port>%u</Port>\n", (unsigned)port);
    doc_text(d, "        <DomainRequired>off</DomainRequired>\n");
    doc_element(d, "        ", "LoginName", address);
    doc_text(d, "        <SPA>off</SPA>\n");
    doc_printf(d, "        <SSL>%s</SSL>\n", strcmp(encryption, "None") == 0 ? "off" : "on");
    doc_printf(d, "        <Encryption>%s</Encryption>\n", encryption);
    doc_text(d, "        <AuthRequired>on</AuthRequired>\n");
    doc_text(d, "      </Protocol>\n");
}

int
mail_autoconfig_autodiscover(const struct mail_autoconfig_server *server, const char *address,
                             char *out, size_t out_bytes)
{
    struct doc d = { .out = out, .cap = out_bytes };
    doc_text(&d, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
                 "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
                 "responseschema/2006\">\n"
                 "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
                 "outlook/responseschema/2006a\">\n"
                 "    <Account>\n"
                 "      <AccountType>email</AccountType>\n"
                 "      <Action>settings</Action>\n");
    /* Outlook takes the first protocol of each type: implicit TLS first. */
    if (server->has_tls && server->imaps_port != 0) {
        autodiscover_protocol(&d, server, "IMAP", server->imaps_port, "SSL", address);
    } else if (server->imap_port != 0) {
        autodiscover_protocol(&d, server, "IMAP", server->imap_port,
                              server->has_tls ? "TLS" : "None", address);
    }
    if (server->has_tls && server->submissions_port != 0) {
        autodiscover_protocol(&d, server, "SMTP", server->submissions_port, "SSL", address);
    } else if (server->submission_port != 0) {
        autodiscover_protocol(&d, server, "SMTP", server->submission_port,
                              server->has_tls ? "TLS" : "None", address);
    }
    doc_text(&d, "    </Account>\n"
                 "  </Response>\n"
                 "</Autodiscover>\n");
    return doc_end(&d);
}

/* ---- Apple configuration profile ---------------------------------------------- */

int
mail_autoconfig_uuid(const char *name, char out[MAIL_AUTOCONFIG_UUID_BYTES])
{
    /* RFC 4122 4.3: SHA-1 over the namespace's bytes then the name. */
    static const uint8_t namespace_url[16] = { 0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                               0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8 };
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool is_ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
                 EVP_DigestUpdate(ctx, namespace_url, sizeof(namespace_url)) == 1 &&
                 EVP_DigestUpdate(ctx, name, strlen(name)) == 1 &&
                 EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1 && digest_len >= 16;
    EVP_MD_CTX_free(ctx);
    if (!is_ok) {
        return -EIO;
    }
    digest[6] = (uint8_t)((digest[6] & 0x0f) | 0x50); /* version 5 */
    digest[8] = (uint8_t)((digest[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
    static const char hex[] = "0123456789ABCDEF";
    size_t at = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[at++] = '-';
        }
        out[at++] = hex[digest[i] >> 4];
        out[at++] = hex[digest[i] & 0x0f];
    }
    ASSERT(at == MAIL_AUTOCONFIG_UUID_BYTES - 1);
    out[at] = '\0';
    return 0;
}

static void
plist_string(struct doc *d, const char *indent, const char *key, const char *value)
{
    doc_element(d, indent, "key", key);
    doc_element(d, indent, "string", value);
}

static void
plist_integer(struct doc *d, const char *indent, const char *key, unsigned value)
{
    doc_element(d, indent, "key", key);
    doc_printf(d, "%s<integer>%u</integer>\n", indent, value);
}

static void
plist_bool(struct doc *d, const char *indent, const char *key, bool value)
{
    doc_element(d, indent, "key", key);
    doc_printf(d, "%s<%s/>\n", indent, value ? "true" : "false");
}

/* One side of the account: the port and whether TLS wraps it (iOS speaks
 * STARTTLS on the STARTTLS ports when UseSSL is set). */
static void
mobileconfig_side(struct doc *d, const struct mail_autoconfig_server *server, const char *side,
                  uint16_t tls_port, uint16_t starttls_port, const char *address)
{
    static const char in[] = "\t\t\t";
    char key[64];
    uint16_t port = server->has_tls && tls_port != 0 ? tls_port : starttls_port;
    (void)snprintf(key, sizeof(key), "%sMailServerAuthentication", side);
    plist_string(d, in, key, "EmailAuthPassword");
    (void)snprintf(key, sizeof(key), "%sMailServerHostName", side);
    plist_string(d, in, key, server->hostname);
    (void)snprintf(key, sizeof(key), "%sMailServerPortNumber", side);
    plist_integer(d, in, key, port);
    (void)snprintf(key, sizeof(key), "%sMailServerUseSSL", side);
    plist_bool(d, in, key, server->has_tls);
    (void)snprintf(key, sizeof(key), "%sMailServerUsername", side);
    plist_string(d, in, key, address);
}

int
mail_autoconfig_mobileconfig(const struct mail_autoconfig_server *server, const char *address,
                             char *out, size_t out_bytes)
{
    const char *at = strchr(address, '@');
    ASSERT(at != NULL);
    const char *domain = at + 1;
    char name[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 64];
    char profile_uuid[MAIL_AUTOCONFIG_UUID_BYTES];
    char account_uuid[MAIL_AUTOCONFIG_UUID_BYTES];
    (void)snprintf(name, sizeof(name), "toaster:mobileconfig:%s:profile", address);
    int rc = mail_autoconfig_uuid(name, profile_uuid);
    (void)snprintf(name, sizeof(name), "toaster:mobileconfig:%s:account", address);
    if (rc == 0) {
        rc = mail_autoconfig_uuid(name, account_uuid);
    }
    if (rc != 0) {
        return rc;
    }
    static const char in[] = "\t\t\t";
    struct doc d = { .out = out, .cap = out_bytes };
    doc_text(&d, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                 "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                 "<plist version=\"1.0\">\n"
                 "<dict>\n"
                 "\t<key>PayloadContent</key>\n"
                 "\t<array>\n"
                 "\t\t<dict>\n");
    plist_string(&d, in, "EmailAccountDescription", address);
    plist_string(&d, in, "EmailAccountName", address);
    plist_string(&d, in, "EmailAccountType", "EmailTypeIMAP");
    plist_string(&d, in, "EmailAddress", address);
    mobileconfig_side(&d, server, "Incoming", server->imaps_port, server->imap_port, address);
    mobileconfig_side(&d, server, "Outgoing", server->submissions_port, server->submission_port,
                      address);
    plist_bool(&d, in, "OutgoingPasswordSameAsIncomingPassword", true);
    plist_string(&d, in, "PayloadDescription", "E-mail account settings");
    doc_element(&d, in, "key", "PayloadDisplayName");
    doc_printf(&d, "%s<string>", in);
    doc_xml(&d, address);
    doc_text(&d, "</string>\n");
    doc_element(&d, in, "key", "PayloadIdentifier");
    doc_printf(&d, "%s<string>com.apple.mail.managed.%s</string>\n", in, account_uuid);
    plist_string(&d, in, "PayloadType", "com.apple.mail.managed");
    plist_string(&d, in, "PayloadUUID", account_uuid);
    plist_integer(&d, in, "PayloadVersion", 1);
    plist_bool(&d, in, "PreventAppSheet", false);
    plist_bool(&d, in, "PreventMove", false);
    plist_bool(&d, in, "SMIMEEnabled", false);
    doc_text(&d, "\t\t</dict>\n"
                 "\t</array>\n");
    plist_string(&d, "\t", "PayloadDescription", "Sets up the mail account.");
    doc_element(&d, "\t", "key", "PayloadDisplayName");
    doc_text(&d, "\t<string>");
    doc_xml(&d, domain);
    doc_text(&d, " mail</string>\n");
    doc_element(&d, "\t", "key", "PayloadIdentifier");
    doc_printf(&d, "\t<string>toaster.mobileconfig.%s</string>\n", profile_uuid);
    plist_string(&d, "\t", "PayloadOrganization", domain);
    plist_bool(&d, "\t", "PayloadRemovalDisallowed", false);
    plist_string(&d, "\t", "PayloadType", "Configuration");
    plist_string(&d, "\t", "PayloadUUID", profile_uuid);
    plist_integer(&d, "\t", "PayloadVersion", 1);
    doc_text(&d, "</dict>\n"
                 "</plist>\n");
    return doc_end(&d);
}
