/* SPDX-License-Identifier: MIT */
/*
 * Workers that serve sessions: the loop kicks a session whose socket became
 * readable, and a worker runs it until nothing waits. A worker is started
 * when none is idle, so a client that never answers (a migration waiting for
 * its ZAPPED forever) holds one worker and no one else's; an idle worker
 * ends after a while. Everything here is under d->sessions_lock.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "zdevd/clients.h"
#include "zdevd/session.h"

#define IDLE_SECONDS 2
/* How much less CPU a worker is given than the event loop when both want
 * it (nice levels above the loop's). */
#define WORKER_NICE 10

static void ready_push(struct zdevd *d, struct session *s)
{
	s->next_ready = NULL;
	if (d->ready_tail)
		d->ready_tail->next_ready = s;
	else
		d->ready_head = s;
	d->ready_tail = s;
}

static struct session *ready_pop(struct zdevd *d)
{
	struct session *s = d->ready_head;

	d->ready_head = s->next_ready;
	if (!d->ready_head)
		d->ready_tail = NULL;
	return s;
}

/* Serves s until it has nothing more, is held, or ends. Called and returns
 * locked. */
static void run_session(struct zdevd *d, struct session *s)
{
	int ret;

	for (;;) {
		pthread_mutex_unlock(&d->sessions_lock);
		ret = session_serve(s);
		pthread_mutex_lock(&d->sessions_lock);
		if (ret || !s->pending)
			break;
		/* A message came while we served: the loop saw it and left
		 * it to us. */
		s->pending = false;
	}
	s->busy = false;
	s->pending = false;
	if (ret == SESSION_HELD)
		s->held = true;	/* the loop looks at it now and then */
	else if (ret < 0)
		s->ended = true;
	pthread_mutex_unlock(&d->sessions_lock);
	if (ret < 0)
		loop_forget_session(d, s);
	else
		loop_rearm_session(d, s);
	pthread_mutex_lock(&d->sessions_lock);
	pthread_cond_broadcast(&d->sessions_gone);
}

/*
 * Requests yield to CPU faults. The loop serves every client's faults on one
 * thread, and a faulting thread waits until it has: with every CPU busy with
 * requests (63 clients migrating, one flooding), a loop that waits its turn
 * behind the workers makes each fault wait a time slice. A worker at a lower
 * priority lets the loop run the moment a fault comes; what a worker starts
 * (the copy threads of a migration) inherits its priority. Raising a nice
 * value needs no privilege.
 */
static void lower_priority(void)
{
	const id_t tid = (id_t)syscall(SYS_gettid);
	int nice;

	errno = 0;
	nice = getpriority(PRIO_PROCESS, tid);
	if (nice == -1 && errno)
		return;
	if (setpriority(PRIO_PROCESS, tid, nice + WORKER_NICE))
		log_dbg("worker: setpriority: %m");
}

static void *worker_main(void *arg)
{
	struct zdevd *d = arg;

	lower_priority();
	pthread_mutex_lock(&d->sessions_lock);
	for (;;) {
		while (!d->ready_head && !d->workers_stop) {
			struct timespec until;
			int ret;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += IDLE_SECONDS;
			d->nidle++;
			ret = pthread_cond_timedwait(&d->work, &d->sessions_lock, &until);
			/* A kick moves a waiter from idle to claimed when it
			 * signals, so that a second kick before that waiter
			 * runs starts another worker rather than signal the
			 * same one again; whoever wakes takes a claim, or else
			 * leaves the idle count itself. */
			if (d->claimed)
				d->claimed--;
			else
				d->nidle--;
			if (ret == ETIMEDOUT && !d->ready_head)
				goto out_exit;
		}
		if (!d->ready_head)
			break;
		run_session(d, ready_pop(d));
	}
out_exit:
	d->nworkers--;
	pthread_cond_broadcast(&d->sessions_gone);
	pthread_mutex_unlock(&d->sessions_lock);
	return NULL;
}

/* Called locked. */
static void start_worker(struct zdevd *d)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, worker_main, d) == 0)
		d->nworkers++;
	else if (!d->nworkers)
		/* Nothing will serve the queue until a worker ends idle
		 * and another is started; say so. */
		log_err("cannot start a worker: requests wait");
	pthread_attr_destroy(&attr);
}

void workers_kick(struct session *s)
{
	struct zdevd *d = s->d;

	pthread_mutex_lock(&d->sessions_lock);
	if (s->ended || d->workers_stop || s->held) {
		/* nothing to do: an ended session's note to the loop frees
		 * it, a held one is the loop's to look at */
	} else if (s->busy) {
		s->pending = true;
	} else {
		s->busy = true;
		ready_push(d, s);
		if (d->nidle) {
			d->nidle--;
			d->claimed++;
			pthread_cond_signal(&d->work);
		} else {
			start_worker(d);
		}
	}
	pthread_mutex_unlock(&d->sessions_lock);
}

/* How long a request in flight at shutdown may take to finish before its
 * connection is cut: only a client that stopped answering takes that long. */
#define STOP_GRACE_SECONDS 5
/* How often the shutdown reads the clients' uffd events meanwhile. */
#define EVENTS_EVERY_NS 2000000

static bool passed(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

bool workers_held(struct session *s)
{
	struct zdevd *d = s->d;
	bool held;

	pthread_mutex_lock(&d->sessions_lock);
	held = s->held;
	pthread_mutex_unlock(&d->sessions_lock);
	return held;
}

void workers_resume(struct session *s)
{
	struct zdevd *d = s->d;

	pthread_mutex_lock(&d->sessions_lock);
	s->held = false;
	pthread_mutex_unlock(&d->sessions_lock);
}

void workers_stop_all(struct zdevd *d)
{
	struct timespec deadline;

	pthread_mutex_lock(&d->sessions_lock);
	/* What is queued ends at once. A request in flight finishes first
	 * (session_serve takes no other after it): cutting its connection
	 * while the client answers it would lose what the answer says, a
	 * zap done after zdevd stopped waiting among them. */
	d->workers_stop = true;
	for (struct session *s = d->sessions; s; s = s->next)
		if (!s->busy)
			shutdown(s->sock, SHUT_RDWR);
	pthread_cond_broadcast(&d->work);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += STOP_GRACE_SECONDS;
	while (d->nworkers && !passed(&deadline)) {
		struct timespec until;

		/* The loop has stopped; a request in flight may wait for a
		 * uffd event to be read (its client's zap blocks in madvise
		 * until it is): we read them meanwhile. */
		pthread_mutex_unlock(&d->sessions_lock);
		clients_serve_events(d);
		pthread_mutex_lock(&d->sessions_lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += EVENTS_EVERY_NS;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (d->nworkers)
			pthread_cond_timedwait(&d->sessions_gone, &d->sessions_lock, &until);
	}
	/* A client that does not answer: its request fails now. */
	for (struct session *s = d->sessions; s; s = s->next)
		shutdown(s->sock, SHUT_RDWR);
	while (d->nworkers)
		pthread_cond_wait(&d->sessions_gone, &d->sessions_lock);
	/* The loop has stopped: the sessions are ours to free. */
	while (d->sessions)
		session_free_locked(d->sessions);
	pthread_mutex_unlock(&d->sessions_lock);
}
