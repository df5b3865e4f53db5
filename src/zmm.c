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
#include "store.h"
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

int zmm_create(struct devset *ds, pid_t pid, uid_t uid, int uffd, struct zmm **out)
{
	struct zmm *mm = calloc(1, sizeof(*mm));
	char path[64];
	int ret;

	if (!mm)
		return -ENOMEM;
	mm->ds = ds;
	atomic_init(&mm->refs, 1);
	mm->pid = pid;
	mm->uid = uid;
	mm->uffd = uffd;
	mm->pidfd = -1;
	mm->pagemap_fd = -1;
	mm->mem_fd = -1;
	mm->stores.table_fd = -1;
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
	ret = store_table_create(&mm->stores, ds);
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
	zmm_drop_all(mm);
	store_put_all(&mm->stores);
	store_table_destroy(&mm->stores);
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

int zmm_set_pid(struct zmm *mm, pid_t pid)
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

bool zmm_pid_reused(struct zmm *mm)
{
	uint64_t now = proc_start_time(mm->pid);

	/* A start time we cannot read (no /proc entry yet, or no fd left)
	 * proves nothing. */
	return now && mm->start_time && now != mm->start_time;
}

void zmm_wait_events(struct zmm *mm)
{
	/* acquire: pairs with the loop's release, so the handled events'
	 * changes (made under mm->lock anyway) are ours to see. */
	while (atomic_load_explicit(&mm->reading_events, memory_order_acquire))
		sched_yield();
}
