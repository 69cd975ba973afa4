/*
 * proto/smtp/smtp_hops.c - the Received: field counter (see smtp_hops.h):
 * a small state machine over the header lines.
 */
#include "proto/smtp/smtp_hops.h"

#include <stdbool.h>

enum hop_state {
    HOP_LINE_START, /* at the start of a line of the header */
    HOP_NAME,       /* matching "received" */
    HOP_BLANKS,     /* "received" matched: blanks, then ':' */
    HOP_REST,       /* the rest of a line that decides nothing more */
    HOP_CR,         /* a CR at the start of a line: an empty line if LF follows */
    HOP_BODY,       /* after the empty line: nothing more counts */
};

static const char hop_name[] = "received";

void
smtp_hop_counter_init(struct smtp_hop_counter *counter)
{
    counter->state = HOP_LINE_START;
    counter->matched = 0;
    counter->received = 0;
}

static unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

void
smtp_hop_counter_feed(struct smtp_hop_counter *counter, const uint8_t *bytes, size_t len)
{
    enum hop_state state = (enum hop_state)counter->state;
    uint32_t matched = counter->matched;
    for (size_t i = 0; i < len && state != HOP_BODY; i++) {
        unsigned char c = bytes[i];
        switch (state) {
        case HOP_LINE_START:
            if (c == '\r') {
                state = HOP_CR;
            } else if (c == '\n') {
                state = HOP_BODY; /* a bare LF line: the decoders never give one, but end here */
            } else if (lower(c) == (unsigned char)hop_name[0]) {
                matched = 1;
                state = HOP_NAME;
            } else {
                state = HOP_REST; /* another field, or a continuation line */
            }
            break;
        case HOP_CR:
            state = c == '\n' ? HOP_BODY : HOP_REST;
            break;
        case HOP_NAME:
            if (matched < sizeof(hop_name) - 1 && lower(c) == (unsigned char)hop_name[matched]) {
                matched++;
                if (matched == sizeof(hop_name) - 1) {
                    state = HOP_BLANKS;
                }
            } else {
                state = c == '\n' ? HOP_LINE_START : HOP_REST;
            }
            break;
        case HOP_BLANKS:
            if (c == ':') {
                if (counter->received < UINT32_MAX) {
                    counter->received++;
                }
                state = HOP_REST;
            } else if (c != ' ' && c != '\t') {
                state = c == '\n' ? HOP_LINE_START : HOP_REST; /* "Received-SPF:", "Receivedx" */
            }
            break;
        case HOP_REST:
            if (c == '\n') {
                state = HOP_LINE_START;
            }
            break;
        case HOP_BODY:
            break;
        }
    }
    counter->state = state;
    counter->matched = matched;
}
