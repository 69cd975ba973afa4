/*
 * tests/tools/dns_query.c - ask the resolver of core/dns.h questions the
 * way a filter does, and print the answers; for tests/integration/
 * test_dns.py and for operators checking an override file.
 *
 *   dns_query [--server LIST] [--override FILE] [--timeout-ms N] [--tries N]
 *             [--ttl-max S] [--negative-ttl-max S] [--batches N]
 *             [--repeat N] [--sleep-ms N] [--stats] [--oneshot [--abandon]]
 *             [--threads N]
 *             TYPE NAME [TYPE NAME ...]
 *
 * Each round runs every batch (--batches, default 1) like a filter: all
 * questions are looked up; when some are pending it waits with
 * dns_batch_wait and runs again from the start. Rounds (--repeat) share
 * the resolver and so its cache, with --sleep-ms between them. Output, for
 * batch 0 of each round:
 *
 *   round 1 elapsed_ms=12
 *   example.org MX OK 300 10 mx.example.org
 *   nx.example.org A NXDOMAIN 60
 *   bad..name A INVALID
 *
 * then "stats name=value ..." with --stats. Every other batch must have got
 * the same answers (else "mismatch" and exit 1). With --oneshot each
 * question goes through dns_resolve instead, and a round prints
 * "oneshot elapsed_ms=N synchronous=N" (answers given before dns_resolve
 * returned) and the answers; --abandon then destroys the resolver without
 * waiting (every question must still be answered, TEMPFAIL). With
 * --threads N, N threads each run --repeat filter runs with their own
 * batch at once and "threads elapsed_ms=N runs=N failures=N" is printed
 * with each question's status (a failure: a run left pending, or a status
 * that changed). Exit 2 on bad usage or configuration.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dns.h"
#include "core/dns_parse.h"

#define QUESTIONS_MAX 128
#define BATCHES_MAX 256
#define PASSES_MAX 4

int main(int argc, char **argv);

struct question {
    enum dns_type type;
    const char   *name;
};

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    unsigned        fired;
};

static struct waiter waiter = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static void
on_ready(void *arg)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->fired++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
print_text(FILE *out, const char *text, uint32_t len)
{
    fputc('"', out);
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        } else if (c < 0x20 || c > 0x7e) {
            fprintf(out, "\\%03u", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

static void
print_answer_to(FILE *out, const struct question *q, int rc, const struct dns_answer *answer)
{
    const char *type = dns_type_name(q->type);
    if (rc == -EINVAL) {
        fprintf(out, "%s %s INVALID\n", q->name, type);
        return;
    }
    if (answer->status != DNS_STATUS_OK) {
        fprintf(out, "%s %s %s %u%s\n", q->name, type, dns_status_name(answer->status), answer->ttl,
               answer->authenticated ? " ad" : "");
        return;
    }
    for (uint32_t i = 0; i < answer->count; i++) {
        const struct dns_record *r = &answer->records[i];
        char address[INET6_ADDRSTRLEN];
        fprintf(out, "%s %s OK %u%s ", q->name, type, answer->ttl, answer->authenticated ? " ad" : "");
        switch (q->type) {
        case DNS_TYPE_A:
            fprintf(out, "%s", inet_ntop(AF_INET, &r->a, address, sizeof(address)));
            break;
        case DNS_TYPE_AAAA:
            fprintf(out, "%s", inet_ntop(AF_INET6, &r->aaaa, address, sizeof(address)));
            break;
        case DNS_TYPE_MX:
            fprintf(out, "%u %s", r->mx.preference, r->mx.host[0] != '\0' ? r->mx.host : ".");
            break;
        case DNS_TYPE_PTR:
            fprintf(out, "%s", r->ptr);
            break;
        case DNS_TYPE_TXT:
            print_text(out, r->txt.text, r->txt.len);
            break;
        case DNS_TYPE_TLSA:
            fprintf(out, "%u %u %u ", r->tlsa.usage, r->tlsa.selector, r->tlsa.matching);
            for (uint32_t k = 0; k < r->tlsa.len; k++) {
                fprintf(out, "%02x", r->tlsa.data[k]);
            }
            break;
        }
        fputc('\n', out);
    }
}

static void
print_answer(const struct question *q, int rc, const struct dns_answer *answer)
{
    print_answer_to(stdout, q, rc, answer);
}

/* --oneshot: each question through dns_resolve; done formats the answer
 * (valid only during the call) into the question's text. */
struct oneshot {
    const struct question *question;
    char                  *text;
    size_t                 text_len;
    bool                   is_synchronous;
};

static void
oneshot_done(void *arg, const struct dns_answer *answer)
{
    struct oneshot *shot = arg;
    FILE *out = open_memstream(&shot->text, &shot->text_len);
    if (out == NULL) {
        abort();
    }
    print_answer_to(out, shot->question, 0, answer);
    fclose(out);
    on_ready(&waiter);
}

static int
run_oneshots(struct dns_resolver **resolver_io, const struct question *questions, size_t count,
             bool is_abandoned)
{
    struct dns_resolver *resolver = *resolver_io;
    static struct oneshot shots[QUESTIONS_MAX];
    pthread_mutex_lock(&waiter.lock);
    waiter.fired = 0;
    pthread_mutex_unlock(&waiter.lock);
    unsigned expected = 0;
    unsigned synchronous = 0;
    uint64_t start_ms = now_ms();
    for (size_t q = 0; q < count; q++) {
        shots[q] = (struct oneshot){ .question = &questions[q] };
        int rc = dns_resolve(resolver, questions[q].type, questions[q].name, oneshot_done,
                             &shots[q]);
        if (rc == 0 || rc == -EINPROGRESS) {
            expected++;
            shots[q].is_synchronous = rc == 0;
            synchronous += rc == 0 ? 1 : 0;
        } else if (rc == -EINVAL) {
            FILE *out = open_memstream(&shots[q].text, &shots[q].text_len);
            print_answer_to(out, &questions[q], rc, NULL);
            fclose(out);
        } else {
            fprintf(stderr, "dns_query: dns_resolve: %s\n", strerror(-rc));
            return 1;
        }
    }
    if (is_abandoned) {
        /* Shut down with the questions pending (after 100 ms, so they
         * are out on the network): each must be answered before
         * dns_resolver_destroy returns. */
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 100 * 1000000L };
        nanosleep(&ts, NULL);
        dns_resolver_destroy(resolver_io);
        pthread_mutex_lock(&waiter.lock);
        bool is_complete = waiter.fired == expected;
        pthread_mutex_unlock(&waiter.lock);
        if (!is_complete) {
            fprintf(stderr, "dns_query: questions left unanswered at shutdown\n");
            return 1;
        }
    }
    pthread_mutex_lock(&waiter.lock);
    while (waiter.fired < expected) {
        pthread_cond_wait(&waiter.cond, &waiter.lock);
    }
    pthread_mutex_unlock(&waiter.lock);
    printf("oneshot elapsed_ms=%llu synchronous=%u\n", (unsigned long long)(now_ms() - start_ms),
           synchronous);
    for (size_t q = 0; q < count; q++) {
        fputs(shots[q].text, stdout);
        free(shots[q].text);
    }
    return 0;
}

static int
usage(void)
{
    fprintf(stderr, "usage: dns_query [--server LIST] [--override FILE] [--timeout-ms N] "
                    "[--tries N] [--ttl-max S] [--negative-ttl-max S] [--batches N] "
                    "[--repeat N] [--sleep-ms N] [--stats] [--oneshot [--abandon]] [--threads N] TYPE NAME...\n");
    return 2;
}

static bool
parse_count(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* --threads: each thread runs `rounds` filter runs of all questions with
 * its own batch (reset between runs), as workers do, and checks that a
 * run ends with every question answered and each status the same as in
 * its first run. */
struct worker {
    pthread_t              thread;
    struct dns_resolver   *resolver;
    const struct question *questions;
    size_t                 count;
    unsigned long          rounds;
    struct waiter          waiter;
    enum dns_status        first[QUESTIONS_MAX];
    unsigned long          failures;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct dns_batch *batch = NULL;
    if (dns_batch_create(w->resolver, &batch) != 0) {
        w->failures++;
        return NULL;
    }
    for (unsigned long round = 0; round < w->rounds; round++) {
        bool is_done = false;
        for (int pass = 0; pass < PASSES_MAX && !is_done; pass++) {
            is_done = true;
            for (size_t q = 0; q < w->count; q++) {
                const struct dns_answer *answer = NULL;
                int rc = dns_batch_lookup(batch, w->questions[q].type, w->questions[q].name,
                                          &answer);
                if (rc == -EINPROGRESS) {
                    is_done = false;
                } else if (rc == 0 && round == 0) {
                    w->first[q] = answer->status;
                } else if (rc == 0 && answer->status != w->first[q]) {
                    w->failures++;
                }
            }
            pthread_mutex_lock(&w->waiter.lock);
            w->waiter.fired = 0;
            pthread_mutex_unlock(&w->waiter.lock);
            if (!is_done && dns_batch_wait(batch, on_ready, &w->waiter)) {
                pthread_mutex_lock(&w->waiter.lock);
                while (w->waiter.fired == 0) {
                    pthread_cond_wait(&w->waiter.cond, &w->waiter.lock);
                }
                pthread_mutex_unlock(&w->waiter.lock);
            }
        }
        if (!is_done) {
            w->failures++;
        }
        dns_batch_reset(batch);
    }
    dns_batch_destroy(&batch);
    return NULL;
}

static int
run_threads(struct dns_resolver *resolver, const struct question *questions, size_t count,
            unsigned long thread_count, unsigned long rounds)
{
    static struct worker workers[BATCHES_MAX];
    uint64_t start_ms = now_ms();
    for (unsigned long t = 0; t < thread_count; t++) {
        workers[t] = (struct worker){
            .resolver = resolver,
            .questions = questions,
            .count = count,
            .rounds = rounds,
        };
        pthread_mutex_init(&workers[t].waiter.lock, NULL);
        pthread_cond_init(&workers[t].waiter.cond, NULL);
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) {
            fprintf(stderr, "dns_query: pthread_create failed\n");
            return 1;
        }
    }
    unsigned long failures = 0;
    for (unsigned long t = 0; t < thread_count; t++) {
        pthread_join(workers[t].thread, NULL);
        failures += workers[t].failures;
    }
    printf("threads elapsed_ms=%llu runs=%lu failures=%lu\n",
           (unsigned long long)(now_ms() - start_ms), thread_count * rounds, failures);
    for (size_t q = 0; q < count; q++) {
        printf("%s %s %s\n", questions[q].name, dns_type_name(questions[q].type),
               dns_status_name(workers[0].first[q]));
    }
    return failures == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    struct dns_config config;
    dns_config_defaults(&config);
    unsigned long batch_count = 1;
    unsigned long repeat = 1;
    unsigned long sleep_ms = 0;
    bool with_stats = false;
    bool is_oneshot = false;
    bool is_abandoned = false;
    unsigned long thread_count = 0;
    static struct question questions[QUESTIONS_MAX];
    size_t question_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        unsigned long v = 0;
        bool has_value = i + 1 < argc;
        if (strcmp(arg, "--stats") == 0) {
            with_stats = true;
        } else if (strcmp(arg, "--oneshot") == 0) {
            is_oneshot = true;
        } else if (strcmp(arg, "--abandon") == 0) {
            is_abandoned = true;
        } else if (strcmp(arg, "--threads") == 0 && has_value &&
                   parse_count(argv[i + 1], BATCHES_MAX, &thread_count) && thread_count > 0) {
            i++;
        } else if (strcmp(arg, "--server") == 0 && has_value) {
            config.servers = argv[++i];
        } else if (strcmp(arg, "--override") == 0 && has_value) {
            config.override_file = argv[++i];
        } else if (strcmp(arg, "--timeout-ms") == 0 && has_value &&
                   parse_count(argv[i + 1], UINT32_MAX, &v)) {
            config.timeout_ms = (uint32_t)v;
            i++;
        } else if (strcmp(arg, "--tries") == 0 && has_value &&
                   parse_count(argv[i + 1], UINT32_MAX, &v)) {
            config.tries = (uint32_t)v;
            i++;
        } else if (strcmp(arg, "--ttl-max") == 0 && has_value &&
                   parse_count(argv[i + 1], UINT32_MAX, &v)) {
            config.ttl_max_s = (uint32_t)v;
            i++;
        } else if (strcmp(arg, "--negative-ttl-max") == 0 && has_value &&
                   parse_count(argv[i + 1], UINT32_MAX, &v)) {
            config.negative_ttl_max_s = (uint32_t)v;
            i++;
        } else if (strcmp(arg, "--batches") == 0 && has_value &&
                   parse_count(argv[i + 1], BATCHES_MAX, &batch_count) && batch_count > 0) {
            i++;
        } else if (strcmp(arg, "--repeat") == 0 && has_value &&
                   parse_count(argv[i + 1], 100, &repeat) && repeat > 0) {
            i++;
        } else if (strcmp(arg, "--sleep-ms") == 0 && has_value &&
                   parse_count(argv[i + 1], 60000, &sleep_ms)) {
            i++;
        } else if (arg[0] != '-' && has_value && question_count < QUESTIONS_MAX) {
            if (dns_type_from_name(arg, &questions[question_count].type) != 0) {
                fprintf(stderr, "dns_query: unknown type %s\n", arg);
                return 2;
            }
            questions[question_count++].name = argv[++i];
        } else {
            return usage();
        }
    }
    if (question_count == 0) {
        return usage();
    }
    char error[256];
    struct dns_resolver *resolver = NULL;
    int rc = dns_resolver_create(&config, &resolver, error, sizeof(error));
    if (rc != 0) {
        fprintf(stderr, "dns_query: %s (%s)\n", error, strerror(-rc));
        return 2;
    }
    static struct dns_batch *batches[BATCHES_MAX];
    static const struct dns_answer *answers[BATCHES_MAX][QUESTIONS_MAX];
    static int codes[BATCHES_MAX][QUESTIONS_MAX];
    int status = 0;
    if (thread_count > 0) {
        status = run_threads(resolver, questions, question_count, thread_count, repeat);
        repeat = 0; /* the threads ran the rounds */
    }
    for (unsigned long round = 1; round <= repeat && status == 0 && is_oneshot; round++) {
        if (round > 1 && sleep_ms > 0) {
            struct timespec ts = { .tv_sec = (time_t)(sleep_ms / 1000),
                                   .tv_nsec = (long)(sleep_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        status = run_oneshots(&resolver, questions, question_count, is_abandoned);
        if (resolver == NULL) {
            break;
        }
    }
    for (unsigned long round = 1; round <= repeat && status == 0 && !is_oneshot; round++) {
        if (round > 1 && sleep_ms > 0) {
            struct timespec ts = { .tv_sec = (time_t)(sleep_ms / 1000),
                                   .tv_nsec = (long)(sleep_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        uint64_t start_ms = now_ms();
        for (unsigned long b = 0; b < batch_count; b++) {
            if (dns_batch_create(resolver, &batches[b]) != 0) {
                fprintf(stderr, "dns_query: out of memory\n");
                return 1;
            }
        }
        /* Run every batch as a filter would until none is pending. */
        bool is_done = false;
        for (int pass = 0; pass < PASSES_MAX && !is_done; pass++) {
            is_done = true;
            unsigned armed = 0;
            pthread_mutex_lock(&waiter.lock);
            waiter.fired = 0;
            pthread_mutex_unlock(&waiter.lock);
            for (unsigned long b = 0; b < batch_count; b++) {
                struct dns_source source = dns_batch_source(batches[b]);
                bool is_complete = true;
                for (size_t q = 0; q < question_count; q++) {
                    answers[b][q] = NULL;
                    codes[b][q] = dns_source_lookup(&source, questions[q].type,
                                                    questions[q].name, &answers[b][q]);
                    if (codes[b][q] == -EINPROGRESS) {
                        is_complete = false;
                    }
                }
                if (!is_complete) {
                    is_done = false;
                    if (dns_batch_wait(batches[b], on_ready, &waiter)) {
                        armed++;
                    }
                }
            }
            pthread_mutex_lock(&waiter.lock);
            while (waiter.fired < armed) {
                pthread_cond_wait(&waiter.cond, &waiter.lock);
            }
            pthread_mutex_unlock(&waiter.lock);
        }
        if (!is_done) {
            fprintf(stderr, "dns_query: still pending after %d passes\n", PASSES_MAX);
            return 1;
        }
        printf("round %lu elapsed_ms=%llu\n", round,
               (unsigned long long)(now_ms() - start_ms));
        for (size_t q = 0; q < question_count; q++) {
            print_answer(&questions[q], codes[0][q], answers[0][q]);
            for (unsigned long b = 1; b < batch_count; b++) {
                bool is_same = codes[b][q] == codes[0][q] &&
                               (codes[0][q] != 0 ||
                                (answers[b][q]->status == answers[0][q]->status &&
                                 answers[b][q]->count == answers[0][q]->count));
                if (!is_same) {
                    printf("mismatch batch %lu %s %s\n", b, dns_type_name(questions[q].type),
                           questions[q].name);
                    status = 1;
                }
            }
        }
        for (unsigned long b = 0; b < batch_count; b++) {
            dns_batch_destroy(&batches[b]);
        }
    }
    if (with_stats && resolver != NULL) {
        struct dns_stats s;
        dns_resolver_stats(resolver, &s);
        printf("stats queries_sent=%llu queries_shared=%llu cache_hits=%llu cache_misses=%llu "
               "override_answers=%llu timeouts=%llu tempfails=%llu refused=%llu\n",
               (unsigned long long)s.queries_sent, (unsigned long long)s.queries_shared,
               (unsigned long long)s.cache_hits, (unsigned long long)s.cache_misses,
               (unsigned long long)s.override_answers, (unsigned long long)s.timeouts,
               (unsigned long long)s.tempfails, (unsigned long long)s.refused);
    }
    fflush(stdout);
    dns_resolver_destroy(&resolver);
    return status;
}
