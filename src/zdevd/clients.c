/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"
#include "store.h"
#include "trace.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "zdevd/clients.h"
#include "zdevd/proof.h"
#include "zmm.h"

static void list_add(struct zdevd *d, struct zmm *mm, bool is_new)
{
	zmm_get(mm);
	pthread_mutex_lock(&d->mms_lock);
	mm->next = d->mms;
	d->mms = mm;
	d->nclients++;
	d->clients_total += is_new;
	pthread_mutex_unlock(&d->mms_lock);
	if (tracing())
		trace_mark(TRACE_CONNECT, mm->pid, -1, 0, 0, 1);
}

void clients_add(struct zdevd *d, struct zmm *mm)
{
	list_add(d, mm, true);
}

void clients_exit(struct zdevd *d, struct zmm *mm)
{
	struct zmm **p;
	bool listed = false;

	if (atomic_exchange(&mm->dead, true))
		return;
	pthread_mutex_lock(&d->mms_lock);
	for (p = &d->mms; *p; p = &(*p)->next) {
		if (*p == mm) {
			*p = mm->next;
			d->nclients--;
			listed = true;
			break;
		}
	}
	pthread_mutex_unlock(&d->mms_lock);
	log_info("pid %d gone", (int)mm->pid);
	if (tracing() && mm->pid > 0)
		trace_mark(TRACE_EXIT, mm->pid, -1, 0, 0, 1);
	/* The loop stops polling its uffd, which will never say it is gone
	 * (the loop frees the note if it has stopped). */
	loop_watch_mm(d, mm);
	zmm_drop_all(mm);
	/* Its claim on its stores too, not at the last reference (a session
	 * may hold one a while): an unplug waits for the device's stores. */
	pthread_mutex_lock(&mm->lock);
	store_put_all(&mm->stores);
	pthread_mutex_unlock(&mm->lock);
	if (listed)
		zmm_put(mm);
}

struct zmm *clients_find(struct zdevd *d, pid_t pid)
{
	struct zmm *mm;

	pthread_mutex_lock(&d->mms_lock);
	for (mm = d->mms; mm; mm = mm->next)
		if (mm->pid == pid && !atomic_load(&mm->dead))
			break;
	if (mm)
		zmm_get(mm);
	pthread_mutex_unlock(&d->mms_lock);
	return mm;
}

struct zmm *clients_find_live(struct zdevd *d, pid_t pid)
{
	struct zmm *mm = clients_find(d, pid);

	if (mm && (zmm_pid_reused(mm) || proof_mm_gone(mm->uffd))) {
		/* A process gone, whose exit the loop has not seen yet, or
		 * one that exec'd: its old image's memory went with it. */
		clients_exit(d, mm);
		zmm_put(mm);
		mm = NULL;
	}
	return mm;
}

void clients_add_unclaimed(struct zdevd *d, struct zmm *parent, struct zmm *child)
{
	struct zmm **p;

	child->parent_pid = parent->pid;
	pthread_mutex_lock(&d->mms_lock);
	for (p = &d->unclaimed; *p; p = &(*p)->next_unclaimed)
		;
	*p = child;
	/* Served from now on, whether or not it ever says hello. */
	d->clients_total++;
	pthread_mutex_unlock(&d->mms_lock);
}

static bool has_unclaimed(struct zdevd *d, pid_t parent_pid)
{
	bool found = false;

	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *c = d->unclaimed; c && !found; c = c->next_unclaimed)
		found = c->parent_pid == parent_pid;
	pthread_mutex_unlock(&d->mms_lock);
	return found;
}

bool clients_fork_pending(struct zdevd *d, pid_t parent_pid)
{
	struct zmm *parent;
	bool expect_event;

	if (!(d->devs.uffd_features & UFFD_FEATURE_EVENT_FORK))
		return false;
	parent = clients_find(d, parent_pid);
	/* Without registered memory the parent's fork raised no event. A
	 * parent already gone may have had one: look for a while either way. */
	expect_event = !parent || atomic_load(&parent->registered);
	if (parent)
		zmm_put(parent);
	/* The fork event was read before the child could run, but the loop
	 * may still be handling it: give it a moment. */
	for (int i = 0; i < (expect_event ? 200 : 1); i++) {
		if (has_unclaimed(d, parent_pid))
			return true;
		usleep(500);
	}
	return false;
}

/* Every unclaimed child of parent_pid, each with a reference: *n of them in
 * a new array, or NULL. */
static struct zmm **unclaimed_children(struct zdevd *d, pid_t parent_pid, size_t *n)
{
	struct zmm **cand = NULL;
	size_t cap = 0;

	*n = 0;
	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *c = d->unclaimed; c; c = c->next_unclaimed)
		cap += c->parent_pid == parent_pid;
	cand = cap ? malloc(cap * sizeof(*cand)) : NULL;
	for (struct zmm *c = d->unclaimed; c && cand && *n < cap; c = c->next_unclaimed) {
		if (c->parent_pid != parent_pid)
			continue;
		zmm_get(c);
		cand[(*n)++] = c;
	}
	pthread_mutex_unlock(&d->mms_lock);
	return cand;
}

/* Takes child off the unclaimed list: false if another claim took it first. */
static bool take_unclaimed(struct zdevd *d, struct zmm *child)
{
	bool taken = false;

	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm **p = &d->unclaimed; *p; p = &(*p)->next_unclaimed) {
		if (*p == child) {
			*p = child->next_unclaimed;
			taken = true;
			break;
		}
	}
	pthread_mutex_unlock(&d->mms_lock);
	return taken;
}

unsigned int clients_reap_unclaimed(struct zdevd *d)
{
	struct zmm **children = NULL, *c;
	unsigned int n = 0, left = 0;

	/* Each with a reference, so that the probes run unlocked: a probe
	 * may wait for the child's mmap lock. */
	pthread_mutex_lock(&d->mms_lock);
	for (c = d->unclaimed; c; c = c->next_unclaimed)
		n++;
	if (n)
		children = calloc(n, sizeof(*children));
	n = 0;
	for (c = d->unclaimed; c && children; c = c->next_unclaimed) {
		zmm_get(c);
		children[n++] = c;
	}
	pthread_mutex_unlock(&d->mms_lock);
	for (unsigned int i = 0; i < n; i++) {
		c = children[i];
		/* A claim that took it first found it alive. */
		if (uffd_dev_mm_gone(c) && take_unclaimed(d, c)) {
			log_info("a fork child of pid %d ended before it claimed its uffd",
				 (int)c->parent_pid);
			clients_exit(d, c);
			zmm_put(c);	/* the list's */
		}
		zmm_put(c);
	}
	free(children);
	pthread_mutex_lock(&d->mms_lock);
	for (c = d->unclaimed; c; c = c->next_unclaimed)
		left++;
	pthread_mutex_unlock(&d->mms_lock);
	return left;
}

struct zmm *clients_claim_fork(struct zdevd *d, pid_t pid, pid_t parent_pid,
			       uint64_t proof_addr)
{
	struct zmm **cand, *child = NULL;
	bool taken = false;
	size_t n;

	/* Several threads of the parent may fork at once, and their children
	 * say hello in any order: the proof, not the order, pairs them. Every
	 * unclaimed child of the parent is a candidate, however many never
	 * said hello. */
	cand = unclaimed_children(d, parent_pid, &n);
	for (size_t i = 0; i < n && !child; i++)
		if (!proof_check(cand[i]->uffd, pid, proof_addr))
			child = cand[i];
	if (child)
		taken = take_unclaimed(d, child);
	for (size_t i = 0; i < n; i++)
		if (cand[i] != child || !taken)
			zmm_put(cand[i]);
	free(cand);
	/* taken: the list's reference and ours are both ours now */
	if (!taken)
		return NULL;
	zmm_put(child);
	if (zmm_set_pid(child, pid)) {
		/* Gone already: nothing of it to keep. */
		zmm_put(child);
		return NULL;
	}
	list_add(d, child, false);	/* counted when its fork was */
	if (loop_watch_mm(d, child))
		clients_exit(d, child);
	return child;	/* the list's reference is now the caller's */
}

/* Puts mm into out[0..*n), kept sorted by pid and at most max long. */
static void insert_by_pid(struct zmm **out, unsigned int *n, unsigned int max, struct zmm *mm)
{
	unsigned int i = *n;

	if (i == max && mm->pid > out[max - 1]->pid)
		return;
	if (i == max)
		i--;
	else
		(*n)++;
	for (; i > 0 && out[i - 1]->pid > mm->pid; i--)
		out[i] = out[i - 1];
	out[i] = mm;
}

unsigned int clients_list_after(struct zdevd *d, pid_t after, struct zmm **out,
				unsigned int max, bool *more)
{
	unsigned int n = 0, above = 0;

	if (!max)
		return 0;
	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *mm = d->mms; mm; mm = mm->next) {
		if (mm->pid <= after || atomic_load(&mm->dead))
			continue;
		above++;
		insert_by_pid(out, &n, max, mm);
	}
	for (unsigned int i = 0; i < n; i++)
		zmm_get(out[i]);
	pthread_mutex_unlock(&d->mms_lock);
	*more = above > n;
	return n;
}

/* Rounds of reading a process's events for its eviction: one that keeps
 * forking or unmapping while zdevd stops cannot hold it up for good. */
#define SHUTDOWN_EVENT_ROUNDS 1000

/*
 * With the loop stopped, a client blocked in a uffd event (fork, munmap,
 * madvise) stays blocked until we read it, and the kernel refuses our copies
 * into it meanwhile (EAGAIN): we read its events ourselves between tries.
 */
static int evict_at_shutdown(struct zdevd *d, struct zmm *mm)
{
	int ret = -EAGAIN;

	for (int round = 0; round < SHUTDOWN_EVENT_ROUNDS && ret == -EAGAIN; round++) {
		loop_serve_events(d, mm);
		ret = migrate_evict(mm, -1, NULL);
	}
	return ret;
}

struct zmm **clients_every(struct zdevd *d, bool unclaimed, size_t *n)
{
	struct zmm **all;
	size_t cap = 0;

	*n = 0;
	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *mm = d->mms; mm; mm = mm->next)
		cap++;
	for (struct zmm *mm = d->unclaimed; mm && unclaimed; mm = mm->next_unclaimed)
		cap++;
	all = malloc((cap + 1) * sizeof(*all));
	for (struct zmm *mm = d->mms; mm && all; mm = mm->next)
		all[(*n)++] = mm;
	for (struct zmm *mm = d->unclaimed; mm && all && unclaimed; mm = mm->next_unclaimed)
		all[(*n)++] = mm;
	for (size_t i = 0; i < *n; i++)
		zmm_get(all[i]);
	pthread_mutex_unlock(&d->mms_lock);
	return all;
}

void clients_serve_events(struct zdevd *d)
{
	size_t n;
	struct zmm **list = clients_every(d, false, &n);

	for (size_t i = 0; i < n; i++) {
		loop_serve_events(d, list[i]);
		zmm_put(list[i]);
	}
	free(list);
}

void clients_evict_all(struct zdevd *d)
{
	/* Every uffd ioctl from here on fails at once where it would wait
	 * for the loop (uffd_dev_ioctl). */
	atomic_store(&d->devs.events_unread, true);
	for (;;) {
		struct zmm *mm;

		pthread_mutex_lock(&d->mms_lock);
		mm = d->mms;
		if (mm)
			zmm_get(mm);
		pthread_mutex_unlock(&d->mms_lock);
		if (!mm)
			break;
		if (evict_at_shutdown(d, mm))
			log_warn("pid %d: could not bring every page back", (int)mm->pid);
		clients_exit(d, mm);
		zmm_put(mm);
	}
}

void clients_drop_unclaimed(struct zdevd *d)
{
	struct zmm *child;

	/* Their events may add more (a child that forked in turn). */
	for (;;) {
		pthread_mutex_lock(&d->mms_lock);
		child = d->unclaimed;
		d->unclaimed = NULL;
		pthread_mutex_unlock(&d->mms_lock);
		if (!child)
			break;
		while (child) {
			struct zmm *next = child->next_unclaimed;

			/* A child that never claimed its uffd still has the
			 * device pages it shares with its parent: they come
			 * home into it through that uffd, as the parent's did. */
			if (evict_at_shutdown(d, child))
				log_warn("a fork child of pid %d: could not bring every page back",
					 (int)child->parent_pid);
			zmm_drop_all(child);
			zmm_put(child);
			child = next;
		}
	}
}

int clients_release_device(struct zdevd *d, unsigned int dev)
{
	size_t n;
	struct zmm **list = clients_every(d, false, &n);
	int ret = 0;

	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r = migrate_evict(list[i], (int)dev, NULL);

		if (r && !ret)
			ret = r;
		zmm_put(list[i]);
	}
	free(list);
	return ret;
}
