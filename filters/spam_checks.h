/*
 * filters/spam_checks.h - the checks behind the built-in and rule
 * symbols, in three groups by what they need:
 *   - the message analysis and the rules only (run once, in prepare):
 *     GTUBE, MISSING_DATE, MISSING_MID, MISSING_FROM, MIME_HTML_ONLY,
 *     REPLYTO_DOM_NEQ_FROM_DOM, BROKEN_CONTENT_TYPE, MIME_BAD_EXTENSION,
 *     MIME_DOUBLE_BAD_EXTENSION, header and body regex rules;
 *   - the caller's inputs: R_SPF_*, R_DKIM_*, DMARC_*, CLAM_VIRUS,
 *     MANY_RECIPIENTS;
 *   - DNS: dnsbl rules (client IP) and uribl rules (link domains).
 * Runs on workers; each check is bounded by spam_limits.h.
 */
#ifndef TOASTER_FILTERS_SPAM_CHECKS_H
#define TOASTER_FILTERS_SPAM_CHECKS_H

#include <stddef.h>

#include "core/dns_answer.h"
#include "filters/spam_message.h"
#include "filters/spam_rules.h"
#include "filters/spam_score.h"

void spam_checks_message(const struct spam_rules *rules, const struct spam_config *config,
                         const struct spam_message *message, struct spam_symbols *symbols);

void spam_checks_inputs(const struct spam_rules *rules, const struct spam_config *config,
                        const struct spam_message *message, const struct spam_inputs *inputs,
                        struct spam_symbols *symbols);

/* Every DNS list lookup; returns 0 when all answers were there, or
 * -EINPROGRESS when at least one query was started (symbols are then
 * incomplete and the run must be repeated). */
int spam_checks_dns(const struct spam_rules *rules, const struct spam_config *config,
                    const struct spam_message *message, const struct spam_inputs *inputs,
                    const struct dns_source *dns, struct spam_symbols *symbols);

/* The DNSBL query name for client in zone ("4.3.2.1.zone", or 32 nibbles
 * for IPv6). Returns 0, -EINVAL (no address) or -ENOSPC. */
int spam_checks_dnsbl_name(const struct spam_client *client, const char *zone, char *out,
                           size_t out_bytes);

/* Organizational domain of a host name: config's hook, else the last two
 * labels (three under a two-letter country code with a short second-level
 * label like co.uk, com.au). */
void spam_checks_org_domain(const struct spam_config *config, const char *name, char *out,
                            size_t out_bytes);

#endif
