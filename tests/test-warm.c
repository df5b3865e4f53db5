/* SPDX-License-Identifier: MIT */
/*
 * Warm device memory (src/warm.c): zdevd makes each private device's next
 * store ahead of time and populates it under free blocks; the next new
 * process takes it. Each test runs its own zdevd with its own --warm. The
 * checks are on what zdevd reports and on what a process can read of its
 * stores, never on how long anything took: every wait is for a state, with
 * a generous deadline that only a hang reaches.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define MIB (1ul << 20)
#define DEV_PAGES_64M (64 * MIB / PG_SIZE)
/* A pool block: what a store gets memory in, warm or not. */
#define WARM_BLOCK_PAGES WIN_PAGES
/* Only a hang waits this long for the warm thread. */
#define WARM_TIMEOUT_MS 120000

static struct zdevd_instance zd;

static void start_with(const char *const *args)
{
	zdevd_start(&zd, args);
}

static void start_warm_16m(void)
{
	static const char *const args[] = { "--devices", "1", "--memory", "64M", "--warm", "16M",
					    NULL };

	start_with(args);
}

static void start_warm_all(void)
{
	static const char *const args[] = { "--devices", "1", "--memory", "64M", "--warm", "64M",
					    NULL };

	start_with(args);
}

static void start_warm_more_than_memory(void)
{
	static const char *const args[] = { "--devices", "1", "--memory", "64M", "--warm", "1G",
					    NULL };

	start_with(args);
}

static void start_warm_none(void)
{
	static const char *const args[] = { "--devices", "1", "--memory", "64M", NULL };

	start_with(args);
}

/* The coherent device first: the thread passes it before the private one. */
static void start_coherent_then_private(void)
{
	static const char *const args[] = { "--devices", "2", "--memory", "64M", "--memory-type",
					    "coherent,private", "--warm", "16M", NULL };

	start_with(args);
}

static void start_warm_128m(void)
{
	static const char *const args[] = { "--devices", "1", "--memory", "128M", "--warm",
					    "128M", NULL };

	start_with(args);
}

static void kill_zdevd(void)
{
	if (zd.pid > 0) {
		kill(zd.pid, SIGKILL);
		waitpid(zd.pid, NULL, 0);
		zd.pid = 0;
	}
}

/* SIGTERM: every page back with its owner and the warm store put, or a
 * status that says what was left. */
static void stop_cleanly(void)
{
	ck_assert_int_eq(zdevd_stop(&zd), 0);
	zd.pid = 0;
}

static struct zdevd_pool_status status_of(unsigned int device)
{
	struct zdevd_pool_status st;

	ck_assert_int_eq(zdevd_pool_status(&zd, device, &st), 0);
	return st;
}

static void wait_warm(unsigned int device, unsigned long long pages)
{
	long ret = zdevd_wait_warm(&zd, device, pages, WARM_TIMEOUT_MS);

	ck_assert_msg(ret >= 0, "device %u: %llu pages never warm (%ld; %llu are)", device, pages,
		      ret, status_of(device).warm);
}

/* Every process gone: device 0 of 64M is all warm again, none of it used. */
static void all_warm_again(void)
{
	wait_warm(0, DEV_PAGES_64M);
	ck_assert_uint_eq(status_of(0).warm, DEV_PAGES_64M);
	ck_assert_uint_eq(status_of(0).used, 0);
}

/* A 16-bit tag over the word's index: a page of it is recognisable alone. */
static uint64_t word(uint64_t tag, size_t i)
{
	return tag << 48 | (i & 0xffffffffffffull);
}

static void fill(uint64_t *w, size_t bytes, uint64_t tag)
{
	for (size_t i = 0; i < bytes / 8; i++)
		w[i] = word(tag, i);
}

static bool holds(const volatile uint64_t *w, size_t bytes, uint64_t tag)
{
	for (size_t i = 0; i < bytes / 8; i++)
		if (w[i] != word(tag, i))
			return false;
	return true;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static uint64_t device_pages(struct zdev *dev)
{
	struct zdev_stats st = { .size = sizeof(st) };

	return zdev_get_stats(dev, &st) ? UINT64_MAX : st.device_pages;
}

/*
 * Calls fn(fd, arg) on each of this process's device stores (its fds named
 * memfd:zdev-store-devN), until fn returns true; the number of stores seen.
 */
static unsigned int for_each_store(bool (*fn)(int fd, void *arg), void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	unsigned int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[300], target[256];
		bool done;
		ssize_t len;
		int fd;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, "/memfd:zdev-store-dev", 21))
			continue;
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n++;
		done = fn(fd, arg);
		close(fd);
		if (done)
			break;
	}
	closedir(d);
	return n;
}

struct tag_search {
	uint64_t tag;
	bool found;
};

/* Whether a page of the store (only those that hold data: it is sparse) is
 * all tag's pattern. */
static bool store_holds(int fd, void *arg)
{
	struct tag_search *s = arg;
	uint64_t page[PG_SIZE / 8];

	for (off_t off = 0; !s->found && (off = lseek(fd, off, SEEK_DATA)) >= 0; off += PG_SIZE) {
		size_t tagged = 0;

		if (pread(fd, page, PG_SIZE, off) != (ssize_t)PG_SIZE)
			break;
		for (size_t i = 0; i < PG_SIZE / 8; i++)
			tagged += page[i] >> 48 == s->tag;
		s->found = tagged == PG_SIZE / 8;
	}
	return s->found;
}

static bool stores_hold(uint64_t tag)
{
	struct tag_search s = { .tag = tag };

	for_each_store(store_holds, &s);
	return s.found;
}

/* Adds the pages of the store that have memory to *(uint64_t *)arg. */
static bool count_data(int fd, void *arg)
{
	uint64_t *pages = arg;
	off_t data, hole = 0;

	while ((data = lseek(fd, hole, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			break;
		*pages += (uint64_t)(hole - data) / PG_SIZE;
	}
	return false;
}

/* The pages with memory in this process's stores: at least the warm pages
 * of the store it took, if it took the warm one. */
static uint64_t store_data_pages(unsigned int *nstores)
{
	uint64_t pages = 0;

	*nstores = for_each_store(count_data, &pages);
	return pages;
}

static int wait_child(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

#define ck_assert_child_ok(status, what)                                                   \
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %#x", what, \
		      status)

/* ---- how much is warm ---- */

START_TEST(warm_reaches_its_target)
{
	wait_warm(0, 4096);
	/* The thread stops at the target: no more, also a while later. */
	ck_assert_uint_eq(status_of(0).warm, 4096);
	usleep(200000);
	ck_assert_uint_eq(status_of(0).warm, 4096);
	stop_cleanly();
}
END_TEST

START_TEST(warm_is_at_most_the_memory)
{
	wait_warm(0, DEV_PAGES_64M);
	ck_assert_uint_eq(status_of(0).warm, DEV_PAGES_64M);
	usleep(200000);
	ck_assert_uint_eq(status_of(0).warm, DEV_PAGES_64M);
	stop_cleanly();
}
END_TEST

START_TEST(warm_0_keeps_nothing_warm)
{
	/* No warm thread runs at all: 0 now is 0 for good. */
	usleep(200000);
	ck_assert_uint_eq(status_of(0).warm, 0);
	ck_assert_uint_eq(status_of(0).used, 0);
	stop_cleanly();
}
END_TEST

START_TEST(coherent_device_has_no_warm_pages)
{
	/* Device 1 is warm only once the thread has passed device 0. */
	wait_warm(1, 4096);
	ck_assert_uint_eq(status_of(0).warm, 0);
	ck_assert_uint_eq(status_of(1).warm, 4096);
	stop_cleanly();
}
END_TEST

/* ---- a new process takes the warm store ---- */

/*
 * A fresh process's life on the device: migrates one page there, whose
 * block comes with its memory if the store is the warm one, and back; then
 * 8 MiB of plain anonymous memory there, half of it back, checks it; tells
 * held_fd, with the other half still on the device, how many pages its
 * stores held after the first migration, waits for go_fd,
 * then reads the device half as the device sees it and by faulting it back.
 * 0, or which step failed.
 */
static int device_life(uint64_t tag, int held_fd, int go_fd)
{
	const size_t len = 8 * MIB, npages = len / PG_SIZE;
	struct zdev_result res;
	unsigned int nstores;
	struct zdev *dev;
	uint64_t *buf, *copy, *probe, pages, held;
	char c;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(len);
	probe = map_anon(PG_SIZE);
	copy = malloc(len / 2);
	if (!buf || !probe || !copy)
		return 11;
	fill(probe, PG_SIZE, tag);
	if (zdev_migrate_to_device(dev, probe, 1, &res) || res.cpages != 1)
		return 23;
	pages = store_data_pages(&nstores);
	if (nstores != 1)
		return 17;
	if (zdev_migrate_to_system(dev, probe, 1, &res) || !holds(probe, PG_SIZE, tag))
		return 24;
	fill(buf, len, tag);
	if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages)
		return 12;
	if (device_pages(dev) != npages)
		return 13;
	if (zdev_migrate_to_system(dev, buf, npages / 2, &res) || device_pages(dev) != npages / 2)
		return 14;
	if (!holds(buf, len / 2, tag))
		return 15;
	/* Its own pages are in its store while on the device. */
	if (!stores_hold(tag))
		return 16;
	held = store_data_pages(&nstores);
	if (write(held_fd, &pages, sizeof(pages)) != (ssize_t)sizeof(pages) ||
	    read(go_fd, &c, 1) != 1)
		return 18;
	/* The blocks warmed for it stay its own while it pauses: none went
	 * to another warm store, whose mapping would have punched them out. */
	if (store_data_pages(&nstores) < held)
		return 25;
	if (zdev_read(dev, buf + len / 16, npages / 2, copy, &res) || res.cpages != npages / 2)
		return 19;
	for (size_t i = 0; i < len / 16; i++)
		if (copy[i] != word(tag, len / 16 + i))
			return 20;
	if (!holds(buf, len, tag) || device_pages(dev) != 0)
		return 21;
	return zdev_close(dev) ? 22 : 0;
}

START_TEST(first_process_takes_the_warm_store)
{
	int held[2], go[2], status;
	uint64_t pages = 0;
	pid_t pid;
	char c = 'g';

	wait_warm(0, DEV_PAGES_64M);
	ck_assert_int_eq(pipe(held), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		_exit(device_life(0x1234, held[1], go[0]));
	close(held[1]);
	close(go[0]);
	ck_assert_int_eq(read(held[0], &pages, sizeof(pages)), (ssize_t)sizeof(pages));
	/* Its store is the warm one, all of the device: every page had its
	 * memory from the start (a cold store has memory for that page only). */
	ck_assert_msg(pages == DEV_PAGES_64M, "the child's store had %llu pages of memory",
		      (unsigned long long)pages);
	/* While it holds them, zdevd finds no block to warm for another, also
	 * once the device has been quiet a while. */
	ck_assert_uint_eq(status_of(0).warm, 0);
	usleep(300000);
	ck_assert_uint_eq(status_of(0).warm, 0);
	ck_assert_int_eq(write(go[1], &c, 1), 1);
	status = wait_child(pid);
	ck_assert_child_ok(status, "child");
	/* Its blocks are no living store's any more: warm again. */
	all_warm_again();
	close(held[0]);
	close(go[1]);
	stop_cleanly();
}
END_TEST

/* ---- a warm store holds no other process's data ---- */

/* Migrates 16 MiB tagged tag and tells ready_fd, the pages on the device;
 * then waits to be killed, or exits at once leaving them there. */
static int leave_pages(uint64_t tag, bool wait_for_kill, int ready_fd)
{
	const size_t len = 16 * MIB, npages = len / PG_SIZE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(len);
	if (!buf)
		return 11;
	fill(buf, len, tag);
	if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages ||
	    device_pages(dev) != npages || !stores_hold(tag))
		return 12;
	if (write(ready_fd, "r", 1) != 1)
		return 13;
	while (wait_for_kill)
		pause();
	return 0;
}

/* A few pages of its own to the device, so that it gets its store; 0 if no
 * store shows any of the ntags others' pages, or which step failed. */
static int look_for_others(uint64_t tag, const uint64_t *others, unsigned int ntags,
			   uint64_t warm_pages)
{
	const size_t npages = 4, len = npages * PG_SIZE;
	struct zdev_result res;
	unsigned int nstores;
	struct zdev *dev;
	uint64_t *buf;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(len);
	if (!buf)
		return 11;
	fill(buf, len, tag);
	if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages ||
	    device_pages(dev) != npages)
		return 12;
	/* The store it got is the warm one. */
	/* The store it got is the warm one: the block its pages went to was
	 * filled whole before (a cold store has memory for its 4 pages only;
	 * the warm blocks it did not adopt may go to the next warm store by
	 * now, its own block never does). */
	(void)warm_pages;
	if (store_data_pages(&nstores) < WARM_BLOCK_PAGES || nstores != 1)
		return 13;
	if (!stores_hold(tag))
		return 14;
	for (unsigned int i = 0; i < ntags; i++)
		if (stores_hold(others[i])) {
			fprintf(stderr, "the store holds pages of tag %#llx\n",
				(unsigned long long)others[i]);
			return 1;
		}
	if (!holds(buf, len, tag) || device_pages(dev) != 0)
		return 15;
	return zdev_close(dev) ? 16 : 0;
}

START_TEST(warm_store_shows_no_other_data)
{
	uint64_t tags[3];

	wait_warm(0, DEV_PAGES_64M);
	/* A's pages left on the device by an exit, by SIGKILL, and once more
	 * with the earlier rounds' stores all gone. */
	for (unsigned int round = 0; round < 3; round++) {
		const bool killed = round == 1;
		int ready[2], status;
		pid_t a, b;
		char c;

		tags[round] = 0xa000 + round;
		ck_assert_int_eq(pipe(ready), 0);
		a = fork();
		ck_assert_int_ne(a, -1);
		if (a == 0)
			_exit(leave_pages(tags[round], killed, ready[1]));
		close(ready[1]);
		ck_assert_int_eq(read(ready[0], &c, 1), 1);
		close(ready[0]);
		if (killed)
			kill(a, SIGKILL);
		status = wait_child(a);
		if (killed)
			ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
				      "round %u, A: status %#x", round, status);
		else
			ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
				      "round %u, A: status %#x", round, status);
		/* zdevd re-warms the blocks A had once they are free. */
		wait_warm(0, DEV_PAGES_64M);
		b = fork();
		ck_assert_int_ne(b, -1);
		if (b == 0)
			_exit(look_for_others(0xb000 + round, tags, round + 1, DEV_PAGES_64M));
		status = wait_child(b);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "round %u, B: status %#x", round, status);
		wait_warm(0, DEV_PAGES_64M);
	}
	stop_cleanly();
}
END_TEST

/* ---- a second process while the first holds the warm store ---- */

/* Moves len bytes tagged tag to the device and back, checking them. */
static int there_and_back(struct zdev *dev, uint64_t *buf, size_t len, uint64_t tag)
{
	struct zdev_result res;

	fill(buf, len, tag);
	if (zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res) || res.cpages != len / PG_SIZE)
		return 1;
	if (zdev_migrate_to_system(dev, buf, len / PG_SIZE, &res) || res.cpages != len / PG_SIZE)
		return 2;
	return holds(buf, len, tag) ? 0 : 3;
}

/*
 * The first process: 2 MiB kept on the device; at each go, 16 MiB more there
 * and back (in the blocks warmed for it, or another's). Tells step_fd after
 * each step.
 */
static int first_holder(int step_fd, int go_fd)
{
	const size_t kept = 2 * MIB, len = 16 * MIB;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf, *more;
	char c;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(kept);
	more = map_anon(len);
	if (!buf || !more)
		return 11;
	fill(buf, kept, 0x7100);
	if (zdev_migrate_to_device(dev, buf, kept / PG_SIZE, &res) || res.cpages != kept / PG_SIZE)
		return 12;
	for (unsigned int step = 0; step < 2; step++) {
		if (write(step_fd, "s", 1) != 1 || read(go_fd, &c, 1) != 1)
			return 13;
		if (there_and_back(dev, more, len, 0x7200 + step))
			return 20 + (int)step;
		if (stores_hold(0x7300))
			return 30;
	}
	if (!stores_hold(0x7100) || !holds(buf, kept, 0x7100))
		return 14;
	return zdev_close(dev) ? 15 : 0;
}

/* The second process: 16 MiB there and back, and none of the first's pages
 * in its stores. */
static int second_process(void)
{
	const size_t len = 16 * MIB;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	int ret;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(len);
	if (!buf)
		return 11;
	ret = there_and_back(dev, buf, len, 0x7300);
	if (ret)
		return ret;
	/* While on the device, its pages are in its store. */
	fill(buf, PG_SIZE, 0x7301);
	if (zdev_migrate_to_device(dev, buf, 1, &res) || !stores_hold(0x7301))
		return 4;
	if (stores_hold(0x7100) || stores_hold(0x7200) || stores_hold(0x7201))
		return 1;
	return zdev_close(dev) ? 12 : 0;
}

START_TEST(warm_count_follows_adoptions)
{
	int step[2], go[2], status;
	pid_t p, q;
	char c;

	wait_warm(0, DEV_PAGES_64M);
	ck_assert_int_eq(pipe(step), 0);
	ck_assert_int_eq(pipe(go), 0);
	p = fork();
	ck_assert_int_ne(p, -1);
	if (p == 0)
		_exit(first_holder(step[1], go[0]));
	close(step[1]);
	close(go[0]);
	ck_assert_msg(read(step[0], &c, 1) == 1, "P: status %#x", wait_child(p));
	/* P took every warm block: while it lives they are its. */
	ck_assert_uint_lt(status_of(0).warm, DEV_PAGES_64M);
	q = fork();
	ck_assert_int_ne(q, -1);
	if (q == 0)
		_exit(second_process());
	status = wait_child(q);
	ck_assert_child_ok(status, "Q");
	for (unsigned int i = 0; i < 2; i++) {
		struct zdevd_pool_status st = status_of(0);

		/* What Q had is warmed again, P's blocks not. */
		ck_assert_uint_lt(st.warm, DEV_PAGES_64M);
		ck_assert_uint_le(st.warm + st.used, st.total);
		ck_assert_int_eq(write(go[1], "g", 1), 1);
		ck_assert_msg(read(step[0], &c, 1) == 1 || i == 1, "P: status %#x", wait_child(p));
	}
	status = wait_child(p);
	ck_assert_child_ok(status, "P");
	all_warm_again();
	close(step[0]);
	close(go[1]);
	stop_cleanly();
}
END_TEST

/* ---- clients while the thread warms ---- */

/* Rounds of 16 MiB to the device and back, a pattern of its own each;
 * brought back by migration or by CPU faults in turn. */
static int rounds_there_and_back(unsigned int child)
{
	const size_t len = 16 * MIB, npages = len / PG_SIZE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(len);
	if (!buf)
		return 11;
	for (unsigned int round = 0; round < 6; round++) {
		const uint64_t tag = 0xc000 + child * 0x100 + round;

		fill(buf, len, tag);
		if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages)
			return 20 + (int)round;
		if (device_pages(dev) != npages)
			return 30 + (int)round;
		if (round % 2 == 0 &&
		    (zdev_migrate_to_system(dev, buf, npages, &res) || res.cpages != npages))
			return 40 + (int)round;
		if (!holds(buf, len, tag))
			return 50 + (int)round;
		if (device_pages(dev) != 0)
			return 60 + (int)round;
	}
	return zdev_close(dev) ? 12 : 0;
}

START_TEST(concurrent_clients_while_warming)
{
	pid_t pid[3];

	/* No wait: the children meet the thread while it warms. */
	for (unsigned int i = 0; i < 3; i++) {
		pid[i] = fork();
		ck_assert_int_ne(pid[i], -1);
		if (pid[i] == 0)
			_exit(rounds_there_and_back(i));
	}
	for (unsigned int i = 0; i < 3; i++) {
		int status = wait_child(pid[i]);

		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %u: status %#x",
			      i, status);
	}
	/* zdevd still answers. */
	status_of(0);
	/* Stopping puts the warm store too, with everything else. */
	stop_cleanly();
}
END_TEST

/* ---- fork ---- */

/* In a process of its own, so that the test process never becomes a
 * client: why fork sharing is missing, "" if it is there. */
static void fork_shared_missing(char *why, size_t size)
{
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		const char *w = zdevd_lacks(ZDEV_FEATURE_FORK_SHARED);

		close(pipefd[0]);
		_exit(w && write(pipefd[1], w, strlen(w)) < 0 ? 1 : 0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], why, size - 1);
	close(pipefd[0]);
	status = wait_child(pid);
	ck_assert_child_ok(status, "feature probe");
	why[n > 0 ? n : 0] = '\0';
}

/*
 * P: 4 MiB tagged 0x5100 to the device, then a fork. The child reads the
 * shared pages and moves 2 MiB of its own there and back; the parent reads
 * its pages too, before and after. Tells done_fd when all is checked and
 * waits for go_fd before exiting, its pages still on the device.
 */
static int fork_with_pages(int done_fd, int go_fd)
{
	const size_t len = 4 * MIB, npages = len / PG_SIZE, own = 2 * MIB;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf, *mine;
	int status;
	pid_t pid;
	char c;

	if (zdev_open(NULL, 0, &dev))
		return 10;
	buf = map_anon(len);
	mine = map_anon(own);
	if (!buf || !mine)
		return 11;
	fill(buf, len, 0x5100);
	if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages)
		return 12;
	pid = fork();
	if (pid < 0)
		return 13;
	if (pid == 0) {
		struct zdev *cdev;

		if (!holds(buf, len, 0x5100))
			_exit(1);
		fill(mine, own, 0x5200);
		if (zdev_open(NULL, 0, &cdev) ||
		    zdev_migrate_to_device(cdev, mine, own / PG_SIZE, &res) ||
		    res.cpages != own / PG_SIZE || device_pages(cdev) != own / PG_SIZE)
			_exit(2);
		if (zdev_migrate_to_system(cdev, mine, own / PG_SIZE, &res) ||
		    !holds(mine, own, 0x5200))
			_exit(3);
		_exit(zdev_close(cdev) ? 4 : 0);
	}
	status = wait_child(pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return 20 + (WIFEXITED(status) ? WEXITSTATUS(status) : 9);
	/* The parent's pages: half read where they are, half faulted back. */
	if (zdev_read(dev, buf, npages / 2, mine, &res) || res.cpages != npages / 2 ||
	    !holds(mine, len / 2, 0x5100))
		return 14;
	if (!holds(buf, len, 0x5100))
		return 15;
	fill(buf, len, 0x5101);
	if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages)
		return 16;
	if (write(done_fd, "d", 1) != 1 || read(go_fd, &c, 1) != 1)
		return 17;
	return holds(buf, len, 0x5101) ? 0 : 18;
}

START_TEST(fork_after_warm)
{
	static const uint64_t others[] = { 0x5100, 0x5101, 0x5200 };
	int done[2], go[2], status;
	char why[512], c;
	pid_t p, n;

	fork_shared_missing(why, sizeof(why));
	if (why[0]) {
		check_skip("%s", why);
		return;
	}
	wait_warm(0, 4096);
	ck_assert_int_eq(pipe(done), 0);
	ck_assert_int_eq(pipe(go), 0);
	p = fork();
	ck_assert_int_ne(p, -1);
	if (p == 0)
		_exit(fork_with_pages(done[1], go[0]));
	close(done[1]);
	close(go[0]);
	ck_assert_msg(read(done[0], &c, 1) == 1, "P failed: status %#x", wait_child(p));
	/* With P alive and its pages on the device, a new process still gets a
	 * warm store, and sees none of P's or its child's pages. */
	wait_warm(0, 4096);
	n = fork();
	ck_assert_int_ne(n, -1);
	if (n == 0)
		_exit(look_for_others(0x5300, others, 3, 4096));
	status = wait_child(n);
	ck_assert_child_ok(status, "new process");
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	status = wait_child(p);
	ck_assert_child_ok(status, "P");
	wait_warm(0, 4096);
	ck_assert_uint_eq(status_of(0).warm, 4096);
	close(done[0]);
	close(go[1]);
	stop_cleanly();
}
END_TEST

int main(void)
{
	const char *why = zdevd_unavailable();
	Suite *s;

	if (why)
		return check_skip_all("%s", why);
	s = suite_create("warm");
	check_add_case(s, "warm_reaches_its_target", warm_reaches_its_target, start_warm_16m,
		       kill_zdevd, 180);
	check_add_case(s, "warm_is_at_most_the_memory", warm_is_at_most_the_memory,
		       start_warm_more_than_memory, kill_zdevd, 180);
	check_add_case(s, "warm_0_keeps_nothing_warm", warm_0_keeps_nothing_warm, start_warm_none,
		       kill_zdevd, 60);
	check_add_case(s, "coherent_device_has_no_warm_pages", coherent_device_has_no_warm_pages,
		       start_coherent_then_private, kill_zdevd, 180);
	check_add_case(s, "first_process_takes_the_warm_store", first_process_takes_the_warm_store,
		       start_warm_all, kill_zdevd, 300);
	check_add_case(s, "warm_store_shows_no_other_data", warm_store_shows_no_other_data,
		       start_warm_all, kill_zdevd, 600);
	check_add_case(s, "warm_count_follows_adoptions", warm_count_follows_adoptions,
		       start_warm_all, kill_zdevd, 300);
	check_add_case(s, "concurrent_clients_while_warming", concurrent_clients_while_warming,
		       start_warm_128m, kill_zdevd, 300);
	check_add_case(s, "fork_after_warm", fork_after_warm, start_warm_16m, kill_zdevd, 300);
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
