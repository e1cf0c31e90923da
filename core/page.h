/*
 * Answers made by catena itself: exception pages. A page is a template
 * (HTML with $(name) variables) filled with values that are HTML-escaped:
 * host names, URLs and certificate fields come from the network. Admins may
 * replace the template of any exception id (the bundle's pages/<id>.html);
 * the built-in one is used otherwise.
 */
#ifndef CATENA_CORE_PAGE_H
#define CATENA_CORE_PAGE_H

#include "core/attr.h"
#include "core/relay.h"

/* Room a rendered page needs at most (head and body). */
#define PAGE_MAX 16384

/* Values a template may use; NULL prints as nothing. */
struct page_vars {
    const char *host;         /* $(host) */
    const char *url;          /* $(url) */
    const char *reason;       /* $(reason): what happened, in words */
    const char *errors;       /* $(errors): observed certificate errors */
    const char *client;       /* $(client): the client's address */
    const char *issuer;       /* $(issuer): the server certificate's issuer */
    const char *override_url; /* $(override_url): where "continue anyway" goes ("" if not allowed) */
};

/**
 * Appends a whole HTTP/1.1 response (status line, headers with
 * X-Catena-Exception and Connection: close, HTML body) to out, from tmpl
 * (NULL: the built-in page). CAT_ERR if it does not fit.
 */
int page_render(struct buf *out, int status, const char *exception_id, const struct page_vars *v,
                const char *tmpl) CAT_WUR CAT_NONNULL(1, 3, 4);

/** Appends s to dst (capacity cap, NUL-terminated) with & < > " ' escaped; returns the new length. */
size_t page_escape(char *dst, size_t cap, const char *s) CAT_NONNULL(1, 3);

#endif
