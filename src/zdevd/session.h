/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_SESSION_H
#define ZDEV_SESSION_H

/*
 * One client connection. The event loop polls its socket; when a message
 * waits, a worker serves what is there (workers.c), so a connection costs no
 * thread while it is quiet, and a request that blocks (a migration waiting
 * for its zaps, a device access waiting for a fault) holds only its worker.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "zdevd/zdevd.h"

struct session {
	struct zdevd *d;
	struct session *prev, *next;	/* zdevd's list, the loop's thread only */
	int sock;
	pid_t pid;
	uid_t uid;
	uint64_t proof_addr;
	pid_t fork_parent;		/* a fork child to pair with its uffd */
	bool hello;
	bool refused;			/* not a user zdevd serves (peer.c) */
	bool warned;			/* the connection's one warning was logged */
	struct zmm *mm;

	/* Its turn (workers.c): SCHED_* bits, changed by the loop's kicks and
	 * by the worker serving it. */
	atomic_uint sched;
	struct session *next_ready;	/* the workers' queue */

	void *watch;			/* the loop's poll of sock, loop thread only */
	struct session *next_rearm;	/* the loop's stack to poll again */
	atomic_bool rearm_queued;	/* on that stack */
};

#define SCHED_BUSY 1u		/* queued for a worker, or being served */
#define SCHED_PENDING 2u	/* readable again while busy */
#define SCHED_HELD 4u		/* past --client-pending: not read until the
				 * client reads its replies */
#define SCHED_ENDED 8u		/* the connection is over: the loop frees it */

/* session.c */
/* A session for an accepted connection, on zdevd's list (the loop's thread
 * only, as is session_free()); NULL when out of
 * memory: the caller closes sock. A peer zdevd does not serve gets a
 * session all the same, whose every request is answered -EACCES. */
struct session *session_new(struct zdevd *d, int sock);
/* session_serve() stopped because the client has --client-pending replies
 * it has not read. */
#define SESSION_HELD 1
/* Serves the messages waiting now: 0 when none is left, SESSION_HELD, or
 * the -errno that ended the connection. */
int session_serve(struct session *s);
/* Whether a held session may be served again: its client has read enough
 * of its replies, or is gone. */
bool session_may_resume(struct session *s);
/* Off the list, its mm reference dropped, its socket closed. */
void session_free(struct session *s);

/* workers.c */
/* The loop saw the socket readable, and polls it no more: have a worker
 * serve it, unless one is on it already or it is held. The worker that
 * lets go of it asks the loop to poll it again (loop_rearm_session). */
void workers_kick(struct session *s);
/* Whether the session is held: past --client-pending, not read until its
 * client reads its replies. */
bool workers_held(struct session *s);
/* The loop found a held session may be served again. */
void workers_resume(struct session *s);

#endif
