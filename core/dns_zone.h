/*
 * core/dns_zone.h - the override file: fixed DNS answers for tests and
 * isolated sites, given before (and instead of) the real resolver.
 *
 * One record or directive per line, zone-file-like:
 *
 *     ; comments start with ';' or '#'
 *     $TTL 300                        ; TTL of the lines below (default 300)
 *     $UNLISTED NXDOMAIN              ; names not in the file do not exist
 *     $SECURE yes                     ; the records below answer "authenticated"
 *     example.org.      TXT "v=spf1 ip4:127.0.0.1 -all"
 *     example.org. 600  MX  10 mx.example.org.
 *     mx.example.org.   A   127.0.0.1
 *     mx.example.org.   AAAA ::1
 *     1.0.0.127.in-addr.arpa. PTR mx.example.org.
 *     _25._tcp.mx.example.org. TLSA 3 1 1 0a1b...   ; hex, may be split by blanks
 *     sel._domainkey.example.org. IN TXT "v=DKIM1; k=rsa; " "p=MIIB..."
 *     gone.example.org. NXDOMAIN
 *
 * Names are absolute (the trailing dot is optional), case-insensitive.
 * A listed name answers every question from the file: the types listed
 * for it, NODATA for the others; a name listed as NXDOMAIN answers
 * NXDOMAIN for every type. Names not listed go to the real resolver,
 * unless `$UNLISTED NXDOMAIN` says they do not exist (so an isolated test
 * site never waits on the network; `$UNLISTED RESOLVE` is the default).
 * `$SECURE yes` marks the records of the lines below it as DNSSEC-
 * validated (the AD bit: answer->authenticated), until `$SECURE no` (the
 * default); an answer is authenticated when every record of its name and
 * type was listed under `$SECURE yes`. This is how tests exercise DANE
 * (RFC 7672) on loopback. NXDOMAIN and NODATA answers are never
 * authenticated.
 * TXT takes one or more strings, quoted (escapes \" \\ \DDD) or bare, each
 * at most 255 bytes as on the wire, joined as SPF and DKIM read them. An
 * MX host "." is a null MX (RFC 7505). NXDOMAIN and NODATA answers carry
 * TTL DNS_ZONE_TTL_DEFAULT_S.
 *
 * A zone is immutable once parsed, so any thread may look up in it; the
 * answers it gives are referenced results that outlive the zone.
 * Limits: DNS_ZONE_FILE_BYTES_MAX, DNS_ZONE_LINE_BYTES_MAX,
 * DNS_ZONE_RECORDS_MAX; any excess is an error naming the line.
 */
#ifndef TOASTER_CORE_DNS_ZONE_H
#define TOASTER_CORE_DNS_ZONE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dns_parse.h"

#define DNS_ZONE_FILE_BYTES_MAX (1024u * 1024u)
#define DNS_ZONE_LINE_BYTES_MAX 4096u
#define DNS_ZONE_RECORDS_MAX 10000u
#define DNS_ZONE_TTL_DEFAULT_S 300u

/* Room for an error message ("line 12: unknown type SRV"). */
#define DNS_ZONE_ERROR_BYTES 160

struct dns_zone;

/* Parse len bytes of zone text. Returns 0 and sets *zone_out, -EINVAL
 * with a message naming the line in error_out (error_bytes long), or
 * -ENOMEM. */
int dns_zone_parse(const char *text, size_t len, struct dns_zone **zone_out, char *error_out,
                   size_t error_bytes);

/* Read and parse the file at path. Returns as dns_zone_parse, or -errno
 * of open/read (the message names the path). */
int dns_zone_load(const char *path, struct dns_zone **zone_out, char *error_out,
                  size_t error_bytes);

/* Free the zone (answers still referenced elsewhere live on); NULLs *zone. */
void dns_zone_destroy(struct dns_zone **zone);

/* The file's answer for (type, normalized name): 0 and a new reference in
 * *result_out, or -ENOENT when the file says nothing about the name (ask
 * the resolver). */
int dns_zone_lookup(const struct dns_zone *zone, enum dns_type type, const char *name,
                    struct dns_result **result_out);

/* Distinct names listed. */
size_t dns_zone_name_count(const struct dns_zone *zone);

#endif
