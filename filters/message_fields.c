/*
 * filters/message_fields.c - header fields by offsets (see
 * message_fields.h). A line ends at LF (the spool has CRLF; a bare LF
 * is taken too, so nothing is misread); a field goes on while the next
 * line starts with space or tab.
 */
#include "filters/message_fields.h"

#include <string.h>
#include <strings.h>

bool
message_fields_next(const char *text, size_t len, size_t *pos, struct message_field *field_out)
{
    size_t at = *pos;
    if (at >= len || text[at] == '\r' || text[at] == '\n' || text[at] == ' ' ||
        text[at] == '\t') {
        return false;
    }
    size_t name_end = at;
    while (name_end < len && text[name_end] != ':' && text[name_end] != '\n') {
        unsigned char c = (unsigned char)text[name_end];
        if (c <= ' ' || c >= 0x7f) {
            return false; /* RFC 5322 ftext: printable, no space */
        }
        name_end++;
    }
    if (name_end >= len || text[name_end] != ':' || name_end == at) {
        return false;
    }
    size_t line_start = name_end + 1;
    for (;;) {
        const char *lf = memchr(text + line_start, '\n', len - line_start);
        if (lf == NULL) {
            return false; /* cut by the buffer's end */
        }
        size_t next = (size_t)(lf - text) + 1;
        if (next < len && (text[next] == ' ' || text[next] == '\t')) {
            line_start = next;
            continue;
        }
        if (next >= len) {
            return false; /* whether it is folded on is not known */
        }
        field_out->start = at;
        field_out->name_len = name_end - at;
        field_out->value_start = name_end + 1;
        size_t value_end = (size_t)(lf - text);
        if (value_end > field_out->value_start && text[value_end - 1] == '\r') {
            value_end--;
        }
        field_out->value_end = value_end;
        field_out->end = next;
        *pos = next;
        return true;
    }
}

bool
message_field_is(const char *text, const struct message_field *field, const char *name)
{
    size_t n = strlen(name);
    return field->name_len == n && strncasecmp(text + field->start, name, n) == 0;
}
