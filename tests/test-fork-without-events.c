/* SPDX-License-Identifier: MIT */
/*
 * A zdevd without CAP_SYS_PTRACE, as an ordinary user's is, gets no fork
 * events: a fork clears the registration of the child's copy of every
 * mapping, so a page left on the device would read as zeros in the child.
 * libzdev brings every device page home before the fork instead. These
 * cases check every byte in parent and child, also while other threads keep
 * migrating as the process forks.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "page.h"
#include "uffd_probe.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define NPAGES 2048		/* 8 MiB: four 2 MiB windows */
#define NWORDS (NPAGES * PG_SIZE / 8)
#define MIGRATORS 2
#define FORKS 16
#define KILLED_FORKS 8

static struct zdevd_instance zd;

static uint64_t word(size_t i, uint64_t salt)
{
	return salt ^ (i * 0x9e3779b97f4a7c15ull);
}

static uint64_t *map_filled(uint64_t salt)
{
	uint64_t *buf = mmap(NULL, NPAGES * PG_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(buf, MAP_FAILED);
	for (size_t i = 0; i < NWORDS; i++)
		buf[i] = word(i, salt);
	return buf;
}

/* The first word that differs, or -1. */
static long first_bad_word(const volatile uint64_t *buf, uint64_t salt)
{
	for (size_t i = 0; i < NWORDS; i++)
		if (buf[i] != word(i, salt))
			return (long)i;
	return -1;
}

static uint64_t device_pages(struct zdev *d)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	return st.device_pages;
}

/*
 * The child: its copy holds the parent's bytes, and is its own to change
 * and to move to a device as a client of its own. Exit status 0, or which
 * step failed.
 */
static int child_checks(uint64_t *buf, uint64_t salt)
{
	struct zdev_result res = { 0 };
	struct zdev *d;

	if (first_bad_word(buf, salt) >= 0)
		return 1;
	for (size_t i = 0; i < NWORDS; i += 2)
		buf[i] = word(i, ~salt);
	if (zdev_open(NULL, 0, &d))
		return 2;
	if (zdev_migrate_to_device(d, buf, NPAGES, &res) || res.cpages != NPAGES)
		return 3;
	for (size_t i = 0; i < NWORDS; i++)
		if (buf[i] != word(i, i % 2 ? salt : ~salt))
			return 4;
	return zdev_close(d) ? 5 : 0;
}

static void wait_child_ok(pid_t pid, const char *what)
{
	int status;

	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: child status %#x", what,
		      status);
}

START_TEST(features_say_no_fork_events)
{
	struct uffd_caps caps;
	uint64_t features = ~0ull;
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	ck_assert_int_eq(zdev_get_features(d, &features), 0);
	ck_assert_msg(!(features & ZDEV_FEATURE_FORK_SHARED), "features %#llx",
		      (unsigned long long)features);
	/* Kernel-mode faults come with /dev/userfaultfd or the privilege to
	 * make such a uffd; neither depends on CAP_SYS_PTRACE alone here. */
	ck_assert_int_eq(uffd_probe(&caps), 0);
	ck_assert_int_eq(!!(features & ZDEV_FEATURE_KERNEL_FAULTS),
			 caps.devnode || caps.syscall_kernel);
	ck_assert_int_eq(zdev_get_features(NULL, &features), -EINVAL);
	ck_assert_int_eq(zdev_get_features(d, NULL), -EINVAL);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

START_TEST(fork_brings_device_pages_home)
{
	const uint64_t salt = 0x5a5a000000000000ull;
	struct zdev_stats before = { .size = sizeof(before) }, after = { .size = sizeof(after) };
	struct zdev_result res = { 0 };
	uint64_t *buf = map_filled(salt);
	struct zdev *d;
	pid_t pid;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, NPAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, NPAGES);
	ck_assert_int_eq(zdev_get_stats(d, &before), 0);
	ck_assert_uint_eq(before.device_pages, NPAGES);
	pid = fork();
	if (pid == 0)
		_exit(child_checks(buf, salt));
	ck_assert_int_eq(zdev_get_stats(d, &after), 0);
	ck_assert_uint_eq(after.device_pages, 0);
	ck_assert_uint_eq(after.pages_to_system - before.pages_to_system, NPAGES);
	/* Brought home by the fork, not by a CPU fault. */
	ck_assert_uint_eq(after.cpu_faults, before.cpu_faults);
	wait_child_ok(pid, "fork");
	ck_assert_int_eq(first_bad_word(buf, salt), -1);
	/* The parent goes on using the device after the fork. */
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, NPAGES, &res), 0);
	ck_assert_uint_eq(device_pages(d), NPAGES);
	ck_assert_int_eq(first_bad_word(buf, salt), -1);
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(buf, NPAGES * PG_SIZE);
}
END_TEST

struct migrator {
	pthread_t thread;
	struct zdev *dev;
	uint64_t *buf;
	unsigned int seed;
	atomic_bool *stop;
	unsigned long moved;
};

/* Moves random runs of the buffer to the device and back until stopped;
 * a run refused while the process forks (-ENOENT) is part of the game. */
static void *migrator_main(void *arg)
{
	struct migrator *m = arg;
	struct zdev_result res;

	while (!atomic_load(m->stop)) {
		const size_t n = 1 + rand_r(&m->seed) % 512;
		const size_t first = rand_r(&m->seed) % (NPAGES - n + 1);
		int ret;

		if (rand_r(&m->seed) % 3)
			ret = zdev_migrate_to_device(m->dev, m->buf + first * (PG_SIZE / 8), n,
						     &res);
		else
			ret = zdev_migrate_to_system(m->dev, m->buf + first * (PG_SIZE / 8), n,
						     &res);
		if (ret && ret != -ENOENT)
			return (void *)(intptr_t)ret;
		m->moved += !ret;
	}
	return NULL;
}

START_TEST(threads_migrate_while_forking)
{
	const uint64_t salt = 0xa5a5000000000000ull;
	struct migrator mig[MIGRATORS];
	atomic_bool stop = false;
	uint64_t *buf = map_filled(salt);
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	for (unsigned int t = 0; t < MIGRATORS; t++) {
		mig[t] = (struct migrator){ .dev = d, .buf = buf, .seed = 17 + t, .stop = &stop };
		ck_assert_int_eq(pthread_create(&mig[t].thread, NULL, migrator_main, &mig[t]), 0);
	}
	for (int k = 0; k < FORKS; k++) {
		pid_t pid;

		usleep(2000);
		pid = fork();
		if (pid == 0)
			_exit(first_bad_word(buf, salt) >= 0);
		wait_child_ok(pid, "fork under migrations");
	}
	atomic_store(&stop, true);
	for (unsigned int t = 0; t < MIGRATORS; t++) {
		void *ret;

		pthread_join(mig[t].thread, &ret);
		ck_assert_msg(!ret, "migrator %u: %d", t, (int)(intptr_t)ret);
		ck_assert_uint_gt(mig[t].moved, 0);
	}
	ck_assert_int_eq(first_bad_word(buf, salt), -1);
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(buf, NPAGES * PG_SIZE);
}
END_TEST

/*
 * zdevd dies just before a fork: the fork's request to bring the pages home
 * finds the connection broken, and the pages come home through libzdev's
 * rescue instead, which the fork must wait for, or the child's copy of the
 * pages only the device held would be zeros. A zdevd of the case's own,
 * killed and started again each round.
 */
START_TEST(fork_as_zdevd_dies)
{
	struct zdevd_instance own;

	for (unsigned int round = 0; round < KILLED_FORKS; round++) {
		const uint64_t salt = 0x3c3c000000000000ull | round;
		struct zdev_result res = { 0 };
		uint64_t *buf = map_filled(salt);
		struct zdev *d;
		pid_t pid;

		if (round)
			zdevd_restart(&own, NULL);
		else
			zdevd_start_without_ptrace(&own, NULL);
		ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
		ck_assert_int_eq(zdev_migrate_to_device(d, buf, NPAGES, &res), 0);
		ck_assert_uint_eq(res.cpages, NPAGES);
		kill(own.pid, SIGKILL);
		pid = fork();
		if (pid == 0)
			_exit(first_bad_word(buf, salt) >= 0);
		ck_assert_int_eq(waitpid(own.pid, NULL, 0), own.pid);
		wait_child_ok(pid, "fork as zdevd dies");
		ck_assert_int_eq(first_bad_word(buf, salt), -1);
		zdev_close(d);
		munmap(buf, NPAGES * PG_SIZE);
	}
	unlink(own.socket_path);
	rmdir(own.dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fork-without-events");
	const char *why = zdevd_unavailable();
	int failed, stopped;

	check_add_case(s, "features_say_no_fork_events", features_say_no_fork_events, NULL, NULL, 0);
	check_add_case(s, "fork_brings_device_pages_home", fork_brings_device_pages_home, NULL,
		       NULL, 60);
	check_add_case(s, "threads_migrate_while_forking", threads_migrate_while_forking, NULL,
		       NULL, 120);
	check_add_case(s, "fork_as_zdevd_dies", fork_as_zdevd_dies, NULL, NULL, 120);
	if (why) {
		srunner_free(srunner_create(s));
		return check_skip_all("%s", why);
	}
	zdevd_start_without_ptrace(&zd, NULL);
	failed = check_run(s);
	stopped = zdevd_stop(&zd);
	return failed || stopped ? EXIT_FAILURE : EXIT_SUCCESS;
}
