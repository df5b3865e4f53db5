/* SPDX-License-Identifier: MIT */
/*
 * Workers that serve sessions: the loop kicks a session whose socket became
 * readable, and a worker runs it until nothing waits. A worker is started
 * when none is idle, so a client that never answers (a migration waiting for
 * its ZAPPED forever) holds one worker and no one else's; an idle worker
 * ends after a while.
 *
 * The loop serves every client's CPU faults, so it does not wait on the
 * workers' bookkeeping: workers run at a lower priority, and one preempted
 * while holding a lock the loop wanted would make every fault wait for it.
 * The loop hands a session over without a lock (a push on the incoming
 * stack and a post of a semaphore, neither of which can block), and never
 * starts a thread (a thread's stack is mapped under zdevd's mmap lock,
 * which another thread may hold): the spawner does. The workers' lock is
 * theirs and the spawner's alone.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "zdevd/clients.h"
#include "zdevd/session.h"

#define IDLE_SECONDS 2
/* wait_for_work() was posted to, but another worker took the session. */
#define WOKEN_FOR_NOTHING ((struct session *)1)
/* How soon the spawner tries again when it could not start a worker. */
#define SPAWN_RETRY_NS 100000000l
/* How much less CPU a worker is given than the event loop when both want
 * it (nice levels above the loop's). */
#define WORKER_NICE 10

/* ---- the queue: pushed by the loop, taken by workers ---- */

static void incoming_push(struct workers *w, struct session *s)
{
	struct session *head = atomic_load_explicit(&w->incoming, memory_order_relaxed);

	/* seq_cst, like the idle count: a worker that announced itself idle
	 * and then found the stack empty was counted by the loop's look at
	 * the idle count after this push, and so was woken (workers_kick). */
	do
		s->next_ready = head;
	while (!atomic_compare_exchange_weak(&w->incoming, &head, s));
}

/* The oldest waiting session, or NULL. Called locked. */
static struct session *take(struct workers *w)
{
	struct session *s = atomic_exchange(&w->incoming, NULL), *oldest_first = NULL;

	/* The stack is newest first: reversed, it goes behind those taken
	 * before, oldest first. */
	while (s) {
		struct session *next = s->next_ready;

		s->next_ready = oldest_first;
		oldest_first = s;
		s = next;
	}
	if (oldest_first) {
		if (w->tail)
			w->tail->next_ready = oldest_first;
		else
			w->head = oldest_first;
		while (oldest_first->next_ready)
			oldest_first = oldest_first->next_ready;
		w->tail = oldest_first;
	}
	s = w->head;
	if (s) {
		w->head = s->next_ready;
		if (!w->head)
			w->tail = NULL;
	}
	return s;
}

/* ---- a session's turn ---- */

/* Serves s until it has nothing more, is held, or ends. */
static void run_session(struct session *s)
{
	unsigned int busy = SCHED_BUSY;
	int ret;

	for (;;) {
		atomic_fetch_and(&s->sched, ~SCHED_PENDING);
		ret = session_serve(s);
		if (ret)
			break;
		/* Done, unless a kick came while we served: the loop saw the
		 * socket readable again and left it to us. */
		if (atomic_compare_exchange_strong(&s->sched, &busy, 0))
			break;
		busy = SCHED_BUSY;
	}
	if (ret == SESSION_HELD)
		atomic_store(&s->sched, SCHED_HELD);	/* the loop looks at it now and then */
	else if (ret < 0)
		atomic_store(&s->sched, SCHED_ENDED);
	if (ret < 0)
		loop_forget_session(s->d, s);
	else
		loop_rearm_session(s->d, s);
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

/*
 * Idle: the next session, at once if one came, or after a kick; NULL after
 * IDLE_SECONDS without one. Called and returns locked.
 *
 * The idle count goes up before the queue is looked at again, and a kick
 * pushes before it reads the count (both seq_cst): either the kick sees
 * this worker idle and posts to it, or the look finds the kick's session.
 */
static struct session *wait_for_work(struct workers *w)
{
	struct timespec until;
	struct session *s;
	int ret = 0;

	atomic_fetch_add(&w->nidle, 1);
	s = take(w);
	if (!s) {
		pthread_mutex_unlock(&w->lock);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += IDLE_SECONDS;
		while ((ret = sem_clockwait(&w->work, CLOCK_MONOTONIC, &until)) && errno == EINTR)
			;
		pthread_mutex_lock(&w->lock);
	}
	/* Before the queue is looked at again: a kick that found this
	 * worker idle asked no one else. */
	atomic_fetch_sub(&w->nidle, 1);
	if (!s)
		s = take(w);
	if (!s && !ret)
		s = WOKEN_FOR_NOTHING;
	return s;
}

static void *worker_main(void *arg)
{
	struct zdevd *d = arg;
	struct workers *w = &d->workers;
	struct session *s;

	lower_priority();
	pthread_mutex_lock(&w->lock);
	w->nstarting--;
	for (s = take(w);; s = take(w)) {
		if (!s && !atomic_load(&w->stop)) {
			s = wait_for_work(w);
			if (s == WOKEN_FOR_NOTHING)
				continue;
		}
		if (!s)
			break;
		/* Others wait: this one may be long (a client that never
		 * answers), so an idle worker is woken for them, or else
		 * another started. */
		if (w->head || atomic_load(&w->incoming))
			sem_post(atomic_load(&w->nidle) ? &w->work : &w->spawn);
		pthread_mutex_unlock(&w->lock);
		run_session(s);
		pthread_mutex_lock(&w->lock);
	}
	w->nworkers--;
	pthread_cond_broadcast(&w->gone);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* 0, or -errno when no thread could be started. Called locked. */
static int start_worker(struct zdevd *d)
{
	struct workers *w = &d->workers;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = -pthread_create(&t, &attr, worker_main, d);
	if (!ret) {
		w->nworkers++;
		w->nstarting++;
	}
	pthread_attr_destroy(&attr);
	return ret;
}

/*
 * Starts a worker when a kick found none idle and the session still waits
 * (a worker done with its own may have taken it meanwhile). One at a time:
 * a worker starting takes the next session, and a flood of kicks while it
 * starts must not start one each.
 */
static void *spawner_main(void *arg)
{
	struct zdevd *d = arg;
	struct workers *w = &d->workers;
	bool failed = false;

	for (;;) {
		struct timespec retry;

		/* A session nobody serves has no kick to come for it: its
		 * poll is off until it is served. So after a failure, try
		 * again soon without one. */
		clock_gettime(CLOCK_MONOTONIC, &retry);
		retry.tv_nsec += SPAWN_RETRY_NS;
		if (retry.tv_nsec >= 1000000000l) {
			retry.tv_sec++;
			retry.tv_nsec -= 1000000000l;
		}
		while ((failed ? sem_clockwait(&w->spawn, CLOCK_MONOTONIC, &retry)
			       : sem_wait(&w->spawn)) && errno == EINTR)
			;
		if (atomic_load(&w->stop))
			break;
		pthread_mutex_lock(&w->lock);
		if (!atomic_load(&w->nidle) && !w->nstarting &&
		    (w->head || atomic_load(&w->incoming))) {
			int ret = start_worker(d);

			if (ret && !failed)
				log_err("cannot start a worker (%s): requests wait", strerror(-ret));
			failed = ret;
		} else {
			failed = false;
		}
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

int workers_init(struct zdevd *d)
{
	struct workers *w = &d->workers;
	int ret;

	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->gone, NULL);
	if (sem_init(&w->work, 0, 0) || sem_init(&w->spawn, 0, 0))
		return -errno;
	ret = -pthread_create(&w->spawner, NULL, spawner_main, d);
	if (ret) {
		sem_destroy(&w->spawn);
		sem_destroy(&w->work);
	}
	return ret;
}

/* ---- the loop's side ---- */

void workers_kick(struct session *s)
{
	struct workers *w = &s->d->workers;
	unsigned int sched = atomic_load(&s->sched), want;

	do {
		/* An ended session's note to the loop frees it; a held one
		 * is the loop's to look at. */
		if ((sched & (SCHED_ENDED | SCHED_HELD)) || atomic_load(&w->stop))
			return;
		want = sched & SCHED_BUSY ? sched | SCHED_PENDING : SCHED_BUSY;
	} while (!atomic_compare_exchange_weak(&s->sched, &sched, want));
	if (sched & SCHED_BUSY)
		return;	/* its worker serves it again */
	incoming_push(w, s);
	/* A post only where a worker waits for one (wait_for_work()): a
	 * count of posts nobody waited for would wake idle workers for
	 * nothing later, once each. */
	sem_post(atomic_load(&w->nidle) ? &w->work : &w->spawn);
}

bool workers_held(struct session *s)
{
	return atomic_load(&s->sched) & SCHED_HELD;
}

void workers_resume(struct session *s)
{
	atomic_fetch_and(&s->sched, ~SCHED_HELD);
}

/* ---- shutdown ---- */

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

/* Every worker waiting is woken, and finds the stop. Called locked. */
static void wake_all(struct workers *w)
{
	for (unsigned int i = 0; i < w->nworkers; i++)
		sem_post(&w->work);
}

void workers_stop_all(struct zdevd *d)
{
	struct workers *w = &d->workers;
	struct timespec deadline;

	/* The loop has stopped: the list of sessions is ours. What is queued
	 * ends at once. A request in flight finishes first (session_serve
	 * takes no other after it): cutting its connection while the client
	 * answers it would lose what the answer says, a zap done after zdevd
	 * stopped waiting among them. */
	atomic_store(&w->stop, true);
	sem_post(&w->spawn);
	pthread_join(w->spawner, NULL);
	for (struct session *s = d->sessions; s; s = s->next)
		if (!(atomic_load(&s->sched) & SCHED_BUSY))
			shutdown(s->sock, SHUT_RDWR);
	pthread_mutex_lock(&w->lock);
	wake_all(w);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += STOP_GRACE_SECONDS;
	while (w->nworkers && !passed(&deadline)) {
		struct timespec until;

		/* A request in flight may wait for a uffd event to be read
		 * (its client's zap blocks in madvise until it is): we read
		 * them meanwhile. */
		pthread_mutex_unlock(&w->lock);
		clients_serve_events(d);
		pthread_mutex_lock(&w->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += EVENTS_EVERY_NS;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		if (w->nworkers)
			pthread_cond_timedwait(&w->gone, &w->lock, &until);
	}
	/* A client that does not answer: its request fails now. */
	for (struct session *s = d->sessions; s; s = s->next)
		shutdown(s->sock, SHUT_RDWR);
	while (w->nworkers)
		pthread_cond_wait(&w->gone, &w->lock);
	pthread_mutex_unlock(&w->lock);
	while (d->sessions)
		session_free(d->sessions);
	sem_destroy(&w->spawn);
	sem_destroy(&w->work);
	pthread_cond_destroy(&w->gone);
	pthread_mutex_destroy(&w->lock);
}
