/*
 * core/toasterctl_dns.h - `toasterctl dns DOMAIN`: every DNS record the
 * operator publishes for a domain toasterd hosts, in zone-file syntax,
 * made from the configuration: MX, SPF, DKIM (each dkim_key of the
 * domain, its public key read from the private key file), DMARC, MTA-STS
 * (the id derived from the very policy the HTTP listener serves), TLS
 * reporting, the RFC 6186 / 8314 SRV records, and the host names the
 * client set-up documents are fetched from.
 *
 * Runs in toasterctl, without the daemon; reads the users and aliases
 * tables (which domains are hosted) and the DKIM key files.
 */
#ifndef TOASTER_CORE_TOASTERCTL_DNS_H
#define TOASTER_CORE_TOASTERCTL_DNS_H

#include <stdio.h>

#include "core/config.h"

/* toasterctl dns DOMAIN (argv after "dns"). Returns the exit code: 0, 1
 * (a domain we do not host, a key file that does not load), 2 (usage). */
int toasterctl_dns(const struct config *config, int argc, char **argv);

/* A TXT record as zone text on one line: "NAME. IN TXT" then text as
 * quoted character-strings of at most 255 bytes each (RFC 1035 3.3.14),
 * '"' and '\' escaped. */
void toasterctl_dns_txt_print(FILE *out, const char *name, const char *text);

#endif
