/*
 * filters/message_fields.h - walking the header fields of a stored message
 * (RFC 5322 2.2: a name, a colon, a value that may be folded onto lines
 * starting with space or tab) in a buffer of its first bytes, as the
 * filter chain needs them: the From: values for DMARC and DKIM signing,
 * our own Authentication-Results fields to take out, the Subject to
 * rewrite. Offsets, not copies, so the chain can edit the spool file at
 * the same places. Pure; any thread.
 */
#ifndef TOASTER_FILTERS_MESSAGE_FIELDS_H
#define TOASTER_FILTERS_MESSAGE_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

/* One field: text[start .. end) is the whole field with its last line
 * end; the name is text[start .. start + name_len), the value
 * text[value_start .. value_end) (folded lines included, the last line
 * end not). */
struct message_field {
    size_t start;
    size_t name_len;
    size_t value_start;
    size_t value_end;
    size_t end;
};

/* The field at *pos in text[0..len), and *pos moved past it. false at the
 * blank line that ends the header, at a line that is not a field (no
 * colon, or a continuation with nothing before it), and when the field is
 * not complete within len (a header cut by the buffer's end). */
bool message_fields_next(const char *text, size_t len, size_t *pos,
                         struct message_field *field_out);

/* The field's name is name (ASCII, any case). */
bool message_field_is(const char *text, const struct message_field *field, const char *name);

#endif
