/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_SESSION_H
#define ZDEV_LIB_SESSION_H

/*
 * Device handles on the process's connection, which outlives zdevd: a call
 * through a handle takes the connection, and if the session it had with
 * zdevd is over (zdevd died or stopped, and the rescue brought its pages
 * home), first starts a new one with whichever zdevd listens on the socket
 * now, reopening every handle in it.
 */

#include <stdbool.h>
#include <stdint.h>

#include "lib/client.h"
#include "proto.h"

/* A device handle as its connection knows it (part of struct zdev). */
struct session_handle {
	struct session_handle *prev, *next;	/* the connection's, under its lock */
	bool listed;
	unsigned int device;
	uint64_t session;	/* the session it is open in; 0: none yet */
};

/*
 * Takes c->lock for a call through h, with h open in a live session: if the
 * last session is over, starts a new one (at most once every
 * SESSION_RETRY_MS after a failed attempt, waiting up to RESCUE_SETTLE_MS
 * for the rescue of the last), then opens h in it if it is not yet. 0 with
 * the lock held; else -errno with it released: -ENODEV when no session can
 * start now or h's device is not in this zdevd, -EBADF for a fork child's
 * copy of its parent's handle, else the error of h's OPEN (-EMFILE past
 * zdevd's --client-handles).
 */
int session_lock(struct client *c, struct session_handle *h);
void session_unlock(struct client *c);

/*
 * One request through h under session_lock: the answer's type, or the
 * -errno of session_lock or client_call, where a request the broken
 * connection never let out is sent once more, in a new session, and
 * -ENODEV answers it when none can start.
 */
int session_call(struct client *c, struct session_handle *h, union zmsg *req, union zmsg *rep);

/*
 * h leaves the connection: CLOSE if it is open in a live session (its pages
 * on the device come home), nothing more to do otherwise (the rescue brought
 * them home). 0, -EBADF for a fork child's copy of its parent's handle, or
 * CLOSE's error.
 */
int session_close(struct client *c, struct session_handle *h);

/* After a failed attempt, no new session is tried for this long: a program
 * that calls in a loop while no zdevd listens does not pay a connect a
 * call. */
#define SESSION_RETRY_MS 100

#endif
