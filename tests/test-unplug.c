/* SPDX-License-Identifier: MIT */
/*
 * Device unplug and plug while zdevd runs (zdevctl unplug / plug): every
 * page on the device comes home to its process with its data, exclusive
 * holds on it are revoked, requests naming it fail with -ENODEV until a
 * plug brings a fresh, empty device back, and the other device serves on.
 * The stress case unplugs and plugs a device in a loop under processes
 * whose threads migrate, read, write, snapshot and hold exclusive pages on
 * both devices, then checks every byte. No check is on how long anything
 * took.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define STAYS 0		/* the device that is never unplugged */
#define GOES 1		/* the device the tests unplug */
#define NPAGES 64

/* The stress case */
#define STRESS_PROCS 3
#define STRESS_THREADS 2
#define STRESS_PAGES 32		/* each thread's own pages */
#define STRESS_CYCLES 40	/* unplugs and plugs */

static struct zdevd_instance zd;

static void start_zdevd(void)
{
	static const char *const args[] = { "--devices", "2", "--memory", "64M", NULL };

	zdevd_start(&zd, args);
}

static void start_zdevd_warm(void)
{
	static const char *const args[] = { "--devices", "2", "--memory", "64M", "--warm", "8M",
					    NULL };

	zdevd_start(&zd, args);
}

static void start_zdevd_coherent(void)
{
	static const char *const args[] = { "--devices", "2", "--memory", "64M", "--memory-type",
					    "private,coherent", NULL };

	zdevd_start(&zd, args);
}

static void kill_zdevd(void)
{
	if (zd.pid > 0) {
		kill(zd.pid, SIGKILL);
		waitpid(zd.pid, NULL, 0);
		zd.pid = 0;
	}
}

static struct zdevd_pool_status status_of(unsigned int device)
{
	struct zdevd_pool_status st;

	ck_assert_int_eq(zdevd_pool_status(&zd, device, &st), 0);
	return st;
}

/* A word that says which page of which owner it is, and which round wrote
 * it: a page that came home from the wrong place, or not at all, shows. */
static uint64_t word(uint64_t owner, uint64_t page, uint64_t round, size_t i)
{
	return owner << 52 | page << 36 | round << 12 | i;
}

static void fill_page(uint8_t *p, uint64_t owner, uint64_t page, uint64_t round)
{
	uint64_t *w = (uint64_t *)p;

	for (size_t i = 0; i < PG_SIZE / 8; i++)
		w[i] = word(owner, page, round, i);
}

/* The first word of the page that is wrong, or -1. */
static long page_wrong_at(const uint8_t *p, uint64_t owner, uint64_t page, uint64_t round)
{
	const volatile uint64_t *w = (const volatile uint64_t *)p;

	for (size_t i = 0; i < PG_SIZE / 8; i++)
		if (w[i] != word(owner, page, round, i))
			return (long)i;
	return -1;
}

static uint8_t *map_pages(size_t n)
{
	void *p = mmap(NULL, n * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static void check_pages(const uint8_t *buf, size_t n, uint64_t owner, uint64_t round)
{
	for (size_t i = 0; i < n; i++) {
		long at = page_wrong_at(buf + i * PG_SIZE, owner, i, round);

		ck_assert_msg(at < 0, "page %zu: word %ld is %#llx", i, at,
			      (unsigned long long)((const uint64_t *)(buf + i * PG_SIZE))[at]);
	}
}

static uint64_t device_pages(struct zdev *dev)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(dev, &st), 0);
	return st.device_pages;
}

/*
 * The memory this process's stores of device dev (its fds named
 * memfd:zdev-store-devN, kept for a rescue) hold, in bytes; *n: how many.
 */
static unsigned long long store_bytes(unsigned int dev, unsigned int *n)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned long long bytes = 0;
	struct dirent *de;
	char want[32];

	ck_assert_ptr_nonnull(d);
	snprintf(want, sizeof(want), "/memfd:zdev-store-dev%u ", dev);
	*n = 0;
	while ((de = readdir(d))) {
		char path[300], target[256];
		struct stat st;
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, want, strlen(want)) || stat(path, &st))
			continue;
		(*n)++;
		bytes += (unsigned long long)st.st_blocks * 512;
	}
	closedir(d);
	return bytes;
}

/* ---- one process, step by step ---- */

START_TEST(unplug_brings_pages_home)
{
	struct zdev *stays, *goes;
	struct zdev_result res;
	unsigned long long moved = 0;
	unsigned int nstores;
	uint8_t *a = map_pages(NPAGES), *b = map_pages(NPAGES);

	ck_assert_int_eq(zdev_open(NULL, STAYS, &stays), 0);
	ck_assert_int_eq(zdev_open(NULL, GOES, &goes), 0);
	for (size_t i = 0; i < NPAGES; i++) {
		fill_page(a + i * PG_SIZE, 1, i, 0);
		fill_page(b + i * PG_SIZE, 2, i, 0);
	}
	ck_assert_int_eq(zdev_migrate_to_device(goes, a, NPAGES, &res), 0);
	ck_assert_int_eq(zdev_migrate_to_device(stays, b, NPAGES, &res), 0);
	ck_assert_uint_eq(status_of(GOES).used, NPAGES);
	ck_assert_uint_ge(store_bytes(GOES, &nstores), NPAGES * PG_SIZE);
	ck_assert_uint_eq(nstores, 1);

	ck_assert_int_eq(zdevd_unplug(&zd, GOES, &moved), 0);
	ck_assert_uint_eq(moved, NPAGES);
	/* The device's memory is gone with it, the copy the process keeps for
	 * a rescue included: its data is home. */
	ck_assert_uint_eq(store_bytes(GOES, &nstores), 0);
	ck_assert_int_eq(status_of(GOES).unplugged, 1);
	ck_assert_uint_eq(status_of(GOES).used, 0);
	ck_assert_uint_eq(status_of(GOES).total, 0);
	/* Home, in place: the snapshot of the other device sees system pages,
	 * and the CPU reads them without a fault of zdevd's. */
	check_pages(a, NPAGES, 1, 0);

	/* Every request naming the device fails until the plug. */
	ck_assert_int_eq(zdev_migrate_to_device(goes, a, NPAGES, &res), -ENODEV);
	ck_assert_int_eq(zdev_migrate_to_system(goes, a, NPAGES, &res), -ENODEV);
	ck_assert_int_eq(zdev_read(goes, a, 1, b, &res), -ENODEV);
	ck_assert_int_eq(zdev_make_exclusive(goes, a, 1, &res), -ENODEV);
	ck_assert_int_eq(zdev_release(goes), -ENODEV);
	ck_assert_int_eq(zdevd_unplug(&zd, GOES, NULL), -EALREADY);

	/* The other device serves on, its pages untouched. */
	ck_assert_uint_eq(device_pages(stays), NPAGES);
	ck_assert_uint_eq(status_of(STAYS).used, NPAGES);
	ck_assert_int_eq(zdev_migrate_to_system(stays, b, NPAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, NPAGES);
	check_pages(b, NPAGES, 2, 0);

	/* Back, fresh and empty, with the same memory: the handle works again. */
	ck_assert_int_eq(zdevd_plug(&zd, GOES), 0);
	ck_assert_int_eq(zdevd_plug(&zd, GOES), -EALREADY);
	ck_assert_int_eq(status_of(GOES).unplugged, 0);
	ck_assert_uint_eq(status_of(GOES).used, 0);
	ck_assert_uint_eq(status_of(GOES).limit, 64ull << 20 >> PG_SHIFT);
	ck_assert_uint_eq(device_pages(goes), 0);
	ck_assert_int_eq(zdev_migrate_to_device(goes, a, NPAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, NPAGES);
	ck_assert_uint_eq(status_of(GOES).used, NPAGES);
	check_pages(a, NPAGES, 1, 0);
	ck_assert_uint_eq(status_of(GOES).used, 0);

	ck_assert_int_eq(zdev_close(goes), 0);
	ck_assert_int_eq(zdev_close(stays), 0);
	munmap(a, NPAGES * PG_SIZE);
	munmap(b, NPAGES * PG_SIZE);
}
END_TEST

START_TEST(unplug_of_an_unknown_device)
{
	ck_assert_int_eq(zdevd_unplug(&zd, 2, NULL), -ENODEV);
	ck_assert_int_eq(zdevd_plug(&zd, 7), -ENODEV);
	ck_assert_int_eq(zdevd_unplug(&zd, 8, NULL), -ENODEV);
}
END_TEST

START_TEST(unplug_revokes_exclusive_holds)
{
	struct zdev *stays, *goes;
	struct zdev_result res;
	uint8_t *a = map_pages(NPAGES), *b = map_pages(NPAGES);

	ck_assert_int_eq(zdev_open(NULL, STAYS, &stays), 0);
	ck_assert_int_eq(zdev_open(NULL, GOES, &goes), 0);
	for (size_t i = 0; i < NPAGES; i++) {
		fill_page(a + i * PG_SIZE, 3, i, 0);
		fill_page(b + i * PG_SIZE, 4, i, 0);
	}
	ck_assert_int_eq(zdev_make_exclusive(goes, a, NPAGES, &res), 0);
	ck_assert_int_eq(zdev_make_exclusive(stays, b, NPAGES, &res), 0);
	ck_assert_int_eq(zdev_check_exclusive(goes, a, NPAGES), -EPERM);

	ck_assert_int_eq(zdevd_unplug(&zd, GOES, NULL), 0);
	ck_assert_int_eq(zdev_check_exclusive(goes, a, NPAGES), -ENODEV);
	ck_assert_int_eq(zdevd_plug(&zd, GOES), 0);
	/* The new device holds none of them; the other keeps its own. */
	ck_assert_int_eq(zdev_check_exclusive(goes, a, NPAGES), 0);
	ck_assert_int_eq(zdev_check_exclusive(stays, b, NPAGES), -EPERM);
	/* The CPU gets every page back at its touch, with its data. */
	check_pages(a, NPAGES, 3, 0);
	check_pages(b, NPAGES, 4, 0);
	ck_assert_int_eq(zdev_check_exclusive(stays, b, NPAGES), 0);

	ck_assert_int_eq(zdev_close(goes), 0);
	ck_assert_int_eq(zdev_close(stays), 0);
	munmap(a, NPAGES * PG_SIZE);
	munmap(b, NPAGES * PG_SIZE);
}
END_TEST

START_TEST(close_while_unplugged)
{
	struct zdev *goes, *again;
	struct zdev_result res;
	uint8_t *a = map_pages(NPAGES);

	ck_assert_int_eq(zdev_open(NULL, GOES, &goes), 0);
	for (size_t i = 0; i < NPAGES; i++)
		fill_page(a + i * PG_SIZE, 5, i, 0);
	ck_assert_int_eq(zdev_migrate_to_device(goes, a, NPAGES, &res), 0);
	ck_assert_int_eq(zdevd_unplug(&zd, GOES, NULL), 0);
	/* A handle can always be closed; a new one needs the device. */
	ck_assert_int_eq(zdev_close(goes), 0);
	ck_assert_int_eq(zdev_open(NULL, GOES, &again), -ENODEV);
	check_pages(a, NPAGES, 5, 0);
	ck_assert_int_eq(zdevd_plug(&zd, GOES), 0);
	ck_assert_int_eq(zdev_open(NULL, GOES, &again), 0);
	ck_assert_int_eq(zdev_close(again), 0);
	munmap(a, NPAGES * PG_SIZE);
	/* An unplugged device does not keep zdevd from stopping cleanly. */
	ck_assert_int_eq(zdevd_unplug(&zd, GOES, NULL), 0);
	ck_assert_int_eq(zdevd_stop(&zd), 0);
	zd.pid = 0;
}
END_TEST

START_TEST(plug_warms_the_new_device)
{
	const unsigned long long warm = 8ull << 20 >> PG_SHIFT;

	/* Only a hang waits two minutes for the warm thread. */
	ck_assert_int_ge(zdevd_wait_warm(&zd, GOES, warm, 120000), 0);
	ck_assert_int_eq(zdevd_unplug(&zd, GOES, NULL), 0);
	ck_assert_uint_eq(status_of(GOES).warm, 0);
	ck_assert_int_eq(zdevd_plug(&zd, GOES), 0);
	ck_assert_int_ge(zdevd_wait_warm(&zd, GOES, warm, 120000), 0);
	ck_assert_uint_eq(status_of(GOES).warm, warm);
	ck_assert_uint_eq(status_of(GOES).used, 0);
}
END_TEST

START_TEST(unplug_of_a_coherent_device)
{
	struct zdev *goes;
	struct zdev_result res;
	unsigned long long moved = 0;
	unsigned int type = 0;
	uint8_t *a = map_pages(NPAGES);

	ck_assert_int_eq(zdev_open(NULL, GOES, &goes), 0);
	ck_assert_int_eq(zdev_get_memory_type(goes, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_COHERENT);
	for (size_t i = 0; i < NPAGES; i++)
		fill_page(a + i * PG_SIZE, 6, i, 0);
	ck_assert_int_eq(zdev_migrate_to_device(goes, a, NPAGES, &res), 0);
	ck_assert_uint_eq(status_of(GOES).used, NPAGES);
	ck_assert_int_eq(zdevd_unplug(&zd, GOES, &moved), 0);
	/* The data was in place all along: the device only lets go of it. */
	ck_assert_uint_eq(moved, NPAGES);
	ck_assert_uint_eq(status_of(GOES).used, 0);
	check_pages(a, NPAGES, 6, 0);
	ck_assert_int_eq(zdevd_plug(&zd, GOES), 0);
	ck_assert_int_eq(zdev_migrate_to_device(goes, a, NPAGES, &res), 0);
	ck_assert_uint_eq(device_pages(goes), NPAGES);
	ck_assert_int_eq(zdev_close(goes), 0);
	ck_assert_uint_eq(status_of(GOES).used, 0);
	check_pages(a, NPAGES, 6, 0);
	munmap(a, NPAGES * PG_SIZE);
}
END_TEST

/* ---- the stress case ---- */

struct worker {
	struct zdev *dev[2];
	uint8_t *mem;		/* STRESS_PAGES of its own */
	uint64_t owner;
	uint64_t round;		/* what its pages hold */
	const atomic_bool *stop;
	char failure[160];
};

static bool expected(int ret, int ok1, int ok2)
{
	return ret == 0 || ret == -ENODEV || ret == ok1 || ret == ok2;
}

#define STEP(w, call, ok1, ok2)                                                        \
	do {                                                                           \
		int ret_ = (call);                                                     \
		if (!expected(ret_, ok1, ok2)) {                                       \
			snprintf((w)->failure, sizeof((w)->failure), "%s: %s (round %llu)", \
				 #call, strerror(-ret_), (unsigned long long)(w)->round); \
			return false;                                                  \
		}                                                                      \
	} while (0)

/* Every page of the worker holds its round, read by the CPU. */
static bool cpu_check(struct worker *w)
{
	for (size_t i = 0; i < STRESS_PAGES; i++) {
		long at = page_wrong_at(w->mem + i * PG_SIZE, w->owner, i, w->round);

		if (at >= 0) {
			snprintf(w->failure, sizeof(w->failure),
				 "owner %llu page %zu word %ld wrong in round %llu",
				 (unsigned long long)w->owner, i, at, (unsigned long long)w->round);
			return false;
		}
	}
	return true;
}

/* The device reads the pages into buf: each that it read holds the round. */
static bool device_check(struct worker *w, struct zdev *dev, uint8_t *buf)
{
	struct zdev_result res = { 0 };
	int ret = zdev_read(dev, w->mem, STRESS_PAGES, buf, &res);

	if (ret == -ENODEV)
		return true;
	if (ret) {
		snprintf(w->failure, sizeof(w->failure), "zdev_read: %s", strerror(-ret));
		return false;
	}
	for (size_t i = 0; i < STRESS_PAGES; i++) {
		long at = page_wrong_at(buf + i * PG_SIZE, w->owner, i, w->round);

		if (at >= 0) {
			snprintf(w->failure, sizeof(w->failure),
				 "device read: owner %llu page %zu word %ld wrong in round %llu",
				 (unsigned long long)w->owner, i, at, (unsigned long long)w->round);
			return false;
		}
	}
	return true;
}

/* One round: new data by the CPU or by the device, to a device and maybe
 * back, a snapshot, an exclusive hold, a device read, a CPU check. Any of it
 * may meet the unplugged device. */
static bool stress_round(struct worker *w, uint8_t *buf, uint8_t *prot)
{
	struct zdev *dev = w->dev[w->round % 2], *other = w->dev[(w->round + 1) % 2];
	struct zdev_result res;

	w->round++;
	for (size_t i = 0; i < STRESS_PAGES; i++)
		fill_page(buf + i * PG_SIZE, w->owner, i, w->round);
	if (w->round % 3 == 0) {
		/* Written by the device: if it is gone, by the CPU. */
		int ret = zdev_write(dev, w->mem, STRESS_PAGES, buf, &res);

		if (ret == -ENODEV)
			memcpy(w->mem, buf, STRESS_PAGES * PG_SIZE);
		else
			STEP(w, ret, 0, 0);
	} else {
		memcpy(w->mem, buf, STRESS_PAGES * PG_SIZE);
	}
	/* -ENOENT: some pages are the other device's or busy. */
	STEP(w, zdev_migrate_to_device(dev, w->mem, STRESS_PAGES, &res), -ENOENT, -ENOMEM);
	STEP(w, zdev_snapshot(dev, w->mem, STRESS_PAGES, prot, &res), 0, 0);
	if (!device_check(w, other, buf))
		return false;
	STEP(w, zdev_make_exclusive(dev, w->mem, STRESS_PAGES / 2, &res), 0, 0);
	if (!device_check(w, dev, buf))
		return false;
	if (w->round % 4 == 0)
		STEP(w, zdev_migrate_to_system(dev, w->mem, STRESS_PAGES, &res), 0, 0);
	return cpu_check(w);
}

static void *stress_thread(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf = malloc(STRESS_PAGES * PG_SIZE), *prot = malloc(STRESS_PAGES);

	if (!buf || !prot) {
		snprintf(w->failure, sizeof(w->failure), "out of memory");
	} else {
		while (!atomic_load(w->stop))
			if (!stress_round(w, buf, prot))
				break;
	}
	free(buf);
	free(prot);
	return NULL;
}

/* A client process: its threads run rounds until the parent says stop
 * (a byte on the pipe), then check every byte. Exit status 0 if all held. */
static int stress_client(int procno, int stop_fd, int ready_fd)
{
	struct worker w[STRESS_THREADS];
	pthread_t t[STRESS_THREADS];
	atomic_bool stop = false;
	struct zdev *dev[2];
	int failed = 0;
	char c;

	if (zdev_open(NULL, STAYS, &dev[0]) || zdev_open(NULL, GOES, &dev[1]))
		return 10;
	for (int i = 0; i < STRESS_THREADS; i++) {
		w[i] = (struct worker){ .dev = { dev[0], dev[1] }, .owner = (uint64_t)procno * 16 + i,
					.stop = &stop };
		w[i].mem = mmap(NULL, STRESS_PAGES * PG_SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w[i].mem == MAP_FAILED)
			return 11;
		for (size_t p = 0; p < STRESS_PAGES; p++)
			fill_page(w[i].mem + p * PG_SIZE, w[i].owner, p, 0);
		if (pthread_create(&t[i], NULL, stress_thread, &w[i]))
			return 12;
	}
	if (write(ready_fd, "r", 1) != 1)
		return 13;
	if (read(stop_fd, &c, 1) != 1)
		failed = 14;
	atomic_store(&stop, true);
	for (int i = 0; i < STRESS_THREADS; i++) {
		pthread_join(t[i], NULL);
		if (w[i].failure[0]) {
			fprintf(stderr, "client %d thread %d: %s\n", procno, i, w[i].failure);
			failed = 1;
		} else if (!cpu_check(&w[i])) {
			fprintf(stderr, "client %d thread %d at the end: %s\n", procno, i,
				w[i].failure);
			failed = 1;
		} else if (w[i].round < 2) {
			/* Every thread met the unplugs with work under way. */
			fprintf(stderr, "client %d thread %d ran %llu rounds only\n", procno, i,
				(unsigned long long)w[i].round);
			failed = 1;
		}
	}
	fprintf(stderr, "client %d: %llu and %llu rounds\n", procno,
		(unsigned long long)w[0].round, (unsigned long long)w[STRESS_THREADS - 1].round);
	zdev_close(dev[1]);
	zdev_close(dev[0]);
	return failed;
}

START_TEST(unplug_and_plug_under_load)
{
	int stop_pipe[2], ready_pipe[2], status;
	pid_t pid[STRESS_PROCS];
	unsigned long long moved_total = 0;
	char c;

	ck_assert_int_eq(pipe(stop_pipe), 0);
	ck_assert_int_eq(pipe(ready_pipe), 0);
	for (int i = 0; i < STRESS_PROCS; i++) {
		pid[i] = fork();
		ck_assert_int_ge(pid[i], 0);
		if (!pid[i]) {
			close(stop_pipe[1]);
			close(ready_pipe[0]);
			_exit(stress_client(i, stop_pipe[0], ready_pipe[1]));
		}
	}
	close(stop_pipe[0]);
	close(ready_pipe[1]);
	for (int i = 0; i < STRESS_PROCS; i++)
		ck_assert_int_eq(read(ready_pipe[0], &c, 1), 1);

	for (int cycle = 0; cycle < STRESS_CYCLES; cycle++) {
		const struct timespec pause = { 0, (cycle % 4) * 5 * 1000000l };
		unsigned long long moved = 0;

		nanosleep(&pause, NULL);
		ck_assert_int_eq(zdevd_unplug(&zd, GOES, &moved), 0);
		moved_total += moved;
		/* Nothing is left on it, whatever the clients were doing. */
		ck_assert_int_eq(status_of(GOES).unplugged, 1);
		ck_assert_uint_eq(status_of(GOES).used, 0);
		nanosleep(&pause, NULL);
		ck_assert_int_eq(zdevd_plug(&zd, GOES), 0);
	}

	for (int i = 0; i < STRESS_PROCS; i++)
		ck_assert_int_eq(write(stop_pipe[1], "s", 1), 1);
	for (int i = 0; i < STRESS_PROCS; i++) {
		ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "client %d: status %#x", i, status);
	}
	close(stop_pipe[1]);
	close(ready_pipe[0]);
	/* Every client is gone: both pools are back at zero. */
	ck_assert_uint_eq(status_of(GOES).used, 0);
	ck_assert_uint_eq(status_of(STAYS).used, 0);
	fprintf(stderr, "unplug_and_plug_under_load: %d cycles, %llu pages came home\n",
		STRESS_CYCLES, moved_total);
	ck_assert_int_eq(zdevd_stop(&zd), 0);
	zd.pid = 0;
}
END_TEST

int main(void)
{
	const char *why = zdevd_unavailable();
	Suite *s;

	if (why)
		return check_skip_all("%s", why);
	s = suite_create("unplug");
	check_add_case(s, "unplug_brings_pages_home", unplug_brings_pages_home, start_zdevd,
		       kill_zdevd, 120);
	check_add_case(s, "unplug_of_an_unknown_device", unplug_of_an_unknown_device,
		       start_zdevd, kill_zdevd, 60);
	check_add_case(s, "unplug_revokes_exclusive_holds", unplug_revokes_exclusive_holds,
		       start_zdevd, kill_zdevd, 120);
	check_add_case(s, "close_while_unplugged", close_while_unplugged, start_zdevd,
		       kill_zdevd, 120);
	check_add_case(s, "plug_warms_the_new_device", plug_warms_the_new_device,
		       start_zdevd_warm, kill_zdevd, 300);
	check_add_case(s, "unplug_of_a_coherent_device", unplug_of_a_coherent_device,
		       start_zdevd_coherent, kill_zdevd, 120);
	check_add_case(s, "unplug_and_plug_under_load", unplug_and_plug_under_load, start_zdevd,
		       kill_zdevd, 600);
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
