/*
 * Transparent listeners: connections the kernel redirected to catena
 * (iptables REDIRECT, or TPROXY on a listener with tproxy = true). The
 * destination the client meant is the original destination
 * (SO_ORIGINAL_DST) or, under TPROXY, the accepted socket's local address;
 * from there the connection is a CONNECT to that address without a request
 * and without a 200: the same policy, detection, tunnel or interception.
 */
#ifndef CATENA_CORE_TRANSPARENT_H
#define CATENA_CORE_TRANSPARENT_H

#include "core/attr.h"

struct conn;

/**
 * Finds where a transparent connection was going and enters POLICY with
 * it as the CONNECT target. A connection that reached the listener itself
 * (no redirection, or the listener's own address) is refused: catena would
 * otherwise connect to itself. Returns a state handler's result.
 */
int transparent_start(struct conn *c) CAT_NONNULL(1);

#endif
