/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "preload/policy.h"
#include "preload/ranges.h"
#include "preload/shim.h"
#include "preload/stats.h"
#include "proto.h"
#include "zdev.h"

struct shim shim = { .as_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP };

/* The text of libzdev and of the shim itself. */
static struct {
	uintptr_t start, end;
} ours[2];
static atomic_bool stats_written;

static int find_ours(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = info->dlpi_name;
	unsigned int *n = arg;

	(void)size;
	if (*n >= 2 || !name || (!strstr(name, "libzdev.so") && !strstr(name, "libzdev-preload.so")))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD)
			continue;
		/* Our data, .bss past the file's end included, is never the
		 * program's to move. */
		if (ph->p_flags & PF_W)
			ranges_exclude(start & ~(PG_SIZE - 1), pg_up(start + ph->p_memsz));
		if ((ph->p_flags & PF_X) && ours[*n].end <= ours[*n].start) {
			ours[*n].start = start;
			ours[*n].end = start + ph->p_memsz;
		}
	}
	(*n)++;
	return 0;
}

bool shim_is_ours(const void *ra)
{
	const uintptr_t a = (uintptr_t)ra;

	for (unsigned int i = 0; i < 2; i++)
		if (a >= ours[i].start && a < ours[i].end)
			return true;
	return false;
}

bool shim_as_begin(void)
{
	if (!atomic_load_explicit(&shim.moving, memory_order_relaxed))
		return false;
	pthread_rwlock_rdlock(&shim.as_lock);
	return true;
}

void shim_as_end(bool locked)
{
	if (locked)
		pthread_rwlock_unlock(&shim.as_lock);
}

/* Without a device: says so once, or ends the program if it must have one. */
static void no_device(const char *path, int err)
{
	if (shim.env.require) {
		fprintf(stderr, "zdev: ZDEV_REQUIRE=1, but zdevd at %s cannot be reached: %s\n", path,
			strerror(err));
		_exit(127);
	}
	fprintf(stderr, "zdev: no zdevd at %s (%s): running without a device\n", path,
		strerror(err));
}

/* Under POLICY_NONE nothing moves, so the shim only checks that zdevd
 * answers: a connection costs a few microseconds, a client's set-up far more. */
static int probe(const char *path)
{
	int fd = zmsg_connect(path);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static void at_fork_prepare(void)
{
	policy_pause();
}

static void at_fork_parent(void)
{
	policy_resume();
}

static void at_fork_child(void)
{
	atomic_store(&stats_written, false);
	policy_after_fork_child();
}

/* The program may close stderr before our exit handler runs (gnulib's
 * close_stdout does): the stats go to a copy taken at start-up. */
int shim_stderr = -1;

static void at_exit(void)
{
	policy_stop();
	shim_flush_stats();
}

void shim_flush_stats(void)
{
	if (atomic_exchange(&stats_written, true))
		return;
	stats_write(&shim.env, shim.dev);
}

static void connect_device(void)
{
	char path[108];
	int ret;

	if (shim.env.socket[0])
		snprintf(path, sizeof(path), "%s", shim.env.socket);
	else if (proto_default_socket(path, sizeof(path)))
		path[0] = '\0';
	if (shim.env.policy == POLICY_NONE)
		ret = probe(path);
	else
		ret = zdev_open(shim.env.socket[0] ? shim.env.socket : NULL, shim.env.device,
				&shim.dev);
	if (ret) {
		shim.dev = NULL;
		no_device(path, -ret);
	}
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *bad;
	unsigned int n = 0;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	shim.start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	env_read(&shim.env, &bad);
	shim_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
	if (bad)
		fprintf(stderr, "zdev: %s: not understood, the default is used\n", bad);
	dl_iterate_phdr(find_ours, &n);
	connect_device();
	ranges_scan(shim.env.min_bytes);
	shim.ready = true;
	pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child);
	atexit(at_exit);
	if (shim.dev && shim.env.policy != POLICY_NONE)
		policy_start();
}
