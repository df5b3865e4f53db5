/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one io_uring with multishot polls on the listening socket,
 * a signalfd and a wake-up eventfd, and one-shot polls on every client's
 * uffd, pidfd and connection. A readable connection is handed to a worker
 * (workers.c).
 * CPU faults are served right here, inline; it never waits on a client, so a
 * client thread blocked in a uffd event (fork, munmap, madvise, mremap) is
 * always released by the next read of its uffd.
 */
#include "config.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exclusive_map.h"
#include "log.h"
#include "page.h"
#include "trace.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "zdevd/clients.h"
#include "zdevd/fault_delay.h"
#include "zdevd/session.h"
#include "zmm.h"

enum watch_kind {
	W_LISTEN, W_SIGNAL, W_WAKE, W_UFFD, W_PIDFD, W_SESSION, W_HELD_TIMER, W_REAP_TIMER
};

struct watch {
	enum watch_kind kind;
	int fd;
	struct zmm *mm;		/* W_UFFD, W_PIDFD: holds a reference */
	struct session *s;	/* W_SESSION: freed with the watch's last CQE */
	bool removing;
	bool armed;		/* its one-shot poll is in the ring, loop thread only */
	bool on_held;		/* W_SESSION: on the loop's list of held sessions */
	bool ready;		/* W_UFFD: readable, waiting its turn (serve_ready) */
	/* W_UFFD: how often it was served lately, halved each SERVED_HALF_NS,
	 * as of served_ns */
	uint32_t served;
	uint64_t served_ns;
	struct watch *prev, *next;	/* the loop's list of per-client watches */
	struct watch *next_held;
};

/* Ready uffds served before the loop looks for new completions. */
#define SERVE_BATCH 4
/* Completions of other kinds put off until the uffds had their batch, and
 * how many of them are handled before the loop looks for faults again. */
#define LATER_MAX 64
#define LATER_BATCH 4

struct loop {
	struct zdevd *d;
	struct io_uring ring;
	int sigfd, wakefd;
	struct watch listen_w, sig_w, wake_w;
	struct watch *clients;	/* uffd, pidfd and session watches, loop thread only */
	/*
	 * Notes from other threads, newest first: an mm to watch or a session
	 * to forget, and the sessions whose connection to poll again. Pushed
	 * without a lock: a worker runs at a lower priority, and one preempted
	 * holding a lock the loop wanted would delay every fault (workers.c).
	 */
	struct queued { struct zmm *mm; struct session *s; struct queued *next; } *_Atomic queued;
	struct session *_Atomic rearm;
	/* Held sessions (--client-pending), looked at by a timer that runs
	 * only while there are any, less often the longer none resumes. */
	struct watch *held;
	struct watch held_timer_w;
	bool held_timer_armed;
	/* Fork children not claimed yet are looked at now and then, only
	 * while there are any (on_reap_timer). */
	struct watch reap_timer_w;
	bool reap_timer_armed;
	struct __kernel_timespec held_wait;
	/* The uffds found readable and not served yet, unarmed meanwhile:
	 * served a few at a time, those served least lately first. */
	struct watch **ready;
	unsigned int nready, ready_cap;
	/* Completions of other kinds, oldest first, put off while uffds wait
	 * (loop_run). */
	struct io_uring_cqe later[LATER_MAX];
	unsigned int later_first, nlater;
};

#define SERVED_HALF_NS 20000000ull
/*
 * After serving a uffd, the loop looks for completions without sleeping
 * for this long before it blocks: a program that faults once faults again
 * a few microseconds after its wake-up, and a loop asleep by then adds its
 * own wake-up to that fault. Only with a second CPU, where the program runs
 * meanwhile.
 */
#define FAULT_SPIN_NS 30000ull

#define HELD_WAIT_MIN_NS 1000000ll
#define HELD_WAIT_MAX_NS 64000000ll

/* Rounds of reading events and retrying refused faults before the loop
 * moves on to other clients (see serve_uffd_msgs). */
#define FAULT_RETRIES 256

/*
 * A free submission entry, or NULL. An entry taken is submitted with the
 * next batch whatever it holds, so it must always be filled: one left as it
 * was would replay the request last made in its slot.
 */
static struct io_uring_sqe *get_sqe(struct loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

static int arm(struct loop *l, struct watch *w)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return -EBUSY;
	if (w->kind == W_PIDFD || w->kind == W_UFFD || w->kind == W_SESSION)
		/* A client's watches are one-shot polls, armed again after
		 * each completion (no extra system call: the next
		 * io_uring_enter submits it). A multishot poll stopped by a
		 * cancel that races its own completion can stay armed for
		 * good, keeping the watch and its client's files. */
		io_uring_prep_poll_add(sqe, w->fd, POLLIN);
	else
		/* Multishot: one submission serves every later readiness. */
		io_uring_prep_poll_multishot(sqe, w->fd, POLLIN);
	io_uring_sqe_set_data(sqe, w);
	w->armed = true;
	return 0;
}

static void disarm(struct loop *l, struct watch *w)
{
	struct io_uring_sqe *sqe;

	if (w->removing)
		return;
	sqe = get_sqe(l);
	if (!sqe) {
		/* The poll stays: the watch is freed with the loop. */
		log_err("io_uring: no room to stop a poll");
		return;
	}
	w->removing = true;
	io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)w);
	io_uring_sqe_set_data(sqe, NULL);
}

static struct watch *watch_new(struct loop *l, enum watch_kind kind, int fd, struct zmm *mm)
{
	struct watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->kind = kind;
	w->fd = fd;
	w->mm = mm;
	if (mm)
		zmm_get(mm);
	w->next = l->clients;
	if (l->clients)
		l->clients->prev = w;
	l->clients = w;
	return w;
}

static void held_remove(struct loop *l, struct watch *w)
{
	for (struct watch **p = &l->held; *p; p = &(*p)->next_held) {
		if (*p == w) {
			*p = w->next_held;
			break;
		}
	}
	w->on_held = false;
}

static void watch_free(struct loop *l, struct watch *w)
{
	if (w->on_held)
		held_remove(l, w);
	if (w->prev)
		w->prev->next = w->next;
	else
		l->clients = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->mm && w->mm->uffd_watch == w)
		w->mm->uffd_watch = NULL;
	if (w->mm && w->mm->pidfd_watch == w)
		w->mm->pidfd_watch = NULL;
	if (w->mm)
		zmm_put(w->mm);
	free(w);
}

static void watch_add_mm(struct loop *l, struct zmm *mm)
{
	struct watch *w;

	if (mm->uffd >= 0 && !mm->uffd_watch) {
		w = watch_new(l, W_UFFD, mm->uffd, mm);
		if (w && !arm(l, w))
			mm->uffd_watch = w;
		else if (w)
			watch_free(l, w);
	}
	if (mm->pid > 0 && mm->pidfd < 0) {
		mm->pidfd = (int)syscall(SYS_pidfd_open, mm->pid, 0);
		if (mm->pidfd < 0) {
			/* Gone already. */
			clients_exit(l->d, mm);
			return;
		}
		w = watch_new(l, W_PIDFD, mm->pidfd, mm);
		if (w && !arm(l, w))
			mm->pidfd_watch = w;
		else if (w)
			watch_free(l, w);
	}
}

static int enqueue(struct loop *l, struct zmm *mm, struct session *s)
{
	struct queued *q = malloc(sizeof(*q));
	uint64_t one = 1;

	if (!q)
		return -ENOMEM;
	if (mm)
		zmm_get(mm);
	q->mm = mm;
	q->s = s;
	/* release: the loop that takes q sees what it says */
	q->next = atomic_load_explicit(&l->queued, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&l->queued, &q->next, q, memory_order_release,
						      memory_order_relaxed))
		;
	/* The loop arms the polls itself: the ring has one submitter. */
	if (write(l->wakefd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

int loop_watch_mm(struct zdevd *d, struct zmm *mm)
{
	return enqueue(d->loop, mm, NULL);
}

/* Without an allocation: a request's end must not fail for want of memory,
 * or its client would never be heard again. */
void loop_rearm_session(struct zdevd *d, struct session *s)
{
	struct loop *l = d->loop;
	uint64_t one = 1;

	/* Once on the stack, it stays there until the loop has read its
	 * link (drain_queue): only then may it be pushed again. */
	if (!atomic_exchange(&s->rearm_queued, true)) {
		s->next_rearm = atomic_load_explicit(&l->rearm, memory_order_relaxed);
		while (!atomic_compare_exchange_weak_explicit(&l->rearm, &s->next_rearm, s,
							      memory_order_release,
							      memory_order_relaxed))
			;
	}
	if (write(l->wakefd, &one, sizeof(one)) != sizeof(one))
		log_err("eventfd: %m");
}

void loop_forget_session(struct zdevd *d, struct session *s)
{
	/* Once the note is out, the loop may free s at any moment. */
	const pid_t pid = s->pid;
	int ret;

	/* Without memory for the note the poll stays, on a connection
	 * shut down for good: its session is freed at shutdown. */
	shutdown(s->sock, SHUT_RDWR);
	ret = enqueue(d->loop, NULL, s);
	if (ret)
		log_err("pid %d: ending its connection: %s", (int)pid, strerror(-ret));
}

/* A one-shot timeout of w after *after, unless armed already; without a
 * free entry, the next call tries again. */
static void arm_timer(struct loop *l, struct watch *w, struct __kernel_timespec *after,
		      bool *armed)
{
	struct io_uring_sqe *sqe;

	if (*armed)
		return;
	sqe = get_sqe(l);
	if (!sqe)
		return;
	io_uring_prep_timeout(sqe, after, 0, 0);
	io_uring_sqe_set_data(sqe, w);
	*armed = true;
}

/* Tried again at the next hold, if the ring is full now. */
static void arm_held_timer(struct loop *l)
{
	if (l->held)
		arm_timer(l, &l->held_timer_w, &l->held_wait, &l->held_timer_armed);
}

/* A worker let go of a held session: it waits on the held list. */
static void hold(struct loop *l, struct watch *w)
{
	if (!w->on_held) {
		w->on_held = true;
		w->next_held = l->held;
		l->held = w;
	}
	/* A client newly held is looked at soon. */
	l->held_wait.tv_sec = 0;
	l->held_wait.tv_nsec = HELD_WAIT_MIN_NS;
	arm_held_timer(l);
}

/* The held timer expired: the sessions whose clients read enough of their
 * replies are polled again. */
static void on_held_timer(struct loop *l)
{
	bool resumed = false;

	l->held_timer_armed = false;
	for (struct watch **p = &l->held; *p;) {
		struct watch *w = *p;

		if (!session_may_resume(w->s)) {
			p = &w->next_held;
			continue;
		}
		*p = w->next_held;
		w->on_held = false;
		resumed = true;
		workers_resume(w->s);
		if (!w->armed && !w->removing && arm(l, w))
			log_err("pid %d: io_uring full: its requests wait", (int)w->s->pid);
	}
	if (!resumed && l->held_wait.tv_nsec < HELD_WAIT_MAX_NS)
		l->held_wait.tv_nsec *= 2;
	arm_held_timer(l);
}

static void drain_queue(struct loop *l)
{
	struct session *rearm;
	struct queued *q;
	uint64_t n;

	if (read(l->wakefd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("eventfd: %m");
	/* acquire: what the pushers wrote before their push */
	rearm = atomic_exchange_explicit(&l->rearm, NULL, memory_order_acquire);
	q = atomic_exchange_explicit(&l->queued, NULL, memory_order_acquire);
	/* Before the notes to forget: a session forgotten right after it
	 * was armed again is disarmed, not left polled. */
	for (struct session *next; rearm; rearm = next) {
		struct watch *w = rearm->watch;

		/* Its link read, it may be pushed again; what it asks after
		 * that is seen here or at the next drain. */
		next = rearm->next_rearm;
		atomic_store(&rearm->rearm_queued, false);

		if (!w || w->removing || w->armed)
			continue;
		if (workers_held(rearm))
			hold(l, w);
		else if (arm(l, w))
			log_err("pid %d: io_uring full: its requests wait", (int)rearm->pid);
	}
	while (q) {
		struct queued *next = q->next;
		struct watch *w = q->s ? q->s->watch : NULL;

		if (w && w->armed) {
			disarm(l, w);
		} else if (w) {
			/* No poll to complete: it goes now. */
			session_free(w->s);
			watch_free(l, w);
		}
		if (q->mm && !atomic_load(&q->mm->dead)) {
			watch_add_mm(l, q->mm);
		} else if (q->mm) {
			/* Gone: its uffd will not say so itself. Nor will its
			 * pidfd when the process lives on (an mm of its image
			 * before an exec, or one whose uffd failed): each
			 * watch holds the mm, and with it its files. */
			if (q->mm->uffd_watch)
				disarm(l, q->mm->uffd_watch);
			if (q->mm->pidfd_watch)
				disarm(l, q->mm->pidfd_watch);
		}
		if (q->mm)
			zmm_put(q->mm);
		free(q);
		q = next;
	}
}

/* ---- uffd messages ---- */

struct deferred {
	uint64_t addr, flags, t0;
	pid_t tid;
};

/* How often the fork children not claimed yet are asked whether they
 * still live. */
static struct __kernel_timespec reap_every = { .tv_sec = 1 };

/* Tried again at the next fork, if the ring is full now. */
static void arm_reap_timer(struct loop *l)
{
	arm_timer(l, &l->reap_timer_w, &reap_every, &l->reap_timer_armed);
}

/*
 * A fork child that ends before it claims its uffd (killed before its first
 * call into libzdev, or forked by a raw system call) holds its share of the
 * parent's device pages, and zdevd, which knows no pid of it, gets no pidfd
 * to say so: its uffd is asked instead (clients_reap_unclaimed).
 */
static void on_reap_timer(struct loop *l)
{
	l->reap_timer_armed = false;
	if (clients_reap_unclaimed(l->d))
		arm_reap_timer(l);
}

static void on_fork(struct loop *l, struct zmm *parent, int ufd)
{
	struct zmm *child;

	if (zmm_create(parent->ds, 0, parent->uid, ufd, &child)) {
		log_err("pid %d: fork: out of memory; the child's device pages are lost",
			 (int)parent->pid);
		close(ufd);
		return;
	}
	if (uffd_dev_on_fork(parent, child))
		log_err("pid %d: fork: out of memory sharing device pages", (int)parent->pid);
	watch_add_mm(l, child);
	clients_add_unclaimed(l->d, parent, child);
	arm_reap_timer(l);
}

/* A CPU fault on a device page served, timed from t0 (the loop took it up):
 * into the daemon's histogram and the process's, and the trace, or, for a
 * modelled device, once the model lets its threads go (fault_delay.h). tid:
 * the faulting thread (0: not known). */
static void fault_served(struct loop *l, struct zmm *mm, uint64_t t0, pid_t tid, uint64_t addr,
			 const struct uffd_fault_done *done)
{
	if (done->held.len)
		fault_delay_hold(l->d, mm, tid, addr, done, t0);
	else
		fault_record(l->d, mm, tid, addr, done, t0, lathist_now_ns());
}

/* The faulting thread, where the uffd says (UFFD_FEATURE_THREAD_ID). */
static pid_t fault_tid(const struct zmm *mm, const struct uffd_msg *msg)
{
	return mm->ds->uffd_features & UFFD_FEATURE_THREAD_ID ? (pid_t)msg->arg.pagefault.feat.ptid
							      : 0;
}

static int on_msg(struct loop *l, struct zmm *mm, const struct uffd_msg *msg,
		  struct deferred *def, int *ndef)
{
	struct uffd_fault_done done;
	uint64_t t0;
	int ret;

	switch (msg->event) {
	case UFFD_EVENT_PAGEFAULT:
		t0 = lathist_now_ns();
		ret = uffd_dev_fault(mm, msg->arg.pagefault.address, msg->arg.pagefault.flags,
				     &done);
		if (ret == -EAGAIN && *ndef < 64) {
			def[(*ndef)++] = (struct deferred){ msg->arg.pagefault.address,
							    msg->arg.pagefault.flags, t0,
							    fault_tid(mm, msg) };
			return 0;
		}
		if (ret > 0)
			fault_served(l, mm, t0, fault_tid(mm, msg), msg->arg.pagefault.address,
				     &done);
		return ret < 0 ? ret : 0;
	case UFFD_EVENT_FORK:
		on_fork(l, mm, (int)msg->arg.fork.ufd);
		return 0;
	case UFFD_EVENT_REMAP:
		uffd_dev_on_remap(mm, msg->arg.remap.from, msg->arg.remap.to, msg->arg.remap.len);
		excl_on_remap(mm, msg->arg.remap.from, msg->arg.remap.to, msg->arg.remap.len);
		return 0;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		uffd_dev_on_remove(mm, msg->arg.remove.start, msg->arg.remove.end,
				   msg->event == UFFD_EVENT_UNMAP);
		return 0;
	default:
		return 0;
	}
}

static void serve_uffd_msgs(struct loop *l, struct zmm *mm, struct uffd_msg *msgs,
			    struct deferred *def, int *ndefp);

static void serve_uffd(struct loop *l, struct zmm *mm)
{
	struct deferred def[64];
	struct uffd_msg msgs[16];
	int ndef = 0;

	/* seq_cst: set before the read that releases a client blocked in an
	 * event, hence before any request that client sends after it. */
	atomic_store_explicit(&mm->reading_events, true, memory_order_seq_cst);
	serve_uffd_msgs(l, mm, msgs, def, &ndef);
	/* release: what the events changed is visible to a waiting request. */
	atomic_store_explicit(&mm->reading_events, false, memory_order_release);
}

void loop_serve_events(struct zdevd *d, struct zmm *mm)
{
	serve_uffd(d->loop, mm);
}

static void serve_uffd_msgs(struct loop *l, struct zmm *mm, struct uffd_msg *msgs,
			    struct deferred *def, int *ndefp)
{
	int ndef = *ndefp;

	for (int round = 0; round < FAULT_RETRIES; round++) {
		ssize_t n = read(mm->uffd, msgs, 16 * sizeof(*msgs));

		if (n < 0 && errno != EAGAIN) {
			log_warn("pid %d: reading its uffd: %m", (int)mm->pid);
			return;
		}
		/*
		 * The events first, then the faults, though a read returns the
		 * faults first. The kernel takes an event as delivered once
		 * read: fork and mremap go on, and stop refusing our copies
		 * with EAGAIN, before on_msg has seen the event. A fault served
		 * first would act on the address space as it was: a device
		 * page brought home in the parent after fork copied its page
		 * tables would be left out of the child's share, which then
		 * reads zeros there.
		 */
		for (int faults = 0; faults < 2; faults++) {
			for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
				int ret;

				if ((msgs[i].event == UFFD_EVENT_PAGEFAULT) != faults)
					continue;
				ret = on_msg(l, mm, &msgs[i], def, &ndef);
				if (ret && ret != -EAGAIN)
					log_warn("pid %d: fault at %#llx: %s", (int)mm->pid,
						  (unsigned long long)msgs[i].arg.pagefault.address,
						  strerror(-ret));
			}
		}
		/* Faults refused while events were pending: the events are
		 * read now, so the retry goes through. */
		for (int i = 0; i < ndef;) {
			struct uffd_fault_done done;
			int ret = uffd_dev_fault(mm, def[i].addr, def[i].flags, &done);

			if (ret == -EAGAIN) {
				i++;
				continue;
			}
			if (ret > 0)
				fault_served(l, mm, def[i].t0, def[i].tid, def[i].addr, &done);
			def[i] = def[--ndef];
		}
		/* A short read took everything there was: the poll wakes us
		 * for the next, without a read that would only say EAGAIN. */
		if (!ndef && (n < 0 || (size_t)n < 16 * sizeof(*msgs)))
			return;
		if (n < 0)
			sched_yield();
		*ndefp = ndef;
	}
	/*
	 * Still refused: the thread changing the address space has not sent
	 * its event yet (munmap and mremap raise mmap_changing while they hold
	 * the mmap lock, and queue the event only after). Waking the faulting
	 * threads makes them fault again, which brings the fault back to us
	 * once the event is in; a fault dropped here would wait forever.
	 */
	for (int i = 0; i < ndef; i++) {
		const uint64_t page = def[i].addr & ~(PG_SIZE - 1);

		uffd_dev_wake(mm, page, page + PG_SIZE);
	}
	log_dbg("pid %d: %d faults refused while its address space changes: woken to retry",
		(int)mm->pid, ndef);
	*ndefp = 0;
}

/* ---- fair service of the uffds ---- */

/*
 * One thread serves every client's CPU faults, so a client with few faults
 * waits behind those of clients with many: in arrival order, a fault of a
 * light client waited for one of every busy client's. Readable uffds are
 * gathered instead and served a few at a time, the one served least lately
 * first, between looks for new completions; a client faulting less than
 * its share is served next, whatever the others queue.
 */
static uint32_t served_lately(struct watch *w, uint64_t now)
{
	uint64_t halves = (now - w->served_ns) / SERVED_HALF_NS;

	if (halves) {
		w->served = halves >= 32 ? 0 : w->served >> halves;
		w->served_ns += halves * SERVED_HALF_NS;
	}
	return w->served;
}

static void ready_add(struct loop *l, struct watch *w)
{
	if (l->nready == l->ready_cap) {
		unsigned int cap = l->ready_cap ? 2 * l->ready_cap : 64;
		struct watch **v = realloc(l->ready, cap * sizeof(*v));

		if (!v) {
			/* Served at once, in arrival order. */
			serve_uffd(l, w->mm);
			arm(l, w);
			return;
		}
		l->ready = v;
		l->ready_cap = cap;
	}
	w->ready = true;
	l->ready[l->nready++] = w;
}

/* Serves up to SERVE_BATCH ready uffds, the least served lately first:
 * how many it served. */
static unsigned int serve_ready(struct loop *l)
{
	unsigned int served = 0;
	const uint64_t now = lathist_now_ns();

	for (int k = 0; k < SERVE_BATCH && l->nready; k++) {
		unsigned int best = 0;
		struct watch *w;

		for (unsigned int i = 1; i < l->nready; i++)
			if (served_lately(l->ready[i], now) < served_lately(l->ready[best], now))
				best = i;
		w = l->ready[best];
		l->ready[best] = l->ready[--l->nready];
		w->ready = false;
		if (w->removing || atomic_load(&w->mm->dead)) {
			/* Its poll was stopped while it waited here: no CQE
			 * will free it. */
			watch_free(l, w);
			continue;
		}
		serve_uffd(l, w->mm);
		w->served++;
		served++;
		arm(l, w);
	}
	return served;
}

/* ---- the loop ---- */

static void on_listen(struct zdevd *d, struct loop *l)
{
	for (;;) {
		int sock = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (sock < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept: %m");
			return;
		}
		struct session *s = session_new(d, sock);
		struct watch *w = s ? watch_new(l, W_SESSION, sock, NULL) : NULL;

		if (w) {
			w->s = s;
			s->watch = w;
			if (!arm(l, w))
				continue;
			watch_free(l, w);
		}
		if (s)
			session_free(s);
		else
			close(sock);
	}
}

/* The one completion of a pidfd's poll: its process has exited (or the
 * loop is ending). Its uffd's poll, which never says so, is stopped too. */
static void on_pidfd_cqe(struct loop *l, struct watch *w, const struct io_uring_cqe *cqe)
{
	if (cqe->res >= 0) {
		if (w->mm->uffd_watch)
			disarm(l, w->mm->uffd_watch);
		clients_exit(l->d, w->mm);
	}
	watch_free(l, w);
}

int loop_create(struct zdevd *d)
{
	struct loop *l = calloc(1, sizeof(*l));
	sigset_t mask;
	int ret;

	if (!l)
		return -ENOMEM;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	l->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->sigfd < 0 || l->wakefd < 0) {
		ret = -errno;
		goto err_close;
	}
	ret = io_uring_queue_init(256, &l->ring,
				  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (ret)
		goto err_close;
	l->listen_w = (struct watch){ .kind = W_LISTEN, .fd = d->listen_fd };
	l->sig_w = (struct watch){ .kind = W_SIGNAL, .fd = l->sigfd };
	l->wake_w = (struct watch){ .kind = W_WAKE, .fd = l->wakefd };
	l->held_timer_w = (struct watch){ .kind = W_HELD_TIMER, .fd = -1 };
	l->reap_timer_w = (struct watch){ .kind = W_REAP_TIMER, .fd = -1 };
	l->held_wait.tv_nsec = HELD_WAIT_MIN_NS;
	l->d = d;
	d->loop = l;
	return 0;

err_close:
	if (l->sigfd >= 0)
		close(l->sigfd);
	if (l->wakefd >= 0)
		close(l->wakefd);
	free(l);
	return ret;
}

static void on_cqe(struct zdevd *d, struct loop *l, struct io_uring_cqe *cqe)
{
	struct watch *w = io_uring_cqe_get_data(cqe);

	if (!w)
		return;
	if (w->kind == W_PIDFD) {
		on_pidfd_cqe(l, w, cqe);
		return;
	}
	if (w->kind == W_HELD_TIMER) {
		on_held_timer(l);
		return;
	}
	if (w->kind == W_REAP_TIMER) {
		on_reap_timer(l);
		return;
	}
	if (w->kind == W_UFFD || w->kind == W_SESSION) {
		/* One shot: this was its poll's only completion. A session
		 * ending shuts its socket down first, so an armed poll always
		 * completes; a dead client's uffd watch is dropped at its next. */
		w->armed = false;
		if (w->removing || (w->mm && atomic_load(&w->mm->dead))) {
			if (w->kind == W_SESSION)
				session_free(w->s);
			watch_free(l, w);
			return;
		}
		if (cqe->res < 0 && cqe->res != -ECANCELED)
			log_warn("io_uring: poll of fd %d: %s", w->fd, strerror(-cqe->res));
		/* A session's poll waits for its worker to be done
		 * (loop_rearm_session): armed again while the message that
		 * woke it is unread, it would complete at once, and again,
		 * spinning this thread until the worker reads it, which a
		 * migration waiting for its client's answer may not do for
		 * a while. */
		if (w->kind == W_UFFD && cqe->res >= 0)
			ready_add(l, w);	/* armed again once served */
		else if (w->kind == W_UFFD)
			arm(l, w);
	} else if (!(cqe->flags & IORING_CQE_F_MORE)) {
		/* The multishot poll ended: the kernel dropped it. */
		if (cqe->res >= 0 || cqe->res == -ECANCELED)
			arm(l, w);
	}
	if (cqe->res < 0)
		return;
	switch (w->kind) {
	case W_LISTEN:
		on_listen(d, l);
		break;
	case W_SIGNAL: {
		struct signalfd_siginfo si;

		while (read(l->sigfd, &si, sizeof(si)) == sizeof(si))
			atomic_store(&d->stopping, true);
		break;
	}
	case W_WAKE:
		drain_queue(l);
		break;
	case W_UFFD:
		break;	/* serve_ready() */
	case W_PIDFD:
		break;	/* on_pidfd_cqe() */
	case W_SESSION:
		workers_kick(w->s);
		break;
	case W_HELD_TIMER:
		break;	/* on_held_timer() */
	case W_REAP_TIMER:
		break;	/* on_reap_timer() */
	}
}

static void put_off(struct loop *l, const struct io_uring_cqe *cqe)
{
	l->later[(l->later_first + l->nlater++) % LATER_MAX] = *cqe;
}

/* The oldest completion put off. */
static void handle_later(struct zdevd *d, struct loop *l)
{
	struct io_uring_cqe cqe = l->later[l->later_first];

	l->later_first = (l->later_first + 1) % LATER_MAX;
	l->nlater--;
	on_cqe(d, l, &cqe);
}

int loop_run(struct zdevd *d)
{
	const bool spin = sysconf(_SC_NPROCESSORS_ONLN) > 1;
	struct loop *l = d->loop;
	uint64_t spin_until = 0;
	int ret;

	ret = arm(l, &l->listen_w) ?: arm(l, &l->sig_w) ?: arm(l, &l->wake_w);
	if (ret)
		return ret;
	while (!atomic_load(&d->stopping)) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		/* Blocks in the kernel while idle: no CPU used. With uffds
		 * or other completions still to handle, or right after
		 * serving a uffd, it only looks for what completed
		 * meanwhile. */
		if (l->nready || l->nlater || (spin_until && lathist_now_ns() < spin_until))
			ret = io_uring_submit_and_get_events(&l->ring);
		else
			ret = io_uring_submit_and_wait(&l->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_err("io_uring: %s", strerror(-ret));
			/* What is in flight ends as at a stop. */
			atomic_store(&d->stopping, true);
			return ret;
		}
		/* Faults first: the rest (connections to accept, sessions to
		 * kick, notes) waits until the ready uffds had a batch, so
		 * that a client reconnecting in a loop delays no fault. */
		io_uring_for_each_cqe(&l->ring, head, cqe) {
			const struct watch *w = io_uring_cqe_get_data(cqe);

			if (w && w->kind == W_UFFD) {
				on_cqe(d, l, cqe);
			} else {
				/* Full: the oldest goes first, so that a
				 * watch's completions keep their order. */
				if (l->nlater == LATER_MAX)
					handle_later(d, l);
				put_off(l, cqe);
			}
			n++;
		}
		io_uring_cq_advance(&l->ring, n);
		if (serve_ready(l) && spin)
			spin_until = lathist_now_ns() + FAULT_SPIN_NS;
		/*
		 * A few at a time: a session kicked wakes a worker, and on a
		 * busy machine the woken worker often takes this CPU from the
		 * loop for a while; a fault that came meanwhile waits for
		 * LATER_BATCH of those at most, not for every connection a
		 * client opened in a loop.
		 */
		for (unsigned int i = 0; i < LATER_BATCH && l->nlater; i++)
			handle_later(d, l);
	}
	/* What completed before the stop is handled, as it came. */
	while (l->nlater)
		handle_later(d, l);
	return 0;
}

void loop_destroy(struct zdevd *d)
{
	struct loop *l = d->loop;

	if (!l)
		return;
	io_uring_queue_exit(&l->ring);
	free(l->ready);
	while (l->clients)
		watch_free(l, l->clients);
	while (l->queued) {
		struct queued *q = l->queued;

		/* a session here was freed by workers_stop_all() already */
		l->queued = q->next;
		if (q->mm)
			zmm_put(q->mm);
		free(q);
	}
	close(l->sigfd);
	close(l->wakefd);
	free(l);
	d->loop = NULL;
}
