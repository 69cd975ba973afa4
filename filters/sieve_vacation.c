/*
 * filters/sieve_vacation.c - after a Sieve script chose "vacation" (RFC
 * 5230): may a reply go, under which key is it remembered, and the reply
 * message itself.
 *
 * Owns nothing past a call: the reply is a malloc'd buffer the caller
 * frees. Pure (no I/O, no clock: the caller passes now_unix), any thread.
 * The rules against replying follow RFC 5230 4.5/4.6 and RFC 3834 section
 * 2 the way Pigeonhole applies them (null sender, system addresses,
 * the user's own address, Auto-Submitted other than "no", list headers,
 * Precedence bulk/list/junk, and a message not addressed to the user);
 * the reply looks like Pigeonhole's (From the address that matched,
 * "Auto: " subject, In-Reply-To/References, Auto-Submitted: auto-replied,
 * Precedence: bulk, text/plain UTF-8 or the :mime entity).
 * Limits: header fields are walked linearly within header_len; comments
 * nest SIEVE_VACATION_COMMENT_DEPTH_MAX deep; the subject is cut at
 * SIEVE_VACATION_SUBJECT_BYTES_MAX; References keeps at most
 * SIEVE_VACATION_REFERENCES_MAX ids; the reply is at most
 * SIEVE_VACATION_REPLY_BYTES_MAX bytes with lines of at most 998.
 */
#include "filters/sieve_vacation.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/assertions.h"
#include "proto/mail_compose.h"
#include "filters/sieve_date.h"
#include "proto/imap/imap_text.h"

#define SIEVE_VACATION_COMMENT_DEPTH_MAX 32u
#define SIEVE_VACATION_MSGID_BYTES_MAX 900u /* longer ids are left out */

static_assert(SIEVE_VACATION_KEY_BYTES >= sizeof("vacation:") + 64, "key fits");
static_assert(SIEVE_VACATION_SUBJECT_BYTES_MAX + 80 < MAIL_COMPOSE_LINE_BYTES_MAX,
              "an ASCII subject fits one line");

static size_t first_token(const char *value, size_t len, const char **token_out);
static bool value_has_address(const char *value, size_t len, const char *address);
static bool address_equal(const char *a, size_t a_len, const char *b);
static bool is_system_address(const char *address);
static const char *reply_from_address(const struct sieve_message *message,
                                      const struct sieve_vacation *vacation);
static const char *reply_sender(const struct sieve_message *message,
                                const struct sieve_vacation *vacation);
static void out_msgid_tokens(struct mail_compose *out, const char *value, size_t len,
                             size_t *count_inout, size_t skip);
static size_t count_msgids(const char *value, size_t len);
static bool is_msgid(const char *token, size_t len);

bool
sieve_vacation_should_reply(const struct sieve_message *message,
                            const struct sieve_vacation *vacation, const char **why_out)
{
    ASSERT(message != NULL);
    ASSERT(vacation != NULL);
    ASSERT(why_out != NULL);
    ASSERT(message->header != NULL || message->header_len == 0);
    ASSERT(vacation->address_count <= SIEVE_RUN_VACATION_ADDRESSES_MAX);

    const char *sender = reply_sender(message, vacation);
    if (sender == NULL) {
        *why_out = "envelope sender unknown";
        return false;
    }
    if (sender[0] == '\0') {
        *why_out = "null envelope sender";
        return false;
    }
    if (message->user == NULL && vacation->address_count == 0) {
        *why_out = "recipient unknown";
        return false;
    }
    if (message->user != NULL && address_equal(sender, strlen(sender), message->user)) {
        *why_out = "sender is the user";
        return false;
    }
    for (size_t i = 0; i < vacation->address_count; i++) {
        if (vacation->addresses[i] != NULL &&
            address_equal(sender, strlen(sender), vacation->addresses[i])) {
            *why_out = "sender is one of the user's :addresses";
            return false;
        }
    }
    if (is_system_address(sender)) {
        *why_out = "sender is a system or list address";
        return false;
    }

    static const char *const list_fields[] = {"list-id",          "list-owner",
                                              "list-subscribe",   "list-post",
                                              "list-unsubscribe", "list-help",
                                              "list-archive"};
    static const char *const rcpt_fields[] = {"to",        "cc",        "bcc",
                                              "resent-to", "resent-cc", "resent-bcc"};
    bool is_addressed = false;
    size_t pos = 0;
    struct mail_compose_field field;
    while (mail_compose_field_next(message->header, message->header_len, &pos, &field)) {
        for (size_t i = 0; i < sizeof(list_fields) / sizeof(list_fields[0]); i++) {
            if (mail_compose_field_is(&field, list_fields[i])) {
                *why_out = "message from a mailing list";
                return false;
            }
        }
        const char *token;
        size_t token_len;
        if (mail_compose_field_is(&field, "auto-submitted")) {
            token_len = first_token(field.value, field.value_len, &token);
            if (token_len != 2 || strncasecmp(token, "no", 2) != 0) {
                *why_out = "message is auto-submitted";
                return false;
            }
        } else if (mail_compose_field_is(&field, "precedence")) {
            token_len = first_token(field.value, field.value_len, &token);
            if ((token_len == 4 && (strncasecmp(token, "bulk", 4) == 0 ||
                                    strncasecmp(token, "list", 4) == 0 ||
                                    strncasecmp(token, "junk", 4) == 0))) {
                *why_out = "message has Precedence bulk, list or junk";
                return false;
            }
        }
        for (size_t i = 0; i < sizeof(rcpt_fields) / sizeof(rcpt_fields[0]) && !is_addressed;
             i++) {
            if (!mail_compose_field_is(&field, rcpt_fields[i])) {
                continue;
            }
            if (message->user != NULL &&
                value_has_address(field.value, field.value_len, message->user)) {
                is_addressed = true;
            }
            for (size_t k = 0; k < vacation->address_count && !is_addressed; k++) {
                if (vacation->addresses[k] != NULL &&
                    value_has_address(field.value, field.value_len, vacation->addresses[k])) {
                    is_addressed = true;
                }
            }
        }
    }
    if (!is_addressed) {
        *why_out = "user not in To, Cc, Bcc or Resent-*";
        return false;
    }
    *why_out = NULL;
    return true;
}

void
sieve_vacation_key(const char *user, const char *sender, const char *handle,
                   char key_out[SIEVE_VACATION_KEY_BYTES])
{
    ASSERT(key_out != NULL);
    /* user NUL sender-lower-cased NUL handle: NUL cannot occur inside a C
     * string, so distinct triples never hash the same input. The sender
     * is lower-cased as Pigeonhole does, so "Bob@X" and "bob@x" share a
     * key. */
    const char *u = user != NULL ? user : "";
    const char *s = sender != NULL ? sender : "";
    const char *h = handle != NULL ? handle : "";
    char hex[65];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ASSERT(ctx != NULL); /* see hex_sha256: the key cannot be made without it */
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    ok = ok == 1 && EVP_DigestUpdate(ctx, u, strlen(u) + 1) == 1;
    char lower[256];
    size_t s_len = strlen(s);
    for (size_t done = 0; ok && done <= s_len;) {
        size_t n = s_len + 1 - done < sizeof(lower) ? s_len + 1 - done : sizeof(lower);
        for (size_t i = 0; i < n; i++) {
            char c = s[done + i];
            lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
        }
        ok = EVP_DigestUpdate(ctx, lower, n) == 1;
        done += n;
    }
    ok = ok && EVP_DigestUpdate(ctx, h, strlen(h)) == 1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &digest_len) == 1;
    EVP_MD_CTX_free(ctx);
    ASSERT(ok);
    ASSERT(digest_len == 32);
    mail_compose_hex(digest, hex);
    int n = snprintf(key_out, SIEVE_VACATION_KEY_BYTES, "vacation:%s", hex);
    ASSERT(n == 9 + 64);
}

int
sieve_vacation_compose(const struct sieve_message *message,
                       const struct sieve_vacation *vacation, const char *hostname,
                       int64_t now_unix, char **bytes_out, size_t *len_out)
{
    ASSERT(message != NULL);
    ASSERT(vacation != NULL);
    ASSERT(hostname != NULL);
    ASSERT(bytes_out != NULL);
    ASSERT(len_out != NULL);
    ASSERT(vacation->reason != NULL || vacation->reason_len == 0);
    *bytes_out = NULL;
    *len_out = 0;

    const char *sender = reply_sender(message, vacation);
    if (sender == NULL || sender[0] == '\0') {
        return -EINVAL;
    }
    const char *reason = vacation->reason != NULL ? vacation->reason : "";
    size_t reason_len = vacation->reason_len;
    struct mail_compose out = {.bytes_max = SIEVE_VACATION_REPLY_BYTES_MAX};
    struct mail_compose_field field;

    /* Message-ID: unique per original message, recipient, sender and
     * second, without a random source (this module is pure). */
    char id_hex[65];
    {
        char seed[256];
        const char *orig_id = "";
        size_t orig_id_len = 0;
        if (mail_compose_field_find(message->header, message->header_len, "message-id", &field)) {
            orig_id = field.value;
            orig_id_len = field.value_len < 128 ? field.value_len : 128;
        }
        int n = snprintf(seed, sizeof(seed), "%lld|%.64s|%.64s|%.*s", (long long)now_unix,
                         message->user != NULL ? message->user : "", sender, (int)orig_id_len,
                         orig_id);
        ASSERT(n > 0);
        mail_compose_sha256_hex(seed, (size_t)n < sizeof(seed) ? (size_t)n : sizeof(seed) - 1, id_hex);
    }
    mail_compose_str(&out, "Message-ID: <vacation.");
    char now_text[32];
    int now_len = snprintf(now_text, sizeof(now_text), "%lld.", (long long)now_unix);
    ASSERT(now_len > 0);
    mail_compose_bytes(&out, now_text, (size_t)now_len);
    mail_compose_bytes(&out, id_hex, 24);
    mail_compose_str(&out, "@");
    mail_compose_clean(&out, hostname, strlen(hostname));
    mail_compose_str(&out, ">\r\n");

    /* Date: the instant in UTC, RFC 5322 form. */
    struct sieve_datetime when = {.unix_seconds = now_unix, .zone_minutes = 0};
    char date[SIEVE_DATE_PART_BYTES];
    int date_len = sieve_date_part(&when, "std11", 5, date);
    if (date_len < 0) {
        free(out.bytes);
        return -EINVAL; /* now_unix outside years 0..9999 */
    }
    mail_compose_str(&out, "Date: ");
    mail_compose_bytes(&out, date, (size_t)date_len);
    mail_compose_str(&out, "\r\n");

    /* From: :from as given (a non-ASCII display name encoded), else the
     * address the message was sent to. */
    mail_compose_str(&out, "From: ");
    if (vacation->from != NULL && vacation->from[0] != '\0') {
        const char *from = vacation->from;
        size_t from_len = strlen(from);
        const char *angle = memchr(from, '<', from_len);
        if (mail_compose_is_ascii(from, from_len) || angle == NULL) {
            mail_compose_clean(&out, from, from_len);
        } else {
            /* phrase <addr>: encode the phrase without its quotes. */
            size_t phrase_start = 0;
            size_t phrase_end = (size_t)(angle - from);
            while (phrase_start < phrase_end &&
                   (from[phrase_start] == ' ' || from[phrase_start] == '"')) {
                phrase_start++;
            }
            while (phrase_end > phrase_start &&
                   (from[phrase_end - 1] == ' ' || from[phrase_end - 1] == '"')) {
                phrase_end--;
            }
            mail_compose_encoded(&out, from + phrase_start, phrase_end - phrase_start);
            mail_compose_str(&out, " ");
            mail_compose_clean(&out, angle, from_len - (size_t)(angle - from));
        }
    } else {
        const char *from = reply_from_address(message, vacation);
        if (from != NULL) {
            mail_compose_str(&out, "<");
            mail_compose_clean(&out, from, strlen(from));
            mail_compose_str(&out, ">");
        } else {
            mail_compose_str(&out, "Postmaster <postmaster@");
            mail_compose_clean(&out, hostname, strlen(hostname));
            mail_compose_str(&out, ">");
        }
    }
    mail_compose_str(&out, "\r\nTo: <");
    mail_compose_clean(&out, sender, strlen(sender));
    mail_compose_str(&out, ">\r\n");

    /* Subject: :subject, else "Auto: " + the original (decoded), else
     * "Automated reply"; cut, controls made spaces, encoded when not ASCII. */
    char subject[SIEVE_VACATION_SUBJECT_BYTES_MAX + 1];
    size_t subject_len = 0;
    if (vacation->subject != NULL && vacation->subject[0] != '\0') {
        subject_len = strlen(vacation->subject);
        if (subject_len > SIEVE_VACATION_SUBJECT_BYTES_MAX) {
            subject_len = SIEVE_VACATION_SUBJECT_BYTES_MAX;
            while (subject_len > 0 && (vacation->subject[subject_len] & 0xc0) == 0x80) {
                subject_len--; /* not inside a UTF-8 character */
            }
        }
        memcpy(subject, vacation->subject, subject_len);
    } else if (mail_compose_field_find(message->header, message->header_len, "subject", &field)) {
        memcpy(subject, "Auto: ", 6);
        subject_len = 6 + imap_text_decode_header(field.value, field.value_len, subject + 6,
                                                  SIEVE_VACATION_SUBJECT_BYTES_MAX - 6);
    } else {
        subject_len = strlen("Automated reply");
        memcpy(subject, "Automated reply", subject_len);
    }
    ASSERT(subject_len <= SIEVE_VACATION_SUBJECT_BYTES_MAX);
    for (size_t i = 0; i < subject_len; i++) {
        if ((unsigned char)subject[i] < 0x20 || subject[i] == 0x7f) {
            subject[i] = ' ';
        }
    }
    /* Leading blanks (the decoder keeps the one after the colon) go. */
    if (subject_len > 6 && memcmp(subject, "Auto: ", 6) == 0) {
        size_t k = 6;
        while (k < subject_len && subject[k] == ' ') {
            k++;
        }
        memmove(subject + 6, subject + k, subject_len - k);
        subject_len -= k - 6;
    }
    mail_compose_str(&out, "Subject: ");
    if (mail_compose_is_ascii(subject, subject_len)) {
        mail_compose_bytes(&out, subject, subject_len);
    } else {
        mail_compose_encoded(&out, subject, subject_len);
    }
    mail_compose_str(&out, "\r\n");

    /* In-Reply-To and References (RFC 5322 3.6.4): the original's
     * Message-ID, after its References (at most SIEVE_VACATION_REFERENCES_MAX
     * ids: the first and the latest, as 3.6.4 allows trimming). */
    struct mail_compose_field msgid;
    struct mail_compose_field refs;
    bool has_msgid = mail_compose_field_find(message->header, message->header_len, "message-id", &msgid);
    bool has_refs = mail_compose_field_find(message->header, message->header_len, "references", &refs);
    const char *id_token = NULL;
    size_t id_len = 0;
    if (has_msgid) {
        id_len = first_token(msgid.value, msgid.value_len, &id_token);
        if (id_len == 0 || !is_msgid(id_token, id_len)) {
            has_msgid = false;
        }
    }
    if (has_msgid) {
        mail_compose_str(&out, "In-Reply-To: ");
        mail_compose_clean(&out, id_token, id_len);
        mail_compose_str(&out, "\r\n");
    }
    if (has_msgid || has_refs) {
        size_t count = 0;
        mail_compose_str(&out, "References:");
        if (has_refs) {
            size_t total = count_msgids(refs.value, refs.value_len);
            size_t room = SIEVE_VACATION_REFERENCES_MAX - (has_msgid ? 1 : 0);
            /* Keep the first id and the last room - 1; skip the middle. */
            size_t skip = total > room ? total - room : 0;
            out_msgid_tokens(&out, refs.value, refs.value_len, &count, skip);
        }
        if (has_msgid) {
            mail_compose_str(&out, count > 0 ? "\r\n " : " ");
            mail_compose_clean(&out, id_token, id_len);
            count++;
        }
        mail_compose_str(&out, "\r\n");
    }
    mail_compose_str(&out, "Auto-Submitted: auto-replied\r\n");
    mail_compose_str(&out, "Precedence: bulk\r\n");

    if (vacation->is_mime) {
        /* The reason is a MIME entity: its header joins ours. Its lines
         * must already be short enough: it cannot be re-encoded here. */
        if (mail_compose_longest_line(reason, reason_len) > MAIL_COMPOSE_LINE_BYTES_MAX) {
            free(out.bytes);
            return -E2BIG;
        }
        size_t pos = 0;
        bool has_version = false;
        bool is_header_ok = true;
        while (pos < reason_len && reason[pos] != '\r' && reason[pos] != '\n') {
            size_t before = pos;
            if (!mail_compose_field_next(reason, reason_len, &pos, &field)) {
                is_header_ok = false;
                break;
            }
            ASSERT(pos > before);
            has_version = has_version || mail_compose_field_is(&field, "mime-version");
        }
        if (!is_header_ok) {
            free(out.bytes);
            return -EINVAL;
        }
        if (!has_version) {
            mail_compose_str(&out, "MIME-Version: 1.0\r\n");
        }
        mail_compose_crlf(&out, reason, reason_len);
        if (pos >= reason_len) {
            /* Header only: end its last line, then the empty line (and an
             * empty body). */
            if (reason_len > 0 && reason[reason_len - 1] != '\n' &&
                reason[reason_len - 1] != '\r') {
                mail_compose_str(&out, "\r\n");
            }
            mail_compose_str(&out, "\r\n");
        }
    } else {
        mail_compose_str(&out, "MIME-Version: 1.0\r\n");
        mail_compose_str(&out, "Content-Type: text/plain; charset=utf-8\r\n");
        if (mail_compose_longest_line(reason, reason_len) > MAIL_COMPOSE_LINE_BYTES_MAX) {
            mail_compose_str(&out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
            mail_compose_qp(&out, reason, reason_len);
        } else {
            mail_compose_str(&out, mail_compose_is_ascii(reason, reason_len) ? "Content-Transfer-Encoding: 7bit\r\n\r\n"
                                                       : "Content-Transfer-Encoding: 8bit\r\n\r\n");
            mail_compose_crlf(&out, reason, reason_len);
        }
    }
    if (out.error == 0 && out.len >= 2 &&
        (out.bytes[out.len - 2] != '\r' || out.bytes[out.len - 1] != '\n')) {
        mail_compose_str(&out, "\r\n");
    }
    if (out.error == 0 && mail_compose_longest_line(out.bytes, out.len) > MAIL_COMPOSE_LINE_BYTES_MAX) {
        out.error = -E2BIG; /* a header line from :from or the hostname */
    }
    if (out.error != 0) {
        free(out.bytes);
        return out.error;
    }
    *bytes_out = out.bytes;
    *len_out = out.len;
    return 0;
}

/* The envelope sender the reply goes to. */
static const char *
reply_sender(const struct sieve_message *message, const struct sieve_vacation *vacation)
{
    return vacation->reply_to != NULL ? vacation->reply_to : message->envelope_from;
}

/* The user's address that the message was sent to (the user first, then
 * :addresses in order), else the user, else the first :addresses entry. */
static const char *
reply_from_address(const struct sieve_message *message, const struct sieve_vacation *vacation)
{
    static const char *const rcpt_fields[] = {"to",        "cc",        "bcc",
                                              "resent-to", "resent-cc", "resent-bcc"};
    const char *candidates[SIEVE_RUN_VACATION_ADDRESSES_MAX + 1];
    size_t count = 0;
    if (message->user != NULL) {
        candidates[count++] = message->user;
    }
    for (size_t i = 0; i < vacation->address_count; i++) {
        if (vacation->addresses[i] != NULL) {
            candidates[count++] = vacation->addresses[i];
        }
    }
    for (size_t c = 0; c < count; c++) {
        size_t pos = 0;
        struct mail_compose_field field;
        while (mail_compose_field_next(message->header, message->header_len, &pos, &field)) {
            for (size_t i = 0; i < sizeof(rcpt_fields) / sizeof(rcpt_fields[0]); i++) {
                if (mail_compose_field_is(&field, rcpt_fields[i]) &&
                    value_has_address(field.value, field.value_len, candidates[c])) {
                    return candidates[c];
                }
            }
        }
    }
    return count > 0 ? candidates[0] : NULL;
}

/* The first run of characters that are not white space, comments (nested
 * up to the bound) or ';' in value; its length (0: none). */
static size_t
first_token(const char *value, size_t len, const char **token_out)
{
    size_t pos = 0;
    unsigned depth = 0;
    while (pos < len) {
        char c = value[pos];
        if (depth > 0 && c == '\\') {
            pos += 2;
            continue;
        }
        if (c == '(') {
            if (depth == SIEVE_VACATION_COMMENT_DEPTH_MAX) {
                return 0;
            }
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            break;
        }
        pos++;
    }
    if (pos >= len) {
        return 0;
    }
    size_t start = pos;
    while (pos < len && value[pos] != ' ' && value[pos] != '\t' && value[pos] != '\r' &&
           value[pos] != '\n' && value[pos] != '(' && value[pos] != ';') {
        pos++;
    }
    *token_out = value + start;
    return pos - start;
}

/* Whether an address-list field value names address. Reads RFC 5322
 * address lists as real mail writes them: display names (a quoted string
 * is a local part only when '@' follows it), angle brackets, groups,
 * comments, folding. Every word with an '@' is a candidate. */
static bool
value_has_address(const char *value, size_t len, const char *address)
{
    char word[SIEVE_VACATION_ADDRESS_BYTES_MAX + 1];
    size_t word_len = 0;
    bool is_word_too_long = false;
    unsigned depth = 0;
    size_t pos = 0;
    while (pos <= len) {
        char c = pos < len ? value[pos] : ',';
        if (depth > 0) {
            if (c == '\\') {
                pos += 2;
                continue;
            }
            if (c == '(') {
                if (depth == SIEVE_VACATION_COMMENT_DEPTH_MAX) {
                    return false;
                }
                depth++;
            } else if (c == ')') {
                depth--;
            }
            pos++;
            continue;
        }
        if (c == '"') {
            /* A quoted string: part of the word only when '@' follows. */
            size_t end = pos + 1;
            while (end < len && value[end] != '"') {
                end += value[end] == '\\' ? 2 : 1;
            }
            size_t after = end < len ? end + 1 : len;
            if (after < len && value[after] == '@') {
                size_t n = after - pos;
                if (word_len + n <= SIEVE_VACATION_ADDRESS_BYTES_MAX) {
                    memcpy(word + word_len, value + pos, n);
                    word_len += n;
                } else {
                    is_word_too_long = true;
                }
            }
            pos = after;
            continue;
        }
        bool is_delim = c == ',' || c == ';' || c == ':' || c == '<' || c == '>' || c == ' ' ||
                        c == '\t' || c == '\r' || c == '\n' || c == '(';
        if (is_delim) {
            if (word_len > 0 && !is_word_too_long && memchr(word, '@', word_len) != NULL &&
                address_equal(word, word_len, address)) {
                return true;
            }
            word_len = 0;
            is_word_too_long = false;
            if (c == '(') {
                depth = 1;
            }
            pos++;
            continue;
        }
        if (word_len < SIEVE_VACATION_ADDRESS_BYTES_MAX) {
            word[word_len++] = c;
        } else {
            is_word_too_long = true;
        }
        pos++;
    }
    return false;
}

/* Addresses compare ASCII case-insensitively, as Pigeonhole does for
 * vacation (local parts are case-sensitive in theory, never in practice). */
static bool
address_equal(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    return a_len == b_len && strncasecmp(a, b, a_len) == 0;
}

/* MAILER-DAEMON, LISTSERV, majordomo, owner-*, *-request (RFC 5230 4.6,
 * RFC 3834 2), by the local part, any case. */
static bool
is_system_address(const char *address)
{
    const char *at = strrchr(address, '@');
    size_t local_len = at != NULL ? (size_t)(at - address) : strlen(address);
    static const char *const prefixes[] = {"mailer-daemon", "listserv", "majordomo", "owner-"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i]);
        if (local_len >= n && strncasecmp(address, prefixes[i], n) == 0) {
            return true;
        }
    }
    return local_len >= 8 && strncasecmp(address + local_len - 8, "-request", 8) == 0;
}

/* The "<...>" tokens of a References value, each on its own folded line,
 * leaving out the skip ids after the first; *count_inout counts those
 * written. Tokens that are no clean msg-id (is_msgid) are left out. */
static void
out_msgid_tokens(struct mail_compose *out, const char *value, size_t len, size_t *count_inout,
                 size_t skip)
{
    size_t index = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *open = memchr(value + pos, '<', len - pos);
        if (open == NULL) {
            break;
        }
        size_t start = (size_t)(open - value);
        const char *close = memchr(open, '>', len - start);
        if (close == NULL) {
            break;
        }
        size_t end = (size_t)(close - value) + 1;
        size_t n = end - start;
        bool is_kept = index == 0 || index > skip;
        if (is_kept && is_msgid(open, n)) {
            mail_compose_str(out, *count_inout > 0 ? "\r\n " : " ");
            mail_compose_bytes(out, open, n);
            (*count_inout)++;
        }
        index++;
        pos = end;
    }
}

/* Whether token is a msg-id we copy into the reply: "<...>", no white
 * space, controls or inner '<', at most SIEVE_VACATION_MSGID_BYTES_MAX
 * bytes. Others (broken, or made to inject) are left out. */
static bool
is_msgid(const char *token, size_t len)
{
    if (len < 2 || len > SIEVE_VACATION_MSGID_BYTES_MAX || token[0] != '<' ||
        token[len - 1] != '>') {
        return false;
    }
    for (size_t i = 1; i + 1 < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c <= ' ' || c == 0x7f || c == '<') {
            return false;
        }
    }
    return true;
}

/* How many "<...>" tokens a References value holds (as out_msgid_tokens counts). */
static size_t
count_msgids(const char *value, size_t len)
{
    size_t count = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *open = memchr(value + pos, '<', len - pos);
        if (open == NULL) {
            break;
        }
        const char *close = memchr(open, '>', len - (size_t)(open - value));
        if (close == NULL) {
            break;
        }
        count++;
        pos = (size_t)(close - value) + 1;
    }
    return count;
}

