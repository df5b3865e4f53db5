/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "uffd_dev.h"
#include "zmm.h"

int zmm_create(struct zdevd *d, pid_t pid, uid_t uid, int uffd, struct zmm **out)
{
	struct zmm *mm = calloc(1, sizeof(*mm));
	char path[64];

	if (!mm)
		return -ENOMEM;
	mm->d = d;
	atomic_init(&mm->refs, 1);
	mm->pid = pid;
	mm->uid = uid;
	mm->uffd = uffd;
	mm->pidfd = -1;
	mm->pagemap_fd = -1;
	if (pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
		mm->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (mm->pagemap_fd < 0) {
			int ret = -errno;

			free(mm);
			return ret;
		}
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
	/* Children nobody claimed: their processes never said who they are,
	 * and without a pid there is no way to see them exit. */
	while (mm->unclaimed) {
		struct zmm *child = mm->unclaimed;

		mm->unclaimed = child->next_unclaimed;
		zmm_put(child);
	}
	uffd_dev_forget_all(mm);
	ptable_destroy(&mm->pt);
	pthread_mutex_destroy(&mm->lock);
	if (mm->uffd >= 0)
		close(mm->uffd);
	if (mm->pidfd >= 0)
		close(mm->pidfd);
	if (mm->pagemap_fd >= 0)
		close(mm->pagemap_fd);
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
	zdev_info("pid %d gone", (int)mm->pid);
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

struct zdev_device *zmm_device(struct zmm *mm, unsigned int dev)
{
	return dev < mm->d->cfg.ndevices ? &mm->d->dev[dev] : NULL;
}

int zmm_watch(struct zmm *mm)
{
	return zloop_watch_mm(mm->d, mm);
}

void zmm_add_unclaimed(struct zmm *parent, struct zmm *child)
{
	struct zmm **p;

	pthread_mutex_lock(&parent->lock);
	for (p = &parent->unclaimed; *p; p = &(*p)->next_unclaimed)
		;
	*p = child;	/* the list holds the child's first reference */
	pthread_mutex_unlock(&parent->lock);
}

static int zmm_set_pid(struct zmm *mm, pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	mm->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mm->pagemap_fd < 0)
		return -errno;
	mm->pid = pid;
	return 0;
}

int zmm_claim_child(struct zmm *parent, pid_t pid)
{
	struct zmm *child, *known = zmm_find(parent->d, pid);
	int ret;

	if (known) {		/* the child was quicker */
		zmm_put(known);
		return 0;
	}
	pthread_mutex_lock(&parent->lock);
	/* Forks are claimed in the order their events came: a process that
	 * forks from one thread at a time pairs them right. */
	child = parent->unclaimed;
	if (child)
		parent->unclaimed = child->next_unclaimed;
	pthread_mutex_unlock(&parent->lock);
	if (!child)
		return 0;	/* nothing was registered: no fork event, nothing to track */
	ret = zmm_set_pid(child, pid);
	if (!ret) {
		zmm_publish(child);
		ret = zmm_watch(child);
	}
	zmm_put(child);
	return ret;
}

static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 1, " %*c %d", &ppid);
	fclose(f);
	return ppid;
}

struct zmm *zmm_claim_fork(struct zdevd *d, pid_t pid)
{
	struct zmm *parent = zmm_find(d, parent_of(pid)), *known = NULL;

	if (!parent)
		return NULL;
	/* The fork event was read before the child could run, but the loop
	 * may still be handling it: give it a moment. */
	for (int i = 0; i < 200; i++) {
		bool pending;

		zmm_claim_child(parent, pid);
		known = zmm_find(d, pid);
		if (known)
			break;
		/* Without registered memory there is no fork event to wait for. */
		if (!atomic_load(&parent->registered))
			break;
		pthread_mutex_lock(&parent->lock);
		pending = parent->unclaimed != NULL;
		pthread_mutex_unlock(&parent->lock);
		if (!pending)
			usleep(500);
	}
	zmm_put(parent);
	return known;
}
