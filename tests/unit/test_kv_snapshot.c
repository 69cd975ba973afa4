/*
 * tests/unit/test_kv_snapshot.c - snapshots of the embedded key-value
 * store: save and load round trip with binary keys and values at their
 * bounds, time to live kept across a "restart" (a new store on another
 * monotonic clock, the wall clock moved on), entries expired by the wall
 * clock skipped, every flipped byte, every truncation, trailing bytes and
 * hand-made files with a right checksum but a wrong field refused with
 * nothing loaded, a file larger than the store (dropped and counted), live
 * keys kept over the file's, writers hammering the store during saves, a
 * failing save (temporary path taken, file size limit, missing directory,
 * read-only directory when not root) leaving the old file whole, and the
 * saver thread: periodic, prompt stop with the last write in, interval 0,
 * and kv_snapshot_open as the daemon calls it (directory made, a torn file
 * set aside as .bad and the start going on empty). Files live in a fresh directory under $TMPDIR or /tmp.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/kv.h"
#include "core/kv_snapshot.h"
#include "tests/unit/unit.h"

int main(void);

#define WALL_MS 1800000000000ull /* 2027-01-15, any fixed instant will do */

static uint64_t clock_a_ms;
static uint64_t clock_b_ms;
static char dir[256];
static char path[512];

static uint64_t
fake_clock(void *arg)
{
    return __atomic_load_n((uint64_t *)arg, __ATOMIC_RELAXED);
}

static struct kv *
store_new(uint32_t entry_count, uint64_t *clock_ms)
{
    struct kv *kv = NULL;
    int rc = kv_embedded_create(entry_count, fake_clock, clock_ms, &kv);
    CHECK(rc == 0);
    if (rc != 0) {
        abort();
    }
    return kv;
}

static int
set_str(struct kv *kv, const char *key, const char *value, uint32_t ttl_s)
{
    return kv_set(kv, key, strlen(key), value, strlen(value), ttl_s);
}

/* Whether key holds exactly value (bytes). */
static bool
has(struct kv *kv, const void *key, size_t key_len, const void *value, size_t value_len)
{
    uint8_t got[KV_VALUE_BYTES_MAX];
    size_t len = 0;
    return kv_get(kv, key, key_len, got, sizeof(got), &len) == 0 && len == value_len &&
           memcmp(got, value, len) == 0;
}

static bool
has_str(struct kv *kv, const char *key, const char *value)
{
    return has(kv, key, strlen(key), value, strlen(value));
}

static bool
absent(struct kv *kv, const char *key)
{
    uint8_t got[KV_VALUE_BYTES_MAX];
    size_t len = 0;
    return kv_get(kv, key, strlen(key), got, sizeof(got), &len) == -ENOENT;
}

static bool
file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static long
file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static size_t
read_file(const char *p, uint8_t *out, size_t out_bytes)
{
    FILE *f = fopen(p, "rb");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(out, 1, out_bytes, f);
    (void)fclose(f);
    return n;
}

static void
write_file(const char *p, const uint8_t *bytes, size_t len)
{
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    CHECK(fwrite(bytes, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the format, written independently of the module ---------------------- */

static uint64_t
fnv64(uint64_t h, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static void
put64(uint8_t *out, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++) {
        out[i] = (uint8_t)(v >> (8 * i));
    }
}

/* A snapshot file from a body, with header fields as given and the
 * checksum computed right. Returns its length. */
static size_t
craft(uint8_t *out, uint32_t version, uint64_t entry_count, const uint8_t *body,
      size_t body_len)
{
    memset(out, 0, 48);
    memcpy(out, "TOASTKV", 8);
    out[8] = (uint8_t)version;
    out[12] = 48;
    put64(out + 16, entry_count);
    put64(out + 24, body_len);
    put64(out + 32, WALL_MS);
    memcpy(out + 48, body, body_len);
    uint64_t h = fnv64(14695981039346656037ull, body, body_len);
    h = fnv64(h, out, 40);
    put64(out + 40, h);
    return 48 + body_len;
}

static size_t
record(uint8_t *out, size_t key_len, size_t value_len, uint64_t expires_wall_ms)
{
    out[0] = (uint8_t)key_len;
    out[1] = (uint8_t)value_len;
    put64(out + 2, expires_wall_ms);
    memset(out + 10, 'k', key_len);
    memset(out + 10 + key_len, 'v', value_len);
    return 10 + key_len + value_len;
}

/* ---- tests ----------------------------------------------------------------- */

static void
test_round_trip(void)
{
    clock_a_ms = 1000000;
    clock_b_ms = 7;
    struct kv *kv = store_new(1024, &clock_a_ms);
    uint8_t key_max[KV_KEY_BYTES_MAX];
    uint8_t value_max[KV_VALUE_BYTES_MAX];
    for (size_t i = 0; i < sizeof(key_max); i++) {
        key_max[i] = (uint8_t)(255 - i);
    }
    for (size_t i = 0; i < sizeof(value_max); i++) {
        value_max[i] = (uint8_t)i; /* NULs and control bytes */
    }
    CHECK(kv_set(kv, key_max, sizeof(key_max), value_max, sizeof(value_max), 0) == 0);
    CHECK(kv_set(kv, "\0", 1, "\0\xff\n", 3, 100) == 0);
    CHECK(kv_set(kv, "empty", 5, NULL, 0, 0) == 0);
    uint64_t counter = 0;
    for (int i = 0; i < 41; i++) {
        CHECK(kv_incr(kv, "rate", 4, 3600, &counter) == 0);
    }
    CHECK(set_str(kv, "triplet:1.2.3.4:<a@b>:<c@d>", "1", 86400) == 0);
    CHECK(set_str(kv, "gone", "x", 0) == 0);
    CHECK(kv_delete(kv, "gone", 4) == 0);

    struct kv_snapshot_stats stats = {.entry_count = 99};
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, &stats) == 0);
    CHECK(stats.entry_count == 5);
    CHECK(access(path, R_OK) == 0);
    char tmp[600];
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    CHECK(!file_exists(tmp));
    /* Header and five records: 48 + 5 * 10 + keys + values. */
    long want = 48 + 5 * 10 + (64 + 64) + (1 + 3) + (5 + 0) + (4 + 2) + (27 + 1);
    CHECK(file_size(path) == want);
    uint8_t head[48];
    CHECK(read_file(path, head, sizeof(head)) == sizeof(head));
    CHECK(memcmp(head, "TOASTKV", 8) == 0);
    CHECK(head[8] == KV_SNAPSHOT_VERSION && head[16] == 5);

    struct kv *back = store_new(1024, &clock_b_ms);
    memset(&stats, 0xff, sizeof(stats));
    CHECK(kv_embedded_load_at(back, path, WALL_MS, &stats) == 0);
    CHECK(stats.entry_count == 5 && stats.expired_count == 0 && stats.full_count == 0 &&
          stats.present_count == 0);
    CHECK(kv_count(back) == 5);
    CHECK(has(back, key_max, sizeof(key_max), value_max, sizeof(value_max)));
    CHECK(has(back, "\0", 1, "\0\xff\n", 3));
    CHECK(has(back, "empty", 5, "", 0));
    CHECK(has_str(back, "rate", "41"));
    CHECK(kv_incr(back, "rate", 4, 3600, &counter) == 0 && counter == 42);
    CHECK(has_str(back, "triplet:1.2.3.4:<a@b>:<c@d>", "1"));
    CHECK(absent(back, "gone"));

    /* An empty store saves a header alone, and loads as nothing. */
    struct kv *empty = store_new(8, &clock_a_ms);
    CHECK(kv_embedded_save_at(empty, path, WALL_MS, &stats) == 0 && stats.entry_count == 0);
    CHECK(file_size(path) == 48);
    CHECK(kv_embedded_load_at(empty, path, WALL_MS, &stats) == 0 && stats.entry_count == 0);
    kv_destroy(&empty);
    kv_destroy(&back);
    kv_destroy(&kv);
}

static void
test_ttl_kept(void)
{
    clock_a_ms = 1000000;
    struct kv *kv = store_new(1024, &clock_a_ms);
    CHECK(set_str(kv, "grey", "first-seen", 100) == 0);
    uint64_t counter = 0;
    CHECK(kv_incr(kv, "window", 6, 100, &counter) == 0 && counter == 1);
    CHECK(set_str(kv, "forever", "1", 0) == 0);
    clock_a_ms += 30000; /* 70 s left */
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, NULL) == 0);

    /* Restart 10 s later: another machine boot, another monotonic origin. */
    clock_b_ms = 5000;
    struct kv *back = store_new(1024, &clock_b_ms);
    CHECK(kv_embedded_load_at(back, path, WALL_MS + 10000, NULL) == 0);
    CHECK(has_str(back, "grey", "first-seen"));
    clock_b_ms = 5000 + 59999;
    CHECK(has_str(back, "grey", "first-seen"));
    CHECK(kv_incr(back, "window", 6, 100, &counter) == 0 && counter == 2); /* same window */
    clock_b_ms = 5000 + 60000;
    CHECK(absent(back, "grey"));
    CHECK(absent(back, "window"));
    clock_b_ms += 1000ull * 86400 * 365;
    CHECK(has_str(back, "forever", "1"));

    /* An expiry further off than kv_set could give (a wall clock set far
     * back since the save) is cut to the longest one (u32 seconds). */
    uint8_t body[64];
    uint8_t file[128];
    size_t n = record(body, 1, 1, WALL_MS + 10 * (uint64_t)UINT32_MAX * 1000u);
    write_file(path, file, craft(file, 1, 1, body, n));
    clock_b_ms = 0;
    struct kv *skewed = store_new(64, &clock_b_ms);
    CHECK(kv_embedded_load_at(skewed, path, WALL_MS, NULL) == 0);
    clock_b_ms = (uint64_t)UINT32_MAX * 1000u - 1;
    CHECK(has_str(skewed, "k", "v"));
    clock_b_ms += 1;
    CHECK(absent(skewed, "k"));
    kv_destroy(&skewed);
    kv_destroy(&back);
    kv_destroy(&kv);
}

static void
test_expired_skipped(void)
{
    clock_a_ms = 1;
    struct kv *kv = store_new(1024, &clock_a_ms);
    char key[32];
    for (int i = 0; i < 10; i++) {
        (void)snprintf(key, sizeof(key), "short%d", i);
        CHECK(set_str(kv, key, "s", 10) == 0);
        (void)snprintf(key, sizeof(key), "long%d", i);
        CHECK(set_str(kv, key, "l", 100) == 0);
    }
    CHECK(set_str(kv, "dead", "d", 1) == 0);
    clock_a_ms += 1000; /* "dead" expires in the store: not saved */
    struct kv_snapshot_stats stats;
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, &stats) == 0);
    CHECK(stats.entry_count == 20);

    clock_b_ms = 1;
    struct kv *back = store_new(1024, &clock_b_ms);
    CHECK(kv_embedded_load_at(back, path, WALL_MS + 9000, &stats) == 0); /* exactly at expiry */
    CHECK(stats.entry_count == 10 && stats.expired_count == 10);
    CHECK(absent(back, "short0") && has_str(back, "long9", "l"));
    kv_destroy(&back);
    back = store_new(1024, &clock_b_ms);
    CHECK(kv_embedded_load_at(back, path, WALL_MS + 8999, &stats) == 0); /* 1 ms before */
    CHECK(stats.entry_count == 20 && stats.expired_count == 0);
    clock_b_ms += 1;
    CHECK(absent(back, "short3"));
    kv_destroy(&back);
    kv_destroy(&kv);
}

/* Load must refuse with -EINVAL and leave the store empty. */
static bool
refused(const uint8_t *bytes, size_t len)
{
    write_file(path, bytes, len);
    clock_b_ms = 1;
    struct kv *back = store_new(64, &clock_b_ms);
    int rc = kv_embedded_load_at(back, path, WALL_MS, NULL);
    bool ok = rc == -EINVAL && kv_count(back) == 0;
    kv_destroy(&back);
    return ok;
}

static void
test_corrupt(void)
{
    clock_a_ms = 1;
    struct kv *kv = store_new(64, &clock_a_ms);
    CHECK(set_str(kv, "a", "1", 0) == 0);
    CHECK(set_str(kv, "bb", "22", 100) == 0);
    CHECK(kv_set(kv, "c\0c", 3, NULL, 0, 0) == 0);
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, NULL) == 0);
    kv_destroy(&kv);
    uint8_t good[4096];
    size_t good_len = read_file(path, good, sizeof(good));
    CHECK(good_len == 48 + 30 + 2 + 4 + 3);

    /* Each byte flipped, each truncation, one byte too many. */
    uint8_t bad[4096];
    size_t flips_refused = 0;
    for (size_t i = 0; i < good_len; i++) {
        memcpy(bad, good, good_len);
        bad[i] ^= 0x01;
        flips_refused += refused(bad, good_len);
    }
    CHECK(flips_refused == good_len);
    size_t cuts_refused = 0;
    for (size_t len = 0; len < good_len; len++) {
        cuts_refused += refused(good, len);
    }
    CHECK(cuts_refused == good_len);
    memcpy(bad, good, good_len);
    bad[good_len] = 0;
    CHECK(refused(bad, good_len + 1));

    /* Right checksums, wrong fields: the checks are more than the sum. */
    uint8_t body[1024];
    size_t n = record(body, 1, 1, 0);
    CHECK(!refused(bad, craft(bad, 1, 1, body, n))); /* the control: this one loads */
    CHECK(refused(bad, craft(bad, 2, 1, body, n)));  /* a version we do not read */
    CHECK(refused(bad, craft(bad, 1, 2, body, n)));  /* count above the records */
    CHECK(refused(bad, craft(bad, 1, 0, body, n)));  /* count below */
    CHECK(refused(bad, craft(bad, 1, (uint64_t)KV_EMBEDDED_ENTRIES_CEILING + 1, body, n)));
    CHECK(refused(bad, craft(bad, 1, UINT64_MAX, body, n)));
    n = record(body, 0, 1, 0);
    CHECK(refused(bad, craft(bad, 1, 1, body, n))); /* empty key */
    n = record(body, KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX, 0);
    CHECK(!refused(bad, craft(bad, 1, 1, body, n))); /* both at their max: fine */
    n = record(body, KV_KEY_BYTES_MAX + 1, 1, 0);
    CHECK(refused(bad, craft(bad, 1, 1, body, n))); /* key over max */
    n = record(body, 1, KV_VALUE_BYTES_MAX + 1, 0);
    CHECK(refused(bad, craft(bad, 1, 1, body, n))); /* value over max */
    /* Two records that overlap the declared sizes: a record claiming more
     * bytes than the body has left. */
    n = record(body, 1, 1, 0);
    (void)record(body + n, 5, 0, 0); /* second record: key of 5, but only 3 bytes follow */
    CHECK(refused(bad, craft(bad, 1, 2, body, n + 10 + 3)));
    CHECK(!refused(bad, craft(bad, 1, 2, body, n + 10 + 5))); /* the control */

    /* Not a regular file; missing. */
    (void)unlink(path);
    CHECK(mkdir(path, 0700) == 0);
    struct kv *back = store_new(64, &clock_b_ms);
    CHECK(kv_embedded_load_at(back, path, WALL_MS, NULL) == -EINVAL);
    CHECK(rmdir(path) == 0);
    CHECK(kv_embedded_load(back, path, NULL) == -ENOENT);
    kv_destroy(&back);
}

static void
test_over_capacity(void)
{
    clock_a_ms = 1;
    struct kv *kv = store_new(8192, &clock_a_ms);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        (void)snprintf(key, sizeof(key), "key%d", i);
        CHECK(set_str(kv, key, key, 0) == 0);
    }
    size_t saved = kv_count(kv); /* a few may have been evicted from full sets */
    CHECK(saved > 2900);
    /* A key the file will hold, for the "already live" case below. */
    char kept[32] = "";
    for (int i = 0; i < 3000 && kept[0] == '\0'; i++) {
        (void)snprintf(key, sizeof(key), "key%d", i);
        if (has_str(kv, key, key)) {
            memcpy(kept, key, sizeof(kept));
        }
    }
    CHECK(kept[0] != '\0');
    struct kv_snapshot_stats stats;
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, &stats) == 0 && stats.entry_count == saved);
    kv_destroy(&kv);

    clock_b_ms = 1;
    struct kv *small = store_new(64, &clock_b_ms);
    CHECK(kv_embedded_load_at(small, path, WALL_MS, &stats) == 0);
    CHECK(stats.entry_count == 64); /* 3000 keys over 8 sets of 8 fill every set */
    CHECK(stats.entry_count + stats.full_count == saved);
    CHECK(kv_count(small) == 64);
    kv_destroy(&small);

    /* A key already live keeps its value; loading twice adds nothing. */
    struct kv *back = store_new(65536, &clock_b_ms);
    CHECK(set_str(back, kept, "newer", 0) == 0);
    CHECK(kv_embedded_load_at(back, path, WALL_MS, &stats) == 0);
    CHECK(stats.present_count == 1 && stats.entry_count == saved - 1);
    CHECK(has_str(back, kept, "newer"));
    CHECK(kv_embedded_load_at(back, path, WALL_MS, &stats) == 0);
    CHECK(stats.entry_count == 0 && stats.present_count == saved);
    kv_destroy(&back);
}

/* ---- writers during saves -------------------------------------------------- */

#define HAMMER_THREADS 4
#define HAMMER_KEYS 500
#define STABLE_KEYS 2000

struct hammer {
    struct kv *kv;
    int        id;
    int       *is_done;
    int        error_count;
};

static void *
hammer_main(void *arg)
{
    struct hammer *h = arg;
    char key[32];
    char value[48];
    /* Until the saves are over; bounded by them. */
    for (unsigned gen = 0; !__atomic_load_n(h->is_done, __ATOMIC_ACQUIRE); gen++) {
        for (int i = 0; i < HAMMER_KEYS; i++) {
            (void)snprintf(key, sizeof(key), "w%d-%d", h->id, i);
            (void)snprintf(value, sizeof(value), "v%d-%d-%u", h->id, i, gen);
            if ((gen + (unsigned)i) % 7 == 0) {
                int rc = kv_delete(h->kv, key, strlen(key));
                h->error_count += rc != 0 && rc != -ENOENT;
            } else {
                h->error_count += set_str(h->kv, key, value, 0) != 0;
            }
            uint64_t counter = 0;
            (void)snprintf(key, sizeof(key), "n%d", h->id);
            h->error_count += kv_incr(h->kv, key, strlen(key), 0, &counter) != 0;
        }
    }
    return NULL;
}

/* Every entry a loaded snapshot holds is one some writer wrote whole. */
static int
check_item(const struct kv_embedded_item *item, void *arg)
{
    int *bad_count = arg;
    char key[KV_KEY_BYTES_MAX + 1];
    char value[KV_VALUE_BYTES_MAX + 1];
    memcpy(key, item->key, item->key_len);
    key[item->key_len] = '\0';
    memcpy(value, item->value, item->value_len);
    value[item->value_len] = '\0';
    int t = 0;
    int i = 0;
    unsigned gen = 0;
    int vt = -1;
    int vi = -1;
    if (key[0] == 'w') {
        bool ok = sscanf(key, "w%d-%d", &t, &i) == 2 &&
                  sscanf(value, "v%d-%d-%u", &vt, &vi, &gen) == 3 && vt == t && vi == i;
        *bad_count += !ok;
    } else if (key[0] == 'n') {
        *bad_count += strspn(value, "0123456789") != item->value_len || item->value_len == 0;
    } else if (key[0] == 's') {
        *bad_count += strcmp(key + 1, value + 1) != 0 || value[0] != 'S';
    } else {
        *bad_count += 1;
    }
    return 0;
}

static void
test_concurrent_writers(void)
{
    clock_a_ms = 1;
    struct kv *kv = store_new(65536, &clock_a_ms);
    char key[32];
    char value[32];
    for (int i = 0; i < STABLE_KEYS; i++) {
        (void)snprintf(key, sizeof(key), "s%d", i);
        (void)snprintf(value, sizeof(value), "S%d", i);
        CHECK(set_str(kv, key, value, 0) == 0);
    }
    int is_done = 0;
    struct hammer hammers[HAMMER_THREADS];
    pthread_t threads[HAMMER_THREADS];
    for (int t = 0; t < HAMMER_THREADS; t++) {
        hammers[t] = (struct hammer){.kv = kv, .id = t, .is_done = &is_done};
        CHECK(pthread_create(&threads[t], NULL, hammer_main, &hammers[t]) == 0);
    }
    int load_failures = 0;
    int stable_missing = 0;
    int bad_items = 0;
    for (int round = 0; round < 20; round++) {
        struct kv_snapshot_stats stats;
        if (kv_embedded_save_at(kv, path, WALL_MS, &stats) != 0) {
            load_failures++;
            continue;
        }
        clock_b_ms = 1;
        struct kv *back = store_new(65536, &clock_b_ms);
        struct kv_snapshot_stats loaded;
        load_failures += kv_embedded_load_at(back, path, WALL_MS, &loaded) != 0;
        load_failures += loaded.entry_count != stats.entry_count;
        for (int i = 0; i < STABLE_KEYS; i++) {
            (void)snprintf(key, sizeof(key), "s%d", i);
            (void)snprintf(value, sizeof(value), "S%d", i);
            stable_missing += !has_str(back, key, value);
        }
        CHECK(kv_embedded_foreach(back, check_item, &bad_items) == 0);
        kv_destroy(&back);
    }
    __atomic_store_n(&is_done, 1, __ATOMIC_RELEASE);
    int writer_errors = 0;
    for (int t = 0; t < HAMMER_THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        writer_errors += hammers[t].error_count;
    }
    CHECK(load_failures == 0);
    CHECK(stable_missing == 0);
    CHECK(bad_items == 0);
    CHECK(writer_errors == 0);
    kv_destroy(&kv);
}

/* ---- failing saves --------------------------------------------------------- */

static const struct kv_ops fake_ops = {.name = "fake"};

static void
test_failed_save_keeps_old(void)
{
    clock_a_ms = 1;
    struct kv *kv = store_new(8192, &clock_a_ms);
    CHECK(set_str(kv, "old", "1", 0) == 0);
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, NULL) == 0);
    long old_size = file_size(path);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        (void)snprintf(key, sizeof(key), "new%d", i);
        CHECK(set_str(kv, key, "2", 0) == 0);
    }
    char tmp[600];
    (void)snprintf(tmp, sizeof(tmp), "%s.tmp", path);

    /* The temporary path cannot be opened. */
    CHECK(mkdir(tmp, 0700) == 0);
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, NULL) == -EISDIR);
    CHECK(rmdir(tmp) == 0);
    CHECK(file_size(path) == old_size);

    /* The disk "fills" half way through the records. */
    struct rlimit saved_limit;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved_limit) == 0);
    struct rlimit small = saved_limit;
    small.rlim_cur = 4096;
    void (*saved_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    int rc = kv_embedded_save_at(kv, path, WALL_MS, NULL);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved_limit) == 0);
    (void)signal(SIGXFSZ, saved_handler);
    CHECK(rc == -EFBIG);
    CHECK(!file_exists(tmp));
    CHECK(file_size(path) == old_size);
    clock_b_ms = 1;
    struct kv *back = store_new(64, &clock_b_ms);
    CHECK(kv_embedded_load_at(back, path, WALL_MS, NULL) == 0);
    CHECK(has_str(back, "old", "1") && kv_count(back) == 1);
    kv_destroy(&back);

    /* A read-only directory (root writes anyway: checked only as a user). */
    if (geteuid() != 0) {
        CHECK(chmod(dir, 0500) == 0);
        CHECK(kv_embedded_save_at(kv, path, WALL_MS, NULL) == -EACCES);
        CHECK(chmod(dir, 0700) == 0);
        CHECK(file_size(path) == old_size);
    }

    /* No such directory; a name too long; not the embedded backend. */
    char missing[600];
    (void)snprintf(missing, sizeof(missing), "%s/nodir/x.kv", dir);
    CHECK(kv_embedded_save(kv, missing, NULL) == -ENOENT);
    char *long_path = malloc(5000);
    CHECK(long_path != NULL);
    memset(long_path, 'a', 4999);
    long_path[4999] = '\0';
    CHECK(kv_embedded_save(kv, long_path, NULL) == -ENAMETOOLONG);
    free(long_path);
    struct kv fake = {.ops = &fake_ops};
    CHECK(kv_embedded_save(&fake, path, NULL) == -EOPNOTSUPP);
    CHECK(kv_embedded_load(&fake, path, NULL) == -EOPNOTSUPP);
    CHECK(kv_embedded_foreach(&fake, check_item, NULL) == -EOPNOTSUPP);
    CHECK(kv_embedded_restore(&fake, "k", 1, "v", 1, 0) == -EOPNOTSUPP);
    struct kv_snapshot *snapshot = NULL;
    CHECK(kv_snapshot_start(&fake, path, 1, &snapshot) == -EOPNOTSUPP);

    /* After all that, a save works and replaces the file. */
    CHECK(kv_embedded_save_at(kv, path, WALL_MS, NULL) == 0);
    CHECK(file_size(path) > old_size);
    kv_destroy(&kv);
}

static void
test_restore_bounds(void)
{
    clock_a_ms = 1;
    struct kv *kv = store_new(8, &clock_a_ms);
    uint8_t big[KV_KEY_BYTES_MAX + 1] = {0};
    CHECK(kv_embedded_restore(kv, big, 0, "v", 1, 0) == -EINVAL);
    CHECK(kv_embedded_restore(kv, big, KV_KEY_BYTES_MAX + 1, "v", 1, 0) == -EINVAL);
    CHECK(kv_embedded_restore(kv, "k", 1, big, KV_VALUE_BYTES_MAX + 1, 0) == -EINVAL);
    CHECK(kv_embedded_restore(kv, "k", 1, "v", 1, (uint64_t)UINT32_MAX * 1000u + 1) == -EINVAL);
    CHECK(kv_embedded_restore(kv, "k", 1, "v", 1, (uint64_t)UINT32_MAX * 1000u) == 0);
    CHECK(kv_embedded_restore(kv, "k", 1, "w", 1, 0) == -EEXIST);
    /* One set of 8: the ninth key finds no room and evicts nothing. */
    char key[8];
    for (int i = 0; i < 7; i++) {
        (void)snprintf(key, sizeof(key), "r%d", i);
        CHECK(kv_embedded_restore(kv, key, strlen(key), "v", 1, 2000) == 0);
    }
    CHECK(kv_embedded_restore(kv, "r9", 2, "v", 1, 0) == -ENOSPC);
    CHECK(kv_count(kv) == 8 && has_str(kv, "k", "v"));
    clock_a_ms += 2000; /* the seven expire: room again */
    CHECK(kv_embedded_restore(kv, "r9", 2, "v", 1, 0) == 0);
    CHECK(kv_count(kv) == 2);
    kv_destroy(&kv);
}

/* ---- the saver thread ------------------------------------------------------ */

static bool
snapshot_has(const char *key, const char *value)
{
    struct kv *back = NULL;
    if (kv_embedded_create(1024, NULL, NULL, &back) != 0) {
        return false;
    }
    bool ok = kv_embedded_load(back, path, NULL) == 0 && has_str(back, key, value);
    kv_destroy(&back);
    return ok;
}

static void
test_saver(void)
{
    (void)unlink(path);
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, NULL, NULL, &kv) == 0);
    CHECK(set_str(kv, "a", "1", 3600) == 0);
    struct kv_snapshot *snapshot = NULL;
    CHECK(kv_snapshot_start(kv, path, KV_SNAPSHOT_INTERVAL_S_CEILING + 1, &snapshot) ==
          -EINVAL);
    CHECK(kv_snapshot_start(kv, "", 1, &snapshot) == -EINVAL);
    CHECK(snapshot == NULL);

    /* Every second: the file appears without anyone asking. */
    CHECK(kv_snapshot_start(kv, path, 1, &snapshot) == 0);
    uint64_t start_ms = now_ms();
    while (!file_exists(path) && now_ms() - start_ms < 10000) {
        (void)usleep(20000);
    }
    CHECK(snapshot_has("a", "1"));
    CHECK(set_str(kv, "b", "2", 0) == 0);
    CHECK(kv_snapshot_stop(&snapshot) == 0);
    CHECK(snapshot == NULL);
    CHECK(snapshot_has("b", "2"));
    CHECK(kv_snapshot_stop(&snapshot) == 0); /* NULL: nothing */

    /* A day's interval: stop is prompt all the same, and the last write is in. */
    CHECK(kv_snapshot_start(kv, path, KV_SNAPSHOT_INTERVAL_S_CEILING, &snapshot) == 0);
    CHECK(set_str(kv, "c", "3", 0) == 0);
    start_ms = now_ms();
    CHECK(kv_snapshot_stop(&snapshot) == 0);
    CHECK(now_ms() - start_ms < 2000);
    CHECK(snapshot_has("c", "3"));

    /* Interval 0: no thread, one save at stop. */
    CHECK(kv_snapshot_start(kv, path, 0, &snapshot) == 0);
    CHECK(set_str(kv, "d", "4", 0) == 0);
    CHECK(!snapshot_has("d", "4"));
    CHECK(kv_snapshot_stop(&snapshot) == 0);
    CHECK(snapshot_has("d", "4"));

    /* A saver that cannot write: logged, and stop says why. */
    char missing[600];
    (void)snprintf(missing, sizeof(missing), "%s/nodir/x.kv", dir);
    CHECK(kv_snapshot_start(kv, missing, 1, &snapshot) == 0);
    (void)usleep(1200000);
    CHECK(kv_snapshot_stop(&snapshot) == -ENOENT);
    kv_destroy(&kv);
}

/* What the daemon calls: directory made, file loaded, corrupt one set aside. */
static void
test_open(void)
{
    char sub[600];
    char sub_path[700];
    char bad_path[800];
    (void)snprintf(sub, sizeof(sub), "%s/kv", dir);
    (void)snprintf(sub_path, sizeof(sub_path), "%s/greylist.kv", sub);
    (void)snprintf(bad_path, sizeof(bad_path), "%s.bad", sub_path);
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, NULL, NULL, &kv) == 0);

    /* First start: no directory, no file. */
    struct kv_snapshot *snapshot = NULL;
    CHECK(kv_snapshot_open(kv, sub_path, 0, &snapshot) == 0);
    struct stat st;
    CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    CHECK(set_str(kv, "triplet", "1", 3600) == 0);
    CHECK(kv_snapshot_stop(&snapshot) == 0);
    kv_destroy(&kv);

    /* Second start: the entry is back. */
    CHECK(kv_embedded_create(1024, NULL, NULL, &kv) == 0);
    CHECK(kv_snapshot_open(kv, sub_path, 0, &snapshot) == 0);
    CHECK(has_str(kv, "triplet", "1"));
    CHECK(kv_snapshot_stop(&snapshot) == 0);
    kv_destroy(&kv);

    /* A torn file: the start goes on, empty, the file kept aside. */
    uint8_t bytes[256];
    size_t len = read_file(sub_path, bytes, sizeof(bytes));
    CHECK(len > 48);
    write_file(sub_path, bytes, len - 1);
    CHECK(kv_embedded_create(1024, NULL, NULL, &kv) == 0);
    CHECK(kv_snapshot_open(kv, sub_path, 0, &snapshot) == 0);
    CHECK(kv_count(kv) == 0);
    CHECK(file_size(bad_path) == (long)len - 1);
    CHECK(!file_exists(sub_path));
    CHECK(kv_snapshot_stop(&snapshot) == 0);
    CHECK(file_size(sub_path) == 48); /* a good, empty one replaces it */
    kv_destroy(&kv);

    /* A directory that cannot be made: the start fails, it is not a bad file. */
    char deep[800];
    (void)snprintf(deep, sizeof(deep), "%s/no/such/x.kv", dir);
    CHECK(kv_embedded_create(8, NULL, NULL, &kv) == 0);
    CHECK(kv_snapshot_open(kv, deep, 0, &snapshot) == -ENOENT);
    CHECK(snapshot == NULL);
    kv_destroy(&kv);
    CHECK(unlink(sub_path) == 0);
    CHECK(unlink(bad_path) == 0);
    CHECK(rmdir(sub) == 0);
}

int
main(void)
{
    const char *base = getenv("TMPDIR");
    (void)snprintf(dir, sizeof(dir), "%s/test_kv_snapshot.XXXXXX",
                   base != NULL && base[0] != '\0' ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    (void)snprintf(path, sizeof(path), "%s/store.kv", dir);
    test_round_trip();
    test_ttl_kept();
    test_expired_skipped();
    test_corrupt();
    test_over_capacity();
    test_concurrent_writers();
    test_failed_save_keeps_old();
    test_restore_bounds();
    test_saver();
    test_open();
    (void)unlink(path);
    CHECK(rmdir(dir) == 0);
    UNIT_DONE();
}
