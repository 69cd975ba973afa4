/*
 * tests/tools/dsn_tool.c - a delivery status notification (store/dsn)
 * composed from the command line, for tests/integration/test_dsn_parse.py
 * (which reads it back with Python's email package) and for people:
 *
 *   dsn_tool [--from ADDR] [--host NAME] [--id QUEUEID] [--ret full|hdrs]
 *            [--envid TEXT] [--arrival UNIX] [--now UNIX] [--until UNIX]
 *            --rcpt 'ADDR|ORCPT|NOTIFY|ACTION|REMOTE|REPLY'... < MESSAGE
 *
 * ORCPT is "rfc822;xtext" or empty, NOTIFY a comma list (NEVER, SUCCESS,
 * FAILURE, DELAY) or empty, ACTION failed|delayed|delivered|relayed. The
 * DSN goes to stdout; "--from ''" is the null sender. Exit 0; 3 when
 * dsn_compose refuses (the error on stderr); 2 on usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/dsn.h"

int main(int argc, char **argv);

#define DSN_TOOL_RCPTS_MAX 64
#define DSN_TOOL_MESSAGE_BYTES_MAX (4u * 1024u * 1024u)

static int
usage(void)
{
    (void)fprintf(stderr, "usage: dsn_tool [--from ADDR] [--host NAME] [--id ID] "
                          "[--ret full|hdrs] [--envid TEXT]\n"
                          "                [--arrival UNIX] [--now UNIX] [--until UNIX]\n"
                          "                --rcpt 'ADDR|ORCPT|NOTIFY|ACTION|REMOTE|REPLY'... "
                          "< MESSAGE\n");
    return 2;
}

static uint32_t
parse_notify(char *list)
{
    uint32_t bits = 0;
    char *save = NULL;
    for (char *word = strtok_r(list, ",", &save); word != NULL; word = strtok_r(NULL, ",", &save)) {
        if (strcasecmp(word, "NEVER") == 0) {
            bits |= QUEUE_NOTIFY_NEVER;
        } else if (strcasecmp(word, "SUCCESS") == 0) {
            bits |= QUEUE_NOTIFY_SUCCESS;
        } else if (strcasecmp(word, "FAILURE") == 0) {
            bits |= QUEUE_NOTIFY_FAILURE;
        } else if (strcasecmp(word, "DELAY") == 0) {
            bits |= QUEUE_NOTIFY_DELAY;
        }
    }
    return bits;
}

/* "a|b|c|d|e|f" split in place into six fields. */
static int
split_rcpt(char *spec, char *fields[6])
{
    for (int i = 0; i < 6; i++) {
        fields[i] = spec;
        if (i < 5) {
            char *bar = strchr(spec, '|');
            if (bar == NULL) {
                return -1;
            }
            *bar = '\0';
            spec = bar + 1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static struct queue_entry entry;
    static struct queue_rcpt rcpts[DSN_TOOL_RCPTS_MAX];
    static struct dsn_rcpt_report reports[DSN_TOOL_RCPTS_MAX];
    size_t count = 0;
    const char *host = "mx.toaster.test";
    int64_t now = 1733990400; /* 2024-12-12 08:00:00 UTC */
    int64_t until = 0;
    (void)snprintf(entry.id, sizeof(entry.id), "%s", "14CB8BFEB7900000");
    (void)snprintf(entry.mail_from, sizeof(entry.mail_from), "%s", "alice@example.com");
    entry.arrival = now - 3600;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            return usage();
        }
        const char *opt = argv[i];
        char *value = argv[++i];
        if (strcmp(opt, "--from") == 0) {
            (void)snprintf(entry.mail_from, sizeof(entry.mail_from), "%s", value);
        } else if (strcmp(opt, "--host") == 0) {
            host = value;
        } else if (strcmp(opt, "--id") == 0) {
            (void)snprintf(entry.id, sizeof(entry.id), "%s", value);
        } else if (strcmp(opt, "--ret") == 0) {
            entry.ret = strcmp(value, "hdrs") == 0 ? QUEUE_RET_HDRS : QUEUE_RET_FULL;
        } else if (strcmp(opt, "--envid") == 0) {
            (void)snprintf(entry.envid, sizeof(entry.envid), "%s", value);
        } else if (strcmp(opt, "--arrival") == 0) {
            entry.arrival = strtoll(value, NULL, 10);
        } else if (strcmp(opt, "--now") == 0) {
            now = strtoll(value, NULL, 10);
        } else if (strcmp(opt, "--until") == 0) {
            until = strtoll(value, NULL, 10);
        } else if (strcmp(opt, "--rcpt") == 0) {
            char *fields[6];
            if (count == DSN_TOOL_RCPTS_MAX || split_rcpt(value, fields) != 0) {
                return usage();
            }
            static const char *const actions[] = {"failed", "delayed", "delivered", "relayed"};
            int action = -1;
            for (int a = 0; a < 4; a++) {
                if (strcmp(fields[3], actions[a]) == 0) {
                    action = a;
                }
            }
            if (action < 0) {
                return usage();
            }
            rcpts[count] = (struct queue_rcpt){.address = fields[0],
                                               .orcpt = fields[1],
                                               .notify = parse_notify(fields[2]),
                                               .state = QUEUE_RCPT_PENDING,
                                               .last_reply = fields[5]};
            reports[count] = (struct dsn_rcpt_report){.rcpt_index = count,
                                                      .action = (enum dsn_action)action,
                                                      .remote_mta = fields[4],
                                                      .reply = NULL,
                                                      .last_attempt = now};
            count++;
        } else {
            return usage();
        }
    }
    if (count == 0) {
        return usage();
    }
    entry.rcpts = rcpts;
    entry.rcpt_count = count;

    char *message = malloc(DSN_TOOL_MESSAGE_BYTES_MAX);
    if (message == NULL) {
        return 2;
    }
    size_t message_len = fread(message, 1, DSN_TOOL_MESSAGE_BYTES_MAX, stdin);
    entry.size = message_len;
    struct dsn_request request = {.entry = &entry,
                                  .reports = reports,
                                  .report_count = count,
                                  .hostname = host,
                                  .now = now,
                                  .retry_until = until,
                                  .message = message,
                                  .message_len = message_len,
                                  .message_bytes = message_len};
    struct dsn_result result;
    int rc = dsn_compose(&request, &result);
    free(message);
    if (rc != 0) {
        (void)fprintf(stderr, "dsn_compose: %s\n", strerror(-rc));
        return 3;
    }
    size_t written = fwrite(result.bytes, 1, result.len, stdout);
    free(result.bytes);
    return written == result.len && fflush(stdout) == 0 ? 0 : 2;
}
