/*
 * Answers made by catena itself: exception pages (an HTML page naming the
 * exception id, the host and what went wrong), with every value HTML-escaped.
 */
#ifndef CATENA_CORE_PAGE_H
#define CATENA_CORE_PAGE_H

#include "core/attr.h"
#include "core/relay.h"

/* Room a rendered page needs at most (head and body). */
#define PAGE_MAX 8192

/**
 * Appends a whole HTTP/1.1 response (status line, headers with
 * X-Catena-Exception and Connection: close, HTML body) to out.
 * host and detail may be NULL. CAT_ERR if it does not fit.
 */
int page_render(struct buf *out, int status, const char *exception_id, const char *host,
                const char *detail) CAT_WUR CAT_NONNULL(1, 3);

/** Appends s to dst (capacity cap, NUL-terminated) with & < > " ' escaped; returns the new length. */
size_t page_escape(char *dst, size_t cap, const char *s) CAT_NONNULL(1, 3);

#endif
