/*
 * core/assertions.c - what happens when an assertion fails: one line on
 * stderr naming file, line and expression, then abort() for a core dump.
 */
#include "core/assertions.h"

#include <stdio.h>
#include <stdlib.h>

noreturn void
assertion_failed(const char *file, int line, const char *expr)
{
    (void)fprintf(stderr, "toasterd: assertion failed: %s:%d: %s\n", file, line, expr);
    abort();
}
