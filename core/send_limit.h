/*
 * core/send_limit.h - per-user sending rate: how many messages each
 * authenticated user sent in the last hour, against
 * submission_messages_per_hour.
 *
 * The hour is twelve buckets of five minutes, so the window slides in
 * steps of five minutes (a message counts for 55 to 60 minutes). A fixed
 * table of SEND_LIMIT_SETS x SEND_LIMIT_WAYS users (set-associative; the
 * least recently seen user of a full set gives way, forgetting its count):
 * memory is bounded whatever the users do. Any thread; one short mutex.
 * The clock is passed in (seconds, monotonic), so tests control it.
 */
#ifndef TOASTER_CORE_SEND_LIMIT_H
#define TOASTER_CORE_SEND_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define SEND_LIMIT_BUCKETS 12
#define SEND_LIMIT_BUCKET_S 300
#define SEND_LIMIT_SETS 512
#define SEND_LIMIT_WAYS 8
#define SEND_LIMIT_USER_BYTES 256

struct send_limit; /* opaque */

/* A table allowing messages_per_hour per user (0: no limit, nothing is
 * kept and every check passes). Returns 0 or -ENOMEM. */
int send_limit_create(uint32_t messages_per_hour, struct send_limit **limit_out);

/* Free and NULL. Safe with NULL. */
void send_limit_destroy(struct send_limit **limit);

/* Whether user may send one more message now (it has sent fewer than the
 * limit in the window). Does not count it. */
bool send_limit_allows(struct send_limit *limit, const char *user, uint64_t now_s);

/* Count one accepted message of user. */
void send_limit_count(struct send_limit *limit, const char *user, uint64_t now_s);

/* Messages of user in the window (tests, logs). */
uint32_t send_limit_sent(struct send_limit *limit, const char *user, uint64_t now_s);

#endif
