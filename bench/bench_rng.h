/*
 * bench/bench_rng.h - the random numbers toaster-bench picks with: message
 * sizes, recipients, commands, UIDs and filler text.
 *
 * xorshift64*: fast and good enough for load, not for anything secret. The
 * state is the caller's (one per worker or per message), never shared
 * between threads; a state of 0 stays 0, so seed with something else.
 */
#ifndef TOASTER_BENCH_RNG_H
#define TOASTER_BENCH_RNG_H

#include <stdint.h>

/* The next number from *state, which it advances. */
static inline uint64_t
bench_rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
