/*
 * filters/spam_limits.h - every bound of the spam scorer in one place:
 * what a rules file may hold, how much of a message the checks look at,
 * and how much a result may carry. Past a bound the scorer stops looking
 * (and says so in the analysis), it never fails the message for it.
 */
#ifndef TOASTER_FILTERS_SPAM_LIMITS_H
#define TOASTER_FILTERS_SPAM_LIMITS_H

/* Rules file. */
#define SPAM_RULES_FILE_BYTES_MAX (1024u * 1024) /* larger files: load error */
#define SPAM_RULES_LINE_BYTES_MAX 2048u          /* longer lines: error naming the line */
#define SPAM_RULES_MAX 512u                      /* rules an operator may add */
#define SPAM_REGEX_BYTES_MAX 1024u               /* one pattern */
#define SPAM_REGEX_REPEAT_PRODUCT_MAX 1000       /* product of the {n,m} counts of a pattern */
#define SPAM_WEIGHT_ABS_MAX 1000.0               /* |weight| of any symbol */
#define SPAM_DNS_ZONES_MAX 16u                   /* distinct dnsbl zones, and uribl zones */
#define SPAM_FIELD_NAME_BYTES 64u                /* header name of a header rule, NUL included */
#define SPAM_ZONE_BYTES 254u                     /* a DNS zone, NUL included */

/* Symbols and results. */
#define SPAM_SYMBOL_NAME_BYTES 64u /* [A-Z0-9_], NUL included */
#define SPAM_OPTIONS_BYTES 128u    /* the [...] of one symbol, NUL included */
#define SPAM_SYMBOLS_MAX 64u       /* symbols one result carries */

/* What the analysis of one message looks at. */
#define SPAM_HEADER_BYTES_MAX (64u * 1024)    /* top-level header block kept for header rules */
#define SPAM_PARTS_MAX 256u                   /* MIME parts parsed (IMAP_MIME_PARTS_MAX caps it too) */
#define SPAM_TEXT_BYTES_MAX (1024u * 1024)    /* decoded text of all text parts together */
#define SPAM_BODY_REGEX_BYTES_MAX (256u * 1024) /* bytes of that text one body rule reads */
#define SPAM_HEADER_VALUE_BYTES_MAX (8u * 1024) /* one decoded header value a rule reads */
#define SPAM_SUBJECT_BYTES 1000u              /* raw Subject kept (RFC 5322 line limit) */
#define SPAM_DOMAIN_BYTES 254u                /* a domain name, NUL included */
#define SPAM_URL_DOMAINS_MAX 64u              /* distinct link host names kept */
#define SPAM_URIBL_LOOKUPS_MAX 16u            /* of them, looked up per uribl zone */
#define SPAM_BAD_NAMES_MAX 4u                 /* dangerous attachment names kept for options */
#define SPAM_FILENAME_BYTES 64u               /* one such name (cut), NUL included */
#define SPAM_TOKENS_MAX 1000u                 /* distinct Bayes tokens per message */
#define SPAM_TOKEN_BYTES_MAX 32u              /* a longer word is cut to this */
#define SPAM_RCPTS_MAX 100u                   /* envelope recipients greylisted / rate counted */

/* A message file mapped by spam_scan_prepare_fd: beyond this the MIME
 * structure (attachment names) is not looked at. */
#define SPAM_SCAN_BYTES_MAX (64u * 1024 * 1024)

/* Learning from a file. */
#define SPAM_LEARN_BYTES_MAX (32u * 1024 * 1024) /* read at most this much of a message file */

#define SPAM_STRINGIFY_(x) #x
#define SPAM_STRINGIFY(x) SPAM_STRINGIFY_(x)

#endif
