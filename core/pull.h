/*
 * Pulling the policy bundle from an upstream node (bundle.pull_url, its
 * admin endpoint's GET /bundle) on an interval. Runs on worker 0's loop with
 * that worker's resolver; a pulled bundle is verified and compiled like a
 * pushed one, and installed only if it differs from the one in force.
 */
#ifndef CATENA_CORE_PULL_H
#define CATENA_CORE_PULL_H

#include "core/attr.h"

struct worker;
struct pull;

/** Starts, restarts or stops pulling to match w->cfg (after start and each reload). */
void pull_update(struct worker *w) CAT_NONNULL(1);
/** Stops pulling and frees (no callback after). */
void pull_free(struct pull *p);

#endif
