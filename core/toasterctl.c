/*
 * core/toasterctl.c - the operator's tool.
 *
 * This version answers questions from the configuration and the tables on
 * disk, without a running daemon:
 *   toasterctl [-c FILE] config            the effective configuration
 *   toasterctl [-c FILE] resolve ADDRESS…  where mail for each address goes,
 *                                          as the SMTP server would decide
 * Later versions add users, queue, stats and reload over the control socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/limits.h"
#include "store/recipients.h"

static void
usage(FILE *out)
{
    (void)fprintf(out, "usage: toasterctl [-c FILE] config\n"
                       "       toasterctl [-c FILE] resolve ADDRESS...\n");
}

static int
resolve(const struct config *config, int count, char **addresses)
{
    struct recipients *table = NULL;
    char err[1024] = "";
    int rc = recipients_load_config(config, &table, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    static const char *mailboxes[ALIAS_EXPANSION_MAX];
    static const char *remotes[ALIAS_EXPANSION_MAX];
    int status = 0;
    for (int i = 0; i < count; i++) {
        struct recipients_result result = {
            .mailboxes = mailboxes,
            .mailbox_capacity = ALIAS_EXPANSION_MAX,
            .remotes = remotes,
            .remote_capacity = ALIAS_EXPANSION_MAX,
        };
        enum recipients_status verdict =
            recipients_resolve(table, span_make(addresses[i], strlen(addresses[i])), &result);
        switch (verdict) {
        case RECIPIENTS_OK:
            for (size_t j = 0; j < result.mailbox_count && j < result.mailbox_capacity; j++) {
                char path[4096];
                if (recipients_maildir_path(config->data_dir, result.mailboxes[j], path,
                                            sizeof(path)) != 0) {
                    (void)snprintf(path, sizeof(path), "(unsafe name)");
                }
                printf("%s: mailbox %s %s\n", addresses[i], result.mailboxes[j], path);
            }
            for (size_t j = 0; j < result.remote_count && j < result.remote_capacity; j++) {
                printf("%s: remote %s\n", addresses[i], result.remotes[j]);
            }
            break;
        case RECIPIENTS_UNKNOWN_USER:
            printf("%s: unknown user (550 5.1.1)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_NOT_LOCAL:
        case RECIPIENTS_RELAY_FORM:
            printf("%s: not local, relay denied (554 5.7.1)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_ALIAS_LOOP:
            printf("%s: alias loop or nesting too deep (451 4.3.0)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_TOO_MANY:
            printf("%s: expands to too many mailboxes (451 4.3.0)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_SYNTAX:
            printf("%s: bad address syntax (501 5.1.3)\n", addresses[i]);
            status = 1;
            break;
        }
    }
    recipients_destroy(&table);
    return status;
}

int
main(int argc, char **argv)
{
    const char *config_path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+c:h")) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    static struct config config;
    config_defaults(&config);
    char err[1024];
    if (config_path != NULL && config_load_file(&config, config_path, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err);
        return 1;
    }
    if (config_finish(&config, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err);
        return 1;
    }
    const char *command = argv[optind];
    if (strcmp(command, "config") == 0 && optind + 1 == argc) {
        config_dump(&config, STDOUT_FILENO);
        return 0;
    }
    if (strcmp(command, "resolve") == 0 && optind + 1 < argc) {
        return resolve(&config, argc - optind - 1, argv + optind + 1);
    }
    usage(stderr);
    return 2;
}
