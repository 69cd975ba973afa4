/*
 * tests/fuzz/fuzz_kv_snapshot.c - libFuzzer harness for the snapshot loader
 * of the embedded key-value store (core/kv_snapshot), which reads a file
 * from data_dir that a crash may have torn or a disk may have damaged.
 *
 * The input is written as a snapshot file and loaded into a small store
 * (64 entries, so the capacity bound is hit). Properties: the load returns
 * 0 or -EINVAL; a refused file loads nothing; an accepted one loads as many
 * entries as it says, each one readable; saving that store and loading the
 * save into a larger one gives back the same entries. Each input is tried
 * twice: as it is, and with the checksum made right, so the mutations reach
 * the field and record checks behind it rather than the sum alone.
 *
 * Build: meson setup with -Dfuzz=true (CC=clang); needs a writable $TMPDIR
 * or /tmp, for two files removed after each input.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/kv.h"
#include "core/kv_snapshot.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_WALL_MS 1800000000000ull

static char input_path[256];
static char again_path[256];
static uint64_t fixed_now_ms = 1000;

static uint64_t
fixed_clock(void *arg)
{
    (void)arg;
    return fixed_now_ms;
}

static void
paths_once(void)
{
    if (input_path[0] != '\0') {
        return;
    }
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') {
        base = "/tmp";
    }
    (void)snprintf(input_path, sizeof(input_path), "%s/fuzz_kv_snapshot.%d.in", base,
                   (int)getpid());
    (void)snprintf(again_path, sizeof(again_path), "%s/fuzz_kv_snapshot.%d.again", base,
                   (int)getpid());
}

/* Each loaded entry can be read back from the store it went into. */
static int
readable(const struct kv_embedded_item *item, void *arg)
{
    struct kv *other = arg;
    uint8_t value[KV_VALUE_BYTES_MAX];
    size_t len = 0;
    FUZZ_CHECK(kv_get(other, item->key, item->key_len, value, sizeof(value), &len) == 0);
    FUZZ_CHECK(len == item->value_len);
    FUZZ_CHECK(len == 0 || memcmp(value, item->value, len) == 0);
    return 0;
}

static void fuzz_one(const uint8_t *data, size_t size);

static uint64_t
fnv64(uint64_t h, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    paths_once();
    fuzz_one(data, size);
    if (size >= KV_SNAPSHOT_HEADER_BYTES) {
        uint8_t *copy = malloc(size);
        FUZZ_CHECK(copy != NULL);
        memcpy(copy, data, size);
        uint64_t h = fnv64(14695981039346656037ull, copy + KV_SNAPSHOT_HEADER_BYTES,
                           size - KV_SNAPSHOT_HEADER_BYTES);
        h = fnv64(h, copy, 40);
        for (unsigned i = 0; i < 8; i++) {
            copy[40 + i] = (uint8_t)(h >> (8 * i));
        }
        fuzz_one(copy, size);
        free(copy);
    }
    /* Nothing left behind when the run ends (ENOENT: no save this time). */
    (void)unlink(input_path);
    (void)unlink(again_path);
    return 0;
}

static void
fuzz_one(const uint8_t *data, size_t size)
{
    FILE *f = fopen(input_path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);

    struct kv *kv = NULL;
    FUZZ_CHECK(kv_embedded_create(64, fixed_clock, NULL, &kv) == 0);
    struct kv_snapshot_stats stats;
    memset(&stats, 0, sizeof(stats));
    int rc = kv_embedded_load_at(kv, input_path, FUZZ_WALL_MS, &stats);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc != 0) {
        FUZZ_CHECK(kv_count(kv) == 0);
        kv_destroy(&kv);
        return;
    }
    FUZZ_CHECK(kv_count(kv) == stats.entry_count);
    FUZZ_CHECK(stats.entry_count <= 64);

    struct kv_snapshot_stats saved;
    FUZZ_CHECK(kv_embedded_save_at(kv, again_path, FUZZ_WALL_MS, &saved) == 0);
    FUZZ_CHECK(saved.entry_count == stats.entry_count);
    struct kv *again = NULL;
    FUZZ_CHECK(kv_embedded_create(4096, fixed_clock, NULL, &again) == 0);
    struct kv_snapshot_stats reloaded;
    FUZZ_CHECK(kv_embedded_load_at(again, again_path, FUZZ_WALL_MS, &reloaded) == 0);
    FUZZ_CHECK(reloaded.entry_count == stats.entry_count);
    FUZZ_CHECK(reloaded.expired_count == 0);
    FUZZ_CHECK(kv_embedded_foreach(kv, readable, again) == 0);
    kv_destroy(&again);
    kv_destroy(&kv);
}
