/*
 * core/assertions.h - assertions that are always compiled in.
 *
 * ASSERT is for programmer errors only (impossible states, broken
 * invariants of our own data). Never assert on peer input: bytes from the
 * network, files written by others and replies from Redis or DNS are errors
 * to handle, not to assert.
 */
#ifndef TOASTER_CORE_ASSERTIONS_H
#define TOASTER_CORE_ASSERTIONS_H

#include <stdnoreturn.h>

noreturn void assertion_failed(const char *file, int line, const char *expr);

#define ASSERT(expr)                                                                 \
    do {                                                                             \
        if (__builtin_expect(!(expr), 0)) {                                          \
            assertion_failed(__FILE__, __LINE__, #expr);                             \
        }                                                                            \
    } while (0)

#ifdef TOASTER_DEBUG
#define DEBUG_ASSERT(expr) ASSERT(expr)
#else
#define DEBUG_ASSERT(expr) ((void)0)
#endif

#endif
