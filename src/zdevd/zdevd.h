/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_H
#define ZDEV_ZDEVD_H

/* zdevd's shared state: the devices, the client processes, the sessions, the
 * event loop. */

#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "devset.h"
#include "lathist.h"
#include "proto.h"

struct fault_delay;
struct session;
struct zdevd;
struct zmm;

struct zdevd_config {
	char socket_path[108];
	char pidfile[PATH_MAX];		/* --pidfile, or "" */
	char trace[PATH_MAX];		/* --trace, or "" */
	struct devset_config devs;
	unsigned int client_handles;	/* device handles a client may hold (0: no limit) */
	unsigned int client_pending;	/* replies a client may leave unread (0: no limit) */
	bool foreground;
	bool verbose;
	int ready_fd;			/* told when zdevd serves (--ready-fd), or -1 */
	bool have_group;		/* --group: its members may connect too */
	gid_t group;
};

/* The workers that serve sessions (workers.c). */
struct workers {
	_Atomic(struct session *) incoming;	/* kicked by the loop, newest first */
	sem_t work;			/* a post per session kicked */
	sem_t spawn;			/* a kick found no worker idle */
	atomic_uint nidle;		/* waiting for a kick */
	atomic_bool stop;
	pthread_t spawner;
	pthread_mutex_t lock;		/* what follows; never the loop's */
	struct session *head, *tail;	/* taken from incoming, oldest first */
	unsigned int nworkers, nstarting;
	pthread_cond_t gone;		/* a worker ended */
};

struct zdevd {
	struct zdevd_config cfg;
	struct devset devs;
	int listen_fd;
	bool listen_created;	/* zdevd made the socket file (not systemd) */
	int devnode_ok;		/* /dev/userfaultfd can be handed to clients */

	struct session *sessions;	/* the loop's thread only */
	atomic_uint nsessions;		/* on that list, for any thread to read */
	struct workers workers;

	pthread_mutex_t mms_lock;	/* the list, and every mm's `next` */
	struct zmm *mms;
	struct zmm *unclaimed;		/* fork children, oldest first */
	unsigned int nclients;
	uint64_t clients_total;		/* processes ever served, fork children too */

	struct lathist fault_lat;
	struct fault_delay *fault_delay;	/* held faults (fault_delay.h), or NULL */

	/* the event loop (loop.c) */
	struct loop *loop;
	atomic_bool stopping;
};

/* loop.c: the io_uring loop serving uffds, pidfds, accepts and signals.
 * create: 0 or -errno; run: until SIGTERM/SIGINT, then 0, or -errno when
 * the ring failed. */
int loop_create(struct zdevd *d);
int loop_run(struct zdevd *d);
void loop_destroy(struct zdevd *d);
/* Adds a client's uffd and pidfd to the loop (from any thread), or takes a
 * dead one's off: 0, or -errno (-ENOMEM) when the loop could not be told. */
int loop_watch_mm(struct zdevd *d, struct zmm *mm);
/* The session's connection is over: the loop stops polling it and frees it
 * (from any thread). */
void loop_forget_session(struct zdevd *d, struct session *s);
/* A worker is done with the session for now: the loop polls its connection
 * again (from any thread), or, if the session is held (past
 * --client-pending), looks at it now and then (session_may_resume) and
 * polls it again once it may be served. */
void loop_rearm_session(struct zdevd *d, struct session *s);
/* Once the loop has stopped (shutdown), reads and handles the process's
 * pending uffd events and faults on the calling thread. */
void loop_serve_events(struct zdevd *d, struct zmm *mm);

/* workers.c: starts the thread that starts workers: 0 or -errno. Once the
 * loop has stopped, workers_stop_all() ends every session (its request in
 * flight first), waits for the workers and frees the sessions. */
int workers_init(struct zdevd *d);
void workers_stop_all(struct zdevd *d);

#endif
