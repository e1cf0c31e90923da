/*
 * An intrusive doubly-linked list: the link lives inside the element, so
 * linking and unlinking are O(1) and allocate nothing. It exists because the
 * same prev/next splicing had been written out by hand for every LRU, waiter
 * list and live-connection list, each copy a chance to forget a tail pointer.
 * Head and tail, NULL-terminated, rather than a sentinel: zeroed memory
 * (calloc, statics) is an empty list and an unlinked link, as every owner
 * already assumed. Push and unlink CAT_ASSERT the links they splice (a double
 * push or unlink aborts instead of looping). Nothing here locks.
 */
#ifndef CATENA_CORE_DLIST_H
#define CATENA_CORE_DLIST_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>

/** Embedded in an element; NULL both ways while the element is in no list. */
struct dlist_link {
    struct dlist_link *prev, *next;
};

/** The list: head and tail, both NULL when empty. Elements are owned by whoever embeds them. */
struct dlist {
    struct dlist_link *head, *tail;
};

/** Empties l without touching its elements (zeroed memory is already empty). */
static inline void
dlist_init(struct dlist *l)
{
    l->head = l->tail = NULL;
}

static inline bool
dlist_empty(const struct dlist *l)
{
    return l->head == NULL;
}

/** True if n is in l (n must be in l or in no list). */
static inline bool
dlist_linked(const struct dlist *l, const struct dlist_link *n)
{
    return n->prev != NULL || l->head == n;
}

/** Links n (in no list) first. */
static inline void
dlist_push_head(struct dlist *l, struct dlist_link *n)
{
    CAT_ASSERT(n->prev == NULL && n->next == NULL && l->head != n);
    n->next = l->head;
    if (l->head != NULL)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/** Links n (in no list) last. */
static inline void
dlist_push_tail(struct dlist *l, struct dlist_link *n)
{
    CAT_ASSERT(n->prev == NULL && n->next == NULL && l->head != n);
    n->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/** Takes n (which must be in l) out of l; its link is NULL both ways after. */
static inline void
dlist_unlink(struct dlist *l, struct dlist_link *n)
{
    CAT_ASSERT(n->prev != NULL ? n->prev->next == n : l->head == n);
    CAT_ASSERT(n->next != NULL ? n->next->prev == n : l->tail == n);
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/** Makes n (which must be in l) the head: an LRU's "used just now". */
static inline void
dlist_move_head(struct dlist *l, struct dlist_link *n)
{
    if (l->head == n)
        return;
    dlist_unlink(l, n);
    dlist_push_head(l, n);
}

/* The element around link n at offset off, or NULL for a NULL link. */
static inline void *
dlist_entry_(struct dlist_link *n, size_t off)
{
    return n != NULL ? (void *)((char *)n - off) : NULL;
}

/** The element embedding link n as member (n not NULL): container_of for lists. */
#define DLIST_ENTRY(n, type, member) CAT_CONTAINER_OF(n, type, member)

/** The first / last element of list l, or NULL if it is empty. */
#define DLIST_FIRST(l, type, member) ((type *)dlist_entry_((l)->head, offsetof(type, member)))
#define DLIST_LAST(l, type, member) ((type *)dlist_entry_((l)->tail, offsetof(type, member)))

/** The element after e, or NULL at the end. */
#define DLIST_NEXT(e, type, member) ((type *)dlist_entry_((e)->member.next, offsetof(type, member)))

/**
 * for (type *var ...) over list l, head to tail. The successor is read before
 * the body runs, so the body may unlink or free var, but not the element after it.
 */
#define DLIST_FOREACH_SAFE(var, l, type, member)                                                   \
    for (type *var = DLIST_FIRST(l, type, member),                                                 \
              *var##_next_ = var != NULL ? DLIST_NEXT(var, type, member) : NULL;                   \
         var != NULL;                                                                              \
         var = var##_next_, var##_next_ = var != NULL ? DLIST_NEXT(var, type, member) : NULL)

#endif
