/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "uffd_dev.h"
#include "zdevd/proof.h"
#include "zdevd/rescue.h"
#include "zmm.h"

/* The process's start time in clock ticks since boot (field 22 of stat), or 0. */
static uint64_t proc_start_time(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: count from the
	 * last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %llu", &t) != 1)
		return 0;
	return t;
}

int zmm_create(struct zdevd *d, pid_t pid, uid_t uid, int uffd, struct zmm **out)
{
	struct zmm *mm = calloc(1, sizeof(*mm));
	char path[64];
	int ret;

	if (!mm)
		return -ENOMEM;
	mm->d = d;
	atomic_init(&mm->refs, 1);
	mm->pid = pid;
	mm->uid = uid;
	mm->uffd = uffd;
	mm->pidfd = -1;
	mm->pagemap_fd = -1;
	mm->mem_fd = -1;
	mm->rescue_fd = -1;
	if (pid > 0) {
		mm->start_time = proc_start_time(pid);
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
		mm->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (mm->pagemap_fd < 0) {
			ret = -errno;
			free(mm);
			return ret;
		}
	}
	ret = rescue_table_create(mm);
	if (ret) {
		if (mm->pagemap_fd >= 0)
			close(mm->pagemap_fd);
		free(mm);
		return ret;
	}
	pthread_mutex_init(&mm->lock, NULL);
	ptable_init(&mm->pt);
	*out = mm;
	return 0;
}

void zmm_get(struct zmm *mm)
{
	atomic_fetch_add_explicit(&mm->refs, 1, memory_order_relaxed);
}

void zmm_put(struct zmm *mm)
{
	/* acq_rel: the last holder sees every other holder's changes. */
	if (atomic_fetch_sub_explicit(&mm->refs, 1, memory_order_acq_rel) != 1)
		return;
	uffd_dev_forget_all(mm);
	rescue_stores_put(mm);
	rescue_table_destroy(mm);
	ptable_destroy(&mm->pt);
	pthread_mutex_destroy(&mm->lock);
	if (mm->uffd >= 0)
		close(mm->uffd);
	if (mm->pidfd >= 0)
		close(mm->pidfd);
	if (mm->pagemap_fd >= 0)
		close(mm->pagemap_fd);
	if (mm->mem_fd >= 0)
		close(mm->mem_fd);
	free(mm);
}

void zmm_publish(struct zmm *mm)
{
	struct zdevd *d = mm->d;

	zmm_get(mm);
	pthread_mutex_lock(&d->mms_lock);
	mm->next = d->mms;
	d->mms = mm;
	d->nclients++;
	pthread_mutex_unlock(&d->mms_lock);
}

void zmm_exit(struct zmm *mm)
{
	struct zdevd *d = mm->d;
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
	/* The loop stops polling its uffd, which will never say it is gone
	 * (the loop frees the note if it has stopped). */
	zloop_watch_mm(d, mm);
	/* Its memory is gone with it: free the device pages at once, so the
	 * pools are back at their baseline without waiting for the last
	 * reference. */
	uffd_dev_forget_all(mm);
	if (listed)
		zmm_put(mm);
}

struct zmm *zmm_find(struct zdevd *d, pid_t pid)
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

struct zmm *zmm_find_live(struct zdevd *d, pid_t pid)
{
	struct zmm *mm = zmm_find(d, pid);
	uint64_t now = mm ? proc_start_time(pid) : 0;

	/* A start time we cannot read (no /proc entry yet, or no fd left)
	 * proves nothing: the mm stays. */
	if (mm && now && mm->start_time && now != mm->start_time) {
		/* A process gone, whose exit the loop has not seen yet. */
		zmm_exit(mm);
		zmm_put(mm);
		mm = NULL;
	}
	return mm;
}

int zmm_watch(struct zmm *mm)
{
	return zloop_watch_mm(mm->d, mm);
}

void zmm_add_unclaimed(struct zmm *parent, struct zmm *child)
{
	struct zdevd *d = parent->d;
	struct zmm **p;

	child->parent_pid = parent->pid;
	pthread_mutex_lock(&d->mms_lock);
	for (p = &d->unclaimed; *p; p = &(*p)->next_unclaimed)
		;
	*p = child;
	pthread_mutex_unlock(&d->mms_lock);
}

static int zmm_set_pid(struct zmm *mm, pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	mm->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mm->pagemap_fd < 0)
		return -errno;
	mm->pid = pid;
	mm->start_time = proc_start_time(pid);
	return 0;
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

bool zmm_fork_pending(struct zdevd *d, pid_t parent_pid)
{
	struct zmm *parent = zmm_find(d, parent_pid);
	bool expect_event;

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

struct zmm *zmm_claim_fork(struct zdevd *d, pid_t pid, pid_t parent_pid, uint64_t proof_addr)
{
	struct zmm **cand = NULL, *child = NULL, **p;
	size_t n = 0, cap = 0;
	bool taken = false;

	/* Several threads of the parent may fork at once, and their children
	 * say hello in any order: the proof, not the order, pairs them. Every
	 * unclaimed child of the parent is a candidate, however many never
	 * said hello. */
	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *c = d->unclaimed; c; c = c->next_unclaimed)
		cap += c->parent_pid == parent_pid;
	cand = cap ? malloc(cap * sizeof(*cand)) : NULL;
	for (struct zmm *c = d->unclaimed; c && cand && n < cap; c = c->next_unclaimed) {
		if (c->parent_pid != parent_pid)
			continue;
		zmm_get(c);
		cand[n++] = c;
	}
	pthread_mutex_unlock(&d->mms_lock);
	for (size_t i = 0; i < n && !child; i++)
		if (!proof_check(cand[i]->uffd, pid, proof_addr))
			child = cand[i];
	if (child) {
		pthread_mutex_lock(&d->mms_lock);
		for (p = &d->unclaimed; *p; p = &(*p)->next_unclaimed) {
			if (*p == child) {
				*p = child->next_unclaimed;
				taken = true;
				break;
			}
		}
		pthread_mutex_unlock(&d->mms_lock);
	}
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
	zmm_publish(child);
	if (zmm_watch(child))
		zmm_exit(child);
	return child;	/* the list's reference is now the caller's */
}

void zmm_drop_unclaimed(struct zdevd *d)
{
	struct zmm *child;

	pthread_mutex_lock(&d->mms_lock);
	child = d->unclaimed;
	d->unclaimed = NULL;
	pthread_mutex_unlock(&d->mms_lock);
	while (child) {
		struct zmm *next = child->next_unclaimed;

		uffd_dev_forget_all(child);
		zmm_put(child);
		child = next;
	}
}

void zmm_wait_events(struct zmm *mm)
{
	/* acquire: pairs with the loop's release, so the handled events'
	 * changes (made under mm->lock anyway) are ours to see. */
	while (atomic_load_explicit(&mm->reading_events, memory_order_acquire))
		sched_yield();
}
