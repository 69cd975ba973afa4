/*
 * core/array_grow.h - room for one more element in a heap array that
 * doubles as it fills (4 elements first), for the lists a message
 * collects as it goes (Sieve placements, generated messages, log lines).
 */
#ifndef TOASTER_CORE_ARRAY_GROW_H
#define TOASTER_CORE_ARRAY_GROW_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Makes *array (count elements of element_size bytes, room for *capacity)
 * hold at least count + 1. Returns 0, or -ENOMEM (also when the size
 * would overflow), leaving the array as it was. */
static inline int
array_grow(void **array, size_t *capacity, size_t count, size_t element_size)
{
    if (count < *capacity) {
        return 0;
    }
    size_t grown_capacity = *capacity != 0 ? *capacity * 2 : 4;
    if (grown_capacity < *capacity || grown_capacity > SIZE_MAX / element_size) {
        return -ENOMEM;
    }
    void *grown = realloc(*array, grown_capacity * element_size);
    if (grown == NULL) {
        return -ENOMEM;
    }
    *array = grown;
    *capacity = grown_capacity;
    return 0;
}

#endif
