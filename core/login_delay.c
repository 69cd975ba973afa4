/*
 * core/login_delay.c - per-address and per-user failed-login counters (see
 * login_delay.h). Owns one fixed table under one mutex; any thread.
 */
#include "core/login_delay.h"

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "core/assertions.h"
#include "core/hash.h"

static_assert((LOGIN_DELAY_SLOTS & (LOGIN_DELAY_SLOTS - 1)) == 0, "slots: a power of two");

struct delay_slot {
    uint32_t key;   /* hash of "a:" + address or "u:" + user; 0 = free */
    uint32_t count; /* failures since the last success or forget */
    uint64_t last_s;
};

static pthread_mutex_t delay_lock = PTHREAD_MUTEX_INITIALIZER;
static struct delay_slot delay_slots[LOGIN_DELAY_SLOTS];

static uint32_t
key_of(char kind, const char *text)
{
    uint32_t h = hash_fnv1a(&kind, 1) ^ hash_fnv1a_string(text);
    return h == 0 ? 1 : h;
}

/* The slot for key, or (when absent) the free or oldest of its 8-slot
 * neighbourhood, reset. Under the lock. */
static struct delay_slot *
slot_for(uint32_t key, uint64_t now_s, bool is_create)
{
    struct delay_slot *victim = NULL;
    for (uint32_t i = 0; i < 8; i++) {
        struct delay_slot *s = &delay_slots[(key + i) & (LOGIN_DELAY_SLOTS - 1)];
        if (s->key == key) {
            if (now_s - s->last_s > LOGIN_DELAY_FORGET_S) {
                s->count = 0;
            }
            return s;
        }
        if (s->key == 0) {
            if (victim == NULL || victim->key != 0) {
                victim = s; /* a free slot beats any used one */
            }
        } else if (victim == NULL || (victim->key != 0 && s->last_s < victim->last_s)) {
            victim = s;
        }
    }
    if (!is_create) {
        return NULL;
    }
    victim->key = key;
    victim->count = 0;
    victim->last_s = now_s;
    return victim;
}

uint32_t
login_delay_failed(const char *address, const char *user, uint64_t now_s)
{
    ASSERT(address != NULL && user != NULL);
    pthread_mutex_lock(&delay_lock);
    struct delay_slot *a = slot_for(key_of('a', address), now_s, true);
    a->count++;
    a->last_s = now_s;
    uint32_t count = a->count;
    if (user[0] != '\0') {
        struct delay_slot *u = slot_for(key_of('u', user), now_s, true);
        u->count++;
        u->last_s = now_s;
        if (u->count > count) {
            count = u->count;
        }
    }
    pthread_mutex_unlock(&delay_lock);
    uint64_t ms = LOGIN_DELAY_FIRST_MS;
    for (uint32_t i = 1; i < count && ms < LOGIN_DELAY_MAX_MS; i++) {
        ms *= 2;
    }
    return ms > LOGIN_DELAY_MAX_MS ? LOGIN_DELAY_MAX_MS : (uint32_t)ms;
}

void
login_delay_succeeded(const char *address, const char *user)
{
    ASSERT(address != NULL && user != NULL);
    pthread_mutex_lock(&delay_lock);
    struct delay_slot *a = slot_for(key_of('a', address), 0, false);
    if (a != NULL) {
        memset(a, 0, sizeof(*a));
    }
    struct delay_slot *u = slot_for(key_of('u', user), 0, false);
    if (u != NULL) {
        memset(u, 0, sizeof(*u));
    }
    pthread_mutex_unlock(&delay_lock);
}
