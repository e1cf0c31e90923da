/*
 * Compiler attributes, result codes and the always-on assertion shared by
 * every module. Included first by every other catena header.
 */
#ifndef CATENA_CORE_ATTR_H
#define CATENA_CORE_ATTR_H

#include <stdio.h>
#include <stdlib.h>

/* Int results: 0 done, negative for the three ways of not being done. */
#define CAT_OK 0        /* done */
#define CAT_ERR (-1)    /* failed; the caller closes or reports */
#define CAT_AGAIN (-2)  /* would block; watchers are armed, come back later */
#define CAT_DECLINED (-3) /* not for me (e.g. not TLS); the caller tries another way */

#define CAT_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#define CAT_WUR __attribute__((warn_unused_result))
#define CAT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define CAT_NORETURN __attribute__((noreturn))
#define CAT_UNUSED __attribute__((unused))

#define CAT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define CAT_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CAT_MAX(a, b) ((a) > (b) ? (a) : (b))

/* container_of: from a member pointer back to its enclosing struct. */
#define CAT_CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline CAT_NORETURN void
cat_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "catena: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

/* Always on, for invariants only: never for anything input can trigger. */
#define CAT_ASSERT(x) \
    do { \
        if (!(x)) \
            cat_assert_fail(#x, __FILE__, __LINE__); \
    } while (0)

#endif
