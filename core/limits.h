/*
 * core/limits.h - every bound on input and resources, in one place.
 *
 * Each limit has a default (what the embedded configuration uses) and a hard
 * ceiling (configuration may lower a limit, never raise it past the ceiling).
 * The static_asserts at the bottom tie related limits together.
 */
#ifndef TOASTER_CORE_LIMITS_H
#define TOASTER_CORE_LIMITS_H

#include <assert.h>

/* SMTP command line, CRLF excluded. RFC 5321 says 512; extension parameters
 * need more, and Postfix allows 2048. Beyond it: 500 5.5.6. */
#define SMTP_LINE_BYTES_MAX 2048

/* Longest reply line we ever produce, CRLF included. */
#define SMTP_REPLY_LINE_BYTES_MAX 512

/* Addresses: RFC 5321 local part 64, domain 255; we allow a little more for
 * real-world mail (Postfix does not enforce 64), but bound it. */
#define SMTP_ADDRESS_BYTES_MAX 512

/* MAIL/RCPT parameters per command. */
#define SMTP_PARAMS_MAX 16

/* Recipients per transaction: default and ceiling. Beyond: 452 4.5.3. */
#define SMTP_RCPT_DEFAULT 1000
#define SMTP_RCPT_CEILING 10000

/* Peer errors and junk commands per session before 421 and close. */
#define SMTP_ERRORS_DEFAULT 20
#define SMTP_JUNK_COMMANDS_DEFAULT 100

/* Message size (advertised in SIZE): default and ceiling. */
#define MESSAGE_BYTES_DEFAULT (50ULL * 1024 * 1024)
#define MESSAGE_BYTES_CEILING (2ULL * 1024 * 1024 * 1024)

/* Local mailboxes a single alias may expand to, and alias nesting depth. */
#define ALIAS_EXPANSION_MAX 1000
#define ALIAS_DEPTH_MAX 16

/* A line in users_file or aliases_file. Longer lines are an error. */
#define TABLE_LINE_BYTES_MAX 8192

/* Body bytes collected before a spool write is issued. */
#define SPOOL_CHUNK_BYTES 65536

/* Timeouts (milliseconds). */
#define SMTP_IDLE_TIMEOUT_MS_DEFAULT (300 * 1000)
#define SMTP_DATA_TIMEOUT_MS_DEFAULT (300 * 1000)
#define SEND_TIMEOUT_MS_DEFAULT (300 * 1000)
#define SHUTDOWN_TIMEOUT_MS_DEFAULT (30 * 1000)

/* Connections per reactor and per client IP (per reactor). */
#define CONNECTIONS_PER_REACTOR_DEFAULT 4096
#define CONNECTIONS_PER_REACTOR_CEILING 65536
#define CONNECTIONS_PER_IP_DEFAULT 64

/* Provided receive buffers per reactor, and their size. */
#define RECV_BUFFER_BYTES_DEFAULT 16384
#define RECV_BUFFER_COUNT_DEFAULT 1024

/* Reply bytes a connection may have queued; past the high mark the session
 * stops reading until the peer drains it. */
#define SEND_BUFFER_BYTES 8192
#define SEND_BUFFER_HIGH_BYTES (SEND_BUFFER_BYTES - 2 * SMTP_REPLY_LINE_BYTES_MAX)

/* Spool chunk buffers per reactor: concurrent DATA transfers. */
#define SPOOL_BUFFERS_DEFAULT 1024

/* Worker queue (jobs waiting for a worker), a power of two. */
#define WORKER_QUEUE_DEFAULT 4096

/* Threads. */
#define REACTOR_THREADS_CEILING 256
#define WORKER_THREADS_CEILING 256

/* Listen addresses per listener key. */
#define LISTEN_ADDRESSES_MAX 16

/* Per-domain certificates chosen by SNI (tls_sni lines). Each costs an
 * SSL_CTX and a line of struct config; a host with more domains than this
 * should use a certificate with several names or a wildcard. */
#define TLS_SNI_MAX 64

/* Key-value store (core/kv): key and value bytes, and the embedded table's
 * entries (kv_embedded_entries; about 160 bytes each, touched when used). */
#define KV_KEY_BYTES_MAX 64
#define KV_VALUE_BYTES_MAX 64
#define KV_EMBEDDED_ENTRIES_DEFAULT 65536
#define KV_EMBEDDED_ENTRIES_CEILING (16u * 1024 * 1024)

/* postscreen_access entries (CIDR permit/reject), checked in order at
 * each port 25 connection. */
#define POSTSCREEN_ACCESS_MAX 1024

/* IMAP commands (proto/imap): line text per command without literals,
 * literal sizes (APPEND takes the message size limit instead), literals
 * kept inline for the parser (larger APPEND data is streamed), literals
 * per command (a reader embeds a 40-byte record each, so MULTIAPPEND of
 * more messages gets BAD), and how much of a refused command's
 * non-synchronising literals may be skipped before the session ends. */
#define IMAP_LINE_BYTES_MAX_DEFAULT (64u * 1024)
#define IMAP_LITERAL_BYTES_MAX_DEFAULT (64u * 1024)
#define IMAP_LITERAL_MINUS_BYTES_MAX 4096u /* RFC 7888 LITERAL- */
#define IMAP_INLINE_BYTES_MAX_DEFAULT (8u * 1024)
#define IMAP_LITERALS_MAX_DEFAULT 64u
#define IMAP_LITERALS_CEILING 64u
#define IMAP_DISCARD_BYTES_CEILING_DEFAULT (64ULL * 1024 * 1024)

/* IMAP argument trees: parenthesis nesting, and nodes per command. */
#define IMAP_PARSER_DEPTH_MAX 32
#define IMAP_PARSER_NODES_DEFAULT 4096

/* Sequence sets: ranges kept after merging, and the array that allows it
 * (half of it is working space). */
#define IMAP_SEQSET_RANGES_DEFAULT 1000
#define IMAP_SEQSET_ARRAY_LEN_DEFAULT (2 * IMAP_SEQSET_RANGES_DEFAULT + 1)

/* MIME structure of a message (FETCH BODYSTRUCTURE, sections): parts,
 * nesting, and bytes of one header block. Past them the structure is cut
 * and marked truncated, never an error. */
#define IMAP_MIME_PARTS_MAX 4096
#define IMAP_MIME_DEPTH_MAX 64
#define IMAP_MIME_HEADER_BYTES_MAX (256u * 1024u)

static_assert(IMAP_LITERALS_MAX_DEFAULT <= IMAP_LITERALS_CEILING, "literal default within ceiling");
static_assert(SMTP_RCPT_DEFAULT <= SMTP_RCPT_CEILING, "rcpt default within ceiling");
static_assert(MESSAGE_BYTES_DEFAULT <= MESSAGE_BYTES_CEILING, "size default within ceiling");
static_assert(SEND_BUFFER_HIGH_BYTES > 0, "send buffer holds replies");
static_assert(SPOOL_CHUNK_BYTES >= 2 * SMTP_LINE_BYTES_MAX, "chunk holds lines");

#endif
