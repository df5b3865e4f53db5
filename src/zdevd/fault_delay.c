/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "devmodel.h"
#include "lathist.h"
#include "log.h"
#include "spinlock.h"
#include "trace.h"
#include "zdevd/fault_delay.h"
#include "zdevd/fault_overhead.h"
#include "zmm.h"

/*
 * A remainder up to this long is waited out on the fault thread itself: a
 * wake-up from the other thread costs tens of µs more than one from the
 * thread that served the fault on a virtual machine (a wake across vCPUs),
 * which would add that to every short modelled fault. Other clients'
 * faults wait that long at most.
 */
#define INLINE_WAIT_MAX_NS 50000ull

struct held_fault {
	struct zmm *mm;		/* a reference */
	struct uffd_fault_held range;
	struct uffd_fault_done done;
	pid_t tid;
	uint64_t addr;
	uint64_t t0;		/* the loop took the fault up */
	uint64_t served_ns;	/* the loop was done with it */
	uint64_t deadline;
	struct held_fault *next;
};

struct fault_delay {
	struct zdevd *d;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;		/* on CLOCK_MONOTONIC */
	struct held_fault *head;	/* by deadline, earliest first */
	_Atomic unsigned int nheld;	/* on the list, for a look without the lock */
	bool stopping;
	/* a fault's time before zdevd takes it up and after it is woken,
	 * which the model's time includes (fault_overhead.h) */
	uint64_t unseen_ns;
};

void fault_record(struct zdevd *d, struct zmm *mm, pid_t tid, uint64_t addr,
		  const struct uffd_fault_done *done, uint64_t t0, uint64_t t1)
{
	lathist_record(&d->fault_lat, t1 - t0);
	lathist_record(&mm->fault_lat, t1 - t0);
	if (tracing())
		trace_fault(done->revoked ? TRACE_REVOKE_FAULT : TRACE_CPU_FAULT, mm->pid, tid,
			    done->dev, addr & ~(PG_SIZE - 1), done->pages, t0, t1);
}

/* The fault's threads go on, and its latency is what they waited. */
static void release(struct zdevd *d, struct held_fault *h)
{
	struct devmodel *m = &d->devs.dev[h->range.dev].model;
	uint64_t now;

	uffd_dev_wake(h->mm, h->range.start, h->range.start + h->range.len);
	now = lathist_now_ns();
	fault_record(d, h->mm, h->tid, h->addr, &h->done, h->t0, now);
	if (now > h->served_ns)
		atomic_fetch_add_explicit(&m->added_ns, now - h->served_ns, memory_order_relaxed);
	zmm_put(h->mm);
	free(h);
}

static void wait_until_locked(struct fault_delay *fd, uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	pthread_cond_timedwait(&fd->changed, &fd->lock, &ts);
}

/*
 * With none held, a look at the list for up to devmodel_spin_ns() before
 * sleeping: a thread asleep takes tens of µs to wake on a virtual machine,
 * more than a short fault latency, and a program that faults once faults
 * again soon. The spin is bounded, so an idle zdevd sleeps.
 */
static bool spin_for_next(struct fault_delay *fd)
{
	const uint64_t until = lathist_now_ns() + devmodel_spin_ns();

	do {
		if (atomic_load_explicit(&fd->nheld, memory_order_relaxed))
			return true;
		cpu_relax();
	} while (lathist_now_ns() < until);
	return false;
}

/*
 * Sleeps until a little before the earliest deadline (a fault held meanwhile
 * with an earlier one wakes it), then spins to it (devmodel_wait_until: at
 * most devmodel_spin_ns()) with the lock dropped, so that the loop can hold
 * more faults meanwhile.
 */
static void *delay_main(void *arg)
{
	struct fault_delay *fd = arg;

	pthread_mutex_lock(&fd->lock);
	for (;;) {
		struct held_fault *h = fd->head;
		bool stopping = fd->stopping;

		if (!h && stopping)
			break;
		if (!h) {
			bool more;

			pthread_mutex_unlock(&fd->lock);
			more = spin_for_next(fd);
			pthread_mutex_lock(&fd->lock);
			if (!more && !fd->head && !fd->stopping)
				pthread_cond_wait(&fd->changed, &fd->lock);
			continue;
		}
		if (!stopping && h->deadline > lathist_now_ns() + devmodel_spin_ns()) {
			wait_until_locked(fd, h->deadline - devmodel_spin_ns());
			continue;
		}
		fd->head = h->next;
		atomic_fetch_sub_explicit(&fd->nheld, 1, memory_order_relaxed);
		pthread_mutex_unlock(&fd->lock);
		if (!stopping)
			devmodel_wait_until(h->deadline);
		release(fd->d, h);
		pthread_mutex_lock(&fd->lock);
	}
	pthread_mutex_unlock(&fd->lock);
	return NULL;
}

static bool any_model(const struct devset *ds)
{
	for (unsigned int i = 0; i < ds->ndevices; i++)
		if (devmodel_on(&ds->dev[i].model))
			return true;
	return false;
}

int fault_delay_start(struct zdevd *d)
{
	struct fault_delay *fd;
	pthread_condattr_t attr;
	int ret;

	if (!any_model(&d->devs))
		return 0;
	fd = calloc(1, sizeof(*fd));
	if (!fd)
		return -ENOMEM;
	fd->d = d;
	devmodel_calibrate();
	/* Three quarters of the fastest seen: a fault delivered faster than
	 * that would end before its modelled time. */
	fd->unseen_ns = fault_overhead_measure() * 3 / 4;
	log_info("device model: waits under %llu us are spun; a fault's delivery and wake-up "
		 "take %llu us of its modelled time", (unsigned long long)devmodel_spin_ns() / 1000,
		 (unsigned long long)fd->unseen_ns / 1000);
	pthread_mutex_init(&fd->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&fd->changed, &attr);
	pthread_condattr_destroy(&attr);
	ret = -pthread_create(&fd->thread, NULL, delay_main, fd);
	if (ret)
		goto out_free;
	d->fault_delay = fd;
	return 0;

out_free:
	pthread_cond_destroy(&fd->changed);
	pthread_mutex_destroy(&fd->lock);
	free(fd);
	return ret;
}

void fault_delay_stop(struct zdevd *d)
{
	struct fault_delay *fd = d->fault_delay;

	if (!fd)
		return;
	pthread_mutex_lock(&fd->lock);
	fd->stopping = true;
	pthread_cond_signal(&fd->changed);
	pthread_mutex_unlock(&fd->lock);
	pthread_join(fd->thread, NULL);
}

void fault_delay_free(struct zdevd *d)
{
	struct fault_delay *fd = d->fault_delay;

	if (!fd)
		return;
	d->fault_delay = NULL;
	pthread_cond_destroy(&fd->changed);
	pthread_mutex_destroy(&fd->lock);
	free(fd);
}

static void insert_locked(struct fault_delay *fd, struct held_fault *h)
{
	struct held_fault **p = &fd->head;

	while (*p && (*p)->deadline <= h->deadline)
		p = &(*p)->next;
	h->next = *p;
	*p = h;
	atomic_fetch_add_explicit(&fd->nheld, 1, memory_order_relaxed);
	if (fd->head == h)
		pthread_cond_signal(&fd->changed);
}

void fault_delay_hold(struct zdevd *d, struct zmm *mm, pid_t tid, uint64_t addr,
		      const struct uffd_fault_done *done, uint64_t t0)
{
	const struct uffd_fault_held *held = &done->held;
	const struct devmodel *m = &d->devs.dev[held->dev].model;
	struct fault_delay *fd = d->fault_delay;
	struct held_fault *h = malloc(sizeof(*h));

	if (!h) {
		/* Woken now: a fault must never be left asleep. */
		uffd_dev_wake(mm, held->start, held->start + held->len);
		fault_record(d, mm, tid, addr, done, t0, lathist_now_ns());
		return;
	}
	zmm_get(mm);
	*h = (struct held_fault){
		.mm = mm, .range = *held, .done = *done, .tid = tid, .addr = addr, .t0 = t0,
		.served_ns = lathist_now_ns(),
		.deadline = t0 + m->cfg.fault_ns + devmodel_transfer_ns(m, held->len),
	};
	if (fd)
		h->deadline -= h->deadline - t0 > fd->unseen_ns ? fd->unseen_ns : h->deadline - t0;
	/* Past its deadline already (the host is slower than the model), or
	 * nearly: no other thread wakes it. */
	if (fd && h->deadline > h->served_ns &&
	    h->deadline - h->served_ns <= INLINE_WAIT_MAX_NS) {
		devmodel_wait_until(h->deadline);
		release(d, h);
		return;
	}
	if (fd && h->deadline > h->served_ns) {
		pthread_mutex_lock(&fd->lock);
		if (!fd->stopping) {
			insert_locked(fd, h);
			h = NULL;
		}
		pthread_mutex_unlock(&fd->lock);
	}
	if (h)
		release(d, h);
}
