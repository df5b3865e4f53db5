/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "preload/policy.h"
#include "preload/ranges.h"
#include "preload/shim.h"
#include "preload/state.h"
#include "preload/stats.h"
#include "proto.h"
#include "zdev.h"

static atomic_bool stats_written;

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

/* First of the child's handlers: libzdev's, which run next, may take
 * memory, and must not meet the locks the parent's fork held. */
static void at_fork_child_first(void)
{
	ranges_fork_child();
	atomic_store(&stats_written, false);
	policy_forget_in_child();
}

/*
 * The handle the parent opened speaks on the parent's connection, which
 * libzdev closed in the child: the child's policy and statistics need one
 * of the child's own, or every migration the child asks for fails and its
 * statistics are the parent's. libzdev's child handler has had zdevd pair
 * the child with its uffd, so this opens a device on the child's own
 * connection. The parent's handle is left as it is: closing it would speak
 * on a connection that is not ours.
 */
static void reopen_device_in_child(void)
{
	struct zdev *dev;

	if (!shim.dev)
		return;
	if (zdev_open(shim.env.socket[0] ? shim.env.socket : NULL, shim.env.device, &dev)) {
		shim.dev = NULL;
		return;
	}
	shim.dev = dev;
}

/* Last: the policy starts again once the child has a handle of its own. */
static void at_fork_child_last(void)
{
	reopen_device_in_child();
	policy_restart_in_child();
}

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

/* The mark the processes of one zdev-run leave in its statistics
 * directory once one of them said why its policy moves nothing (see
 * observe_only); zdev-run's summary looks for it by this name. */
#define FALLBACK_MARK "policy-none"

/* True for the first process of the program to ask: the processes zdev-run
 * runs share its statistics directory; one without it asks alone. */
static bool first_to_say(void)
{
	char path[sizeof(shim.env.stats_dir) + sizeof("/" FALLBACK_MARK)];
	int fd;

	if (!shim.env.stats_dir[0])
		return true;
	snprintf(path, sizeof(path), "%s/" FALLBACK_MARK, shim.env.stats_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno != EEXIST;
	close(fd);
	return true;
}

/*
 * Without kernel-mode faults (the process's uffd is user-mode only), a
 * system call of the program that reads or writes a page on the device
 * fails with EFAULT instead of faulting it home: a policy that moves pages
 * would change what the program does. It observes instead (policy none),
 * as a process that is no client.
 */
static void observe_only(void)
{
	const char *asked = env_policy_name(shim.env.policy);

	zdev_close(shim.dev);
	shim.dev = NULL;
	shim.env.policy = POLICY_NONE;
	if (first_to_say())
		fprintf(stderr, "zdev: ZDEV_POLICY=%s needs kernel-mode faults, which zdevd cannot "
			"give this process (its userfaultfd is user-mode only): a system call "
			"on a page on the device would fail with EFAULT; nothing moves "
			"(policy none)\n", asked);
}

static void connect_device(void)
{
	uint64_t features = 0;
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
		return;
	}
	if (shim.dev && (zdev_get_features(shim.dev, &features) ||
			 !(features & ZDEV_FEATURE_KERNEL_FAULTS)))
		observe_only();
}

__attribute__((constructor)) static void shim_init(void)
{
	const char *bad;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	shim.start_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	env_read(&shim.env, &bad);
	shim_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
	if (bad)
		fprintf(stderr, "zdev: %s: not understood, the default is used\n", bad);
	state_find_ours();
	/*
	 * Before libzdev registers its own (in connect_device): prepare
	 * handlers run in the reverse order of registration, so the ranges'
	 * lock is taken after libzdev's prepare handler has run, and child
	 * and parent handlers run in order, so it is free again before
	 * libzdev's run. libzdev's handlers may map memory (its child handler
	 * maps the fork proof page), and an interposed mmap takes that lock.
	 * Held across fork, it is never inherited locked by a thread the
	 * child does not have, nor the table half changed.
	 */
	pthread_atfork(ranges_fork_prepare, ranges_fork_parent, at_fork_child_first);
	connect_device();
	ranges_scan(shim.env.min_bytes);
	shim.ready = true;
	pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child_last);
	atexit(at_exit);
	if (shim.dev && shim.env.policy != POLICY_NONE)
		policy_start();
}
