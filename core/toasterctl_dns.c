/*
 * core/toasterctl_dns.c - `toasterctl dns DOMAIN` (see toasterctl_dns.h).
 *
 * The defaults it prints, each said in a comment beside its record:
 *   - MX 10 to myhostname; SPF "v=spf1 mx -all" (the MX hosts send);
 *   - DMARC p=none with aggregate reports to postmaster@DOMAIN (watch
 *     the reports, then move to quarantine or reject);
 *   - TLS-RPT reports to postmaster@DOMAIN;
 *   - SRV: implicit TLS at priority 0, STARTTLS at 10 (RFC 8314 5.1),
 *     POP3 as "." (not offered);
 *   - mta-sts, autoconfig, autodiscover: CNAMEs to myhostname.
 * Ports come from the listeners' first addresses, as the client set-up
 * documents have them. Everything goes to stdout; errors to stderr.
 */
#define _GNU_SOURCE
#include "core/toasterctl_dns.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "filters/dkim_keys.h"
#include "proto/http/mail_autoconfig.h"
#include "proto/http/mta_sts_policy.h"
#include "store/recipients.h"

/* The HTTPS port Autodiscover's SRV names without https_listen (a proxy
 * in front terminates TLS there). */
#define TOASTERCTL_DNS_HTTPS_PORT_DEFAULT 443u

void
toasterctl_dns_txt_print(FILE *out, const char *name, const char *text)
{
    (void)fprintf(out, "%s. IN TXT", name);
    size_t len = strlen(text);
    for (size_t pos = 0; pos < len || pos == 0; pos += 255) {
        size_t piece = len - pos < 255 ? len - pos : 255;
        (void)fputs(" \"", out);
        for (size_t i = pos; i < pos + piece; i++) {
            if (text[i] == '"' || text[i] == '\\') {
                (void)fputc('\\', out);
            }
            (void)fputc(text[i], out);
        }
        (void)fputc('"', out);
        if (len == 0) {
            break;
        }
    }
    (void)fputc('\n', out);
}

static uint16_t
first_port(const struct listen_list *list)
{
    if (list->count == 0) {
        return 0;
    }
    const struct sockaddr_storage *addr = &list->addresses[0].addr;
    if (addr->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
    }
    if (addr->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)addr)->sin_port);
    }
    return 0;
}

/* _service._tcp.DOMAIN SRV; port 0: "." (RFC 2782: not offered). */
static void
srv_print(const char *service, const char *domain, unsigned priority, uint16_t port,
          const char *target)
{
    if (port == 0) {
        printf("_%s._tcp.%s. IN SRV 0 0 0 .\n", service, domain);
    } else {
        printf("_%s._tcp.%s. IN SRV %u 1 %u %s.\n", service, domain, priority, (unsigned)port,
               target);
    }
}

/* Every dkim_key line of domain: its key record. Returns how many, or -1
 * (a line or key file that does not load; said on stderr). */
static int
dkim_print(const struct config *config, const char *domain)
{
    static struct dkim_key key;
    static char record[DKIM_KEY_RECORD_BYTES_MAX];
    int printed = 0;
    for (size_t i = 0; i < config->dkim_key.count; i++) {
        char err[1024] = "";
        if (dkim_keys_parse_value(config->dkim_key.lines[i], &key, err, sizeof(err)) != 0) {
            (void)fprintf(stderr, "toasterctl: dkim_key = %s: %s\n", config->dkim_key.lines[i],
                          err);
            return -1;
        }
        if (strcmp(key.domain, domain) != 0) {
            continue;
        }
        EVP_PKEY *pkey = NULL;
        enum dkim_key_type type = DKIM_KEY_TYPE_RSA;
        unsigned bits = 0;
        if (dkim_keys_read_file(key.path, &pkey, &type, &bits, err, sizeof(err)) != 0) {
            (void)fprintf(stderr, "toasterctl: %s\n", err);
            return -1;
        }
        int len = dkim_keys_record(pkey, record, sizeof(record));
        EVP_PKEY_free(pkey);
        if (len < 0) {
            (void)fprintf(stderr, "toasterctl: %s: cannot make the key record: %s\n", key.path,
                          strerror(-len));
            return -1;
        }
        char name[DKIM_SELECTOR_BYTES_MAX + DKIM_DOMAIN_BYTES_MAX + 16];
        (void)snprintf(name, sizeof(name), "%s._domainkey.%s", key.selector, key.domain);
        if (type == DKIM_KEY_TYPE_ED25519) {
            printf("; DKIM (RFC 6376, RFC 8463): selector %s, Ed25519, key file %s\n",
                   key.selector, key.path);
        } else {
            printf("; DKIM (RFC 6376): selector %s, RSA %u bits, key file %s\n", key.selector,
                   bits, key.path);
        }
        toasterctl_dns_txt_print(stdout, name, record);
        printed++;
    }
    return printed;
}

/* The MTA-STS policy as toasterd serves it, and its id. */
static int
mta_sts_print(const struct config *config, const char *domain)
{
    struct mta_sts_policy_config policy;
    mta_sts_policy_config_from(config, &policy);
    const char *reason = NULL;
    if (!mta_sts_policy_config_ok(&policy, &reason)) {
        (void)fprintf(stderr, "toasterctl: mta_sts: %s\n", reason);
        return -1;
    }
    static char text[MTA_STS_POLICY_BYTES_MAX];
    int len = mta_sts_policy_text(&policy, text, sizeof(text));
    char id[MTA_STS_POLICY_ID_BYTES];
    if (len < 0 || mta_sts_policy_id(text, (size_t)len, id) != 0) {
        (void)fprintf(stderr, "toasterctl: mta_sts: cannot make the policy\n");
        return -1;
    }
    uint16_t https_port = first_port(&config->listen[LISTENER_HTTPS]);
    printf("; MTA-STS (RFC 8461): mode %s, max_age %llu; the id changes with the policy.\n"
           "; Senders fetch https://mta-sts.%s/.well-known/mta-sts.txt on port 443,\n"
           "; with a certificate valid for mta-sts.%s:\n; %s\n",
           policy.mode, (unsigned long long)policy.max_age_s, domain, domain,
           https_port == 443 ? "https_listen serves it (a tls_sni line gives it that certificate)."
                             : "put an HTTPS proxy in front of http_listen, or set https_listen\n"
                               "; to port 443 with a tls_sni line for that name.");
    char name[300];
    (void)snprintf(name, sizeof(name), "_mta-sts.%s", domain);
    char value[64];
    (void)snprintf(value, sizeof(value), "v=STSv1; id=%s", id);
    toasterctl_dns_txt_print(stdout, name, value);
    printf("mta-sts.%s. IN CNAME %s.\n", domain, config->myhostname);
    return 0;
}

int
toasterctl_dns(const struct config *config, int argc, char **argv)
{
    if (argc != 1) {
        (void)fprintf(stderr, "usage: toasterctl [-c FILE] dns DOMAIN\n");
        return 2;
    }
    char domain[MAIL_AUTOCONFIG_DOMAIN_BYTES_MAX + 2];
    size_t len = strlen(argv[0]);
    if (len > 0 && argv[0][len - 1] == '.') {
        len--; /* "example.com." as a zone writes it */
    }
    if (!mail_autoconfig_domain_ok(argv[0], len)) {
        (void)fprintf(stderr, "toasterctl: '%s' is not a domain name\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < len; i++) {
        char c = argv[0][i];
        domain[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
    }
    domain[len] = '\0';
    struct recipients *table = NULL;
    char err[1024] = "";
    int rc = recipients_load_config(config, &table, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err[0] != '\0' ? err : strerror(-rc));
        return 1;
    }
    bool is_hosted = recipients_domain_is_local(table, span_make(domain, len));
    recipients_destroy(&table);
    if (!is_hosted) {
        (void)fprintf(stderr,
                      "toasterctl: %s is not a domain toasterd hosts (local_domains, users_file, "
                      "aliases_file)\n", domain);
        return 1;
    }
    const char *host = config->myhostname;
    struct mail_autoconfig_server server;
    mail_autoconfig_server_from_config(config, &server);
    char name[300];
    char value[300];

    printf("; DNS records for %s, from toasterd's configuration (toasterctl dns).\n", domain);
    printf("; %s needs its own A/AAAA records, and PTR records that name it.\n", host);
    printf("; Mail exchanger.\n");
    printf("%s. IN MX 10 %s.\n", domain, host);
    printf("; SPF (RFC 7208): the MX hosts send the domain's mail, nobody else.\n");
    toasterctl_dns_txt_print(stdout, domain, "v=spf1 mx -all");
    int dkim_count = dkim_print(config, domain);
    if (dkim_count < 0) {
        return 1;
    }
    if (dkim_count == 0) {
        printf("; DKIM: no dkim_key line for %s, so its mail is not signed; "
               "`toasterctl dkim keygen %s SELECTOR` makes a key.\n", domain, domain);
    }
    printf("; DMARC (RFC 7489): p=none (reports only) to start; aggregate reports to\n"
           "; postmaster@%s. Move to p=quarantine or p=reject once they look clean.\n", domain);
    (void)snprintf(name, sizeof(name), "_dmarc.%s", domain);
    (void)snprintf(value, sizeof(value), "v=DMARC1; p=none; rua=mailto:postmaster@%s", domain);
    toasterctl_dns_txt_print(stdout, name, value);
    if (mta_sts_print(config, domain) != 0) {
        return 1;
    }
    printf("; SMTP TLS reporting (RFC 8460): reports to postmaster@%s.\n", domain);
    (void)snprintf(name, sizeof(name), "_smtp._tls.%s", domain);
    (void)snprintf(value, sizeof(value), "v=TLSRPTv1; rua=mailto:postmaster@%s", domain);
    toasterctl_dns_txt_print(stdout, name, value);
    printf("; Mail clients (RFC 6186, RFC 8314: implicit TLS first; POP3 is not offered).\n");
    srv_print("submissions", domain, 0, server.submissions_port, host);
    srv_print("submission", domain, 10, server.submission_port, host);
    srv_print("imaps", domain, 0, server.imaps_port, host);
    srv_print("imap", domain, 10, server.imap_port, host);
    srv_print("pop3s", domain, 0, 0, host);
    srv_print("pop3", domain, 0, 0, host);
    uint16_t http_port = first_port(&config->listen[LISTENER_HTTP]);
    uint16_t https_port = first_port(&config->listen[LISTENER_HTTPS]);
    printf("; Client set-up documents (Thunderbird autoconfig, Outlook Autodiscover), served by\n"
           "; toasterd's HTTP listener (http_listen port %u%s).\n", (unsigned)http_port,
           https_port != 0 ? ", https_listen" : "");
    printf("autoconfig.%s. IN CNAME %s.\n", domain, host);
    printf("autodiscover.%s. IN CNAME %s.\n", domain, host);
    srv_print("autodiscover", domain, 0,
              https_port != 0 ? https_port : (uint16_t)TOASTERCTL_DNS_HTTPS_PORT_DEFAULT, host);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
