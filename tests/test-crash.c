/* SPDX-License-Identifier: MIT */
/*
 * zdevd killed outright loses no client data (docs/architecture.md,
 * "Surviving zdevd"): the client
 * holds the stores its device pages live in and its own uffd, and libzdev's
 * agent copies every page back once zdevd is gone. Each test runs its own
 * zdevd and kills it with SIGKILL, then checks every byte; processes that
 * need a living zdevd again are forked per round.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "page.h"
#include "proto.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define HUGE (2ul << 20)

static struct zdevd_instance zd;

static void start_zdevd(void)
{
	zdevd_start(&zd, NULL);
}

static void kill_zdevd(void)
{
	if (zd.pid > 0) {
		kill(zd.pid, SIGKILL);
		waitpid(zd.pid, NULL, 0);
		zd.pid = 0;
	}
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

/* The index of the first word of [from, to) (bytes) that is not the
 * pattern, or SIZE_MAX. */
static size_t wrong_in(const volatile uint64_t *w, size_t from, size_t to, uint64_t tag)
{
	for (size_t i = from / 8; i < to / 8; i++)
		if (w[i] != word(tag, i))
			return i;
	return SIZE_MAX;
}

static size_t first_wrong(const volatile uint64_t *w, size_t bytes, uint64_t tag)
{
	return wrong_in(w, 0, bytes, tag);
}

/*
 * libzdev zaps through madvise: armed, this kills zdevd just as the zap
 * starts, after zdevd asked for it and before it read the REMOVE event the
 * zap raises.
 */
static pid_t kill_on_zap;

int madvise(void *addr, size_t len, int advice)
{
	if (kill_on_zap > 0 && advice == MADV_DONTNEED) {
		pid_t pid = kill_on_zap;

		kill_on_zap = 0;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		zd.pid = 0;
	}
	return (int)syscall(SYS_madvise, addr, len, advice);
}

static uint64_t device_pages(struct zdev *dev)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(dev, &st), 0);
	return st.device_pages;
}

/* Small pages, a device THP and device writes, then SIGKILL. */
START_TEST(sigkill_keeps_device_pages)
{
	const size_t len = 8 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf, *patch;
	size_t wrong;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	/* The first two windows as THPs, so they move as device THPs. */
	madvise(buf, 2 * HUGE, MADV_HUGEPAGE);
	fill(buf, len, 0x1111);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_uint_eq(res.cpages, len / PG_SIZE);
	ck_assert_uint_eq(device_pages(dev), len / PG_SIZE);
	/* A device write lands in device memory only. */
	patch = malloc(16 * PG_SIZE);
	fill(patch, 16 * PG_SIZE, 0x2222);
	ck_assert_int_eq(zdev_write(dev, buf + 3 * HUGE / 8, 16, patch, &res), 0);
	ck_assert_uint_eq(device_pages(dev), len / PG_SIZE);

	kill_zdevd();

	wrong = first_wrong(buf + 3 * HUGE / 8, 16 * PG_SIZE, 0x2222);
	ck_assert_msg(wrong == SIZE_MAX, "device-written word %zu lost", wrong);
	wrong = wrong_in(buf, 0, 3 * HUGE, 0x1111);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost", wrong);
	wrong = wrong_in(buf, 3 * HUGE + 16 * PG_SIZE, len, 0x1111);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost", wrong);
	free(patch);

	/* The program goes on without a device (until a zdevd listens there
	 * again: test-reconnect). */
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, 1, &res), -ENODEV);
	ck_assert_int_eq(zdev_close(dev), 0);
	/* The socket the killed zdevd left behind. */
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), -ECONNREFUSED);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

/* ---- writers during migrations, zdevd killed at a random moment ---- */

#define WRITERS 2

struct writer {
	pthread_t thread;
	volatile uint64_t *slots;	/* this writer's words, a page apart */
	size_t nslots;
	uint64_t *last;			/* what it wrote last to each */
	atomic_bool *stop;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t n = 0;

	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		size_t i = n % w->nslots;

		w->slots[i * (PG_SIZE / 8)] = ++n;
		w->last[i] = n;
	}
	return NULL;
}

static unsigned int rand_below(unsigned int n)
{
	return (unsigned int)random() % n;
}

/* Runs in a process of its own: migrations back and forth while writers
 * write, zdevd killed after kill_after_us; 0 if nothing was lost. */
static int writers_round(unsigned int kill_after_us)
{
	const size_t npages = 2048;	/* 8 MiB: both writers' pages and more */
	struct writer w[WRITERS];
	atomic_bool stop = false;
	struct zdev_result res;
	struct timespec t0, t;
	struct zdev *dev;
	uint64_t *buf;
	int bad = 0;

	if (zdev_open(NULL, 0, &dev) || zdev_alloc(dev, npages * PG_SIZE, (void **)&buf))
		return 10;
	memset(buf, 0, npages * PG_SIZE);
	for (int k = 0; k < WRITERS; k++) {
		w[k] = (struct writer){ .slots = buf + (size_t)k * (npages / WRITERS) * (PG_SIZE / 8),
					.nslots = npages / WRITERS, .stop = &stop };
		w[k].last = calloc(w[k].nslots, sizeof(uint64_t));
		pthread_create(&w[k].thread, NULL, writer_main, &w[k]);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int r = zdev_migrate_to_device(dev, buf, npages, &res);

		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000 + (t.tv_nsec - t0.tv_nsec) / 1000 >=
		    kill_after_us && zd.pid > 0) {
			kill_zdevd();
			/* zdevd may have died in the middle of a call too:
			 * the last calls must simply fail. */
		}
		if (r && r != -ENOENT)
			break;
		r = zdev_migrate_to_system(dev, buf, npages / 2, &res);
		if (r && r != -ENOENT)
			break;
	}
	usleep(20000);	/* the writers go on without zdevd */
	atomic_store(&stop, true);
	for (int k = 0; k < WRITERS; k++) {
		pthread_join(w[k].thread, NULL);
		for (size_t i = 0; i < w[k].nslots; i++)
			if (w[k].slots[i * (PG_SIZE / 8)] != w[k].last[i]) {
				fprintf(stderr, "writer %d slot %zu: %llu, wrote %llu\n", k, i,
					(unsigned long long)w[k].slots[i * (PG_SIZE / 8)],
					(unsigned long long)w[k].last[i]);
				bad = 1;
				break;
			}
		free(w[k].last);
	}
	return bad;
}

/*
 * Rounds of round(kill_after_us), each in a fresh process against a fresh
 * zdevd (a process that lost its zdevd stays without a device), the kill
 * after a random time in [min_us, min_us + span_us).
 */
static void kill_rounds(int (*round)(unsigned int), unsigned int min_us, unsigned int span_us)
{
	for (int r = 0; r < 6; r++) {
		unsigned int after = min_us + rand_below(span_us);
		int status;
		pid_t pid;

		start_zdevd();
		pid = fork();
		if (pid == 0)
			_exit(round(after));
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		/* Whoever killed it (or not), it is reaped here. */
		kill_zdevd();
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "round %d (kill after %u us): status %#x", r, after, status);
	}
}

START_TEST(sigkill_during_migrations_with_writers)
{
	srandom((unsigned int)time(NULL));
	kill_rounds(writers_round, 2000, 40000);
}
END_TEST

/* One big migration, zdevd killed in the middle of it. */
static int mid_migration_round(unsigned int kill_after_us)
{
	const size_t len = 64ul << 20;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	pid_t killer;
	size_t wrong;

	if (zdev_open(NULL, 0, &dev) || zdev_alloc(dev, len, (void **)&buf))
		return 10;
	fill(buf, len, 0x3333);
	killer = fork();
	if (killer == 0) {
		usleep(kill_after_us);
		kill(zd.pid, SIGKILL);
		_exit(0);
	}
	zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res);
	zdev_migrate_to_system(dev, buf, len / PG_SIZE / 2, &res);
	waitpid(killer, NULL, 0);
	wrong = first_wrong(buf, len, 0x3333);
	if (wrong != SIZE_MAX) {
		fprintf(stderr, "kill after %u us: word %zu lost\n", kill_after_us, wrong);
		return 1;
	}
	return 0;
}

START_TEST(sigkill_mid_migration)
{
	srandom((unsigned int)time(NULL) ^ 0x55);
	kill_rounds(mid_migration_round, 0, 60000);
}
END_TEST

START_TEST(sigkill_during_the_zap)
{
	const size_t len = 4 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	size_t wrong;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x6666);
	kill_on_zap = zd.pid;
	/* The pages are in the table, zdevd is gone, our madvise zaps them:
	 * they must come back after it. */
	ck_assert_int_lt(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_int_eq(kill_on_zap, 0);
	wrong = first_wrong(buf, len, 0x6666);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost", wrong);
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

/* zdevd as a daemon (no --foreground): it is not the process that made
 * its socket, and libzdev must still watch the right one. */
static pid_t find_zdevd(const char *socket_path)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	while (d && (de = readdir(d)) && !found) {
		char path[300], cmd[1024];
		ssize_t n;
		int fd;

		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (n <= 0)
			continue;
		cmd[n] = '\0';
		if (!strstr(cmd, "zdevd"))
			continue;
		for (ssize_t i = 0; i < n; i++)
			if (!cmd[i])
				cmd[i] = ' ';
		if (strstr(cmd, socket_path))
			found = (pid_t)atoi(de->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

static char daemon_dir[] = "/tmp/zdev-daemon-XXXXXX", daemon_sock[128];

/* Whatever the test did, no daemon of its outlives it. */
static void stop_daemonized(void)
{
	pid_t pid = daemon_sock[0] ? find_zdevd(daemon_sock) : 0;

	if (pid > 0)
		kill(pid, SIGKILL);
	if (daemon_sock[0]) {
		unlink(daemon_sock);
		rmdir(daemon_dir);
	}
}

START_TEST(sigkill_daemonized_zdevd)
{
	const char *top = getenv("top_builddir");
	const size_t len = 2 * HUGE;
	char *dir = daemon_dir, *sock = daemon_sock, exe[512];
	struct zdev_result res;
	struct zdev *dev = NULL;
	uint64_t *buf;
	pid_t pid, daemon_pid = 0;
	int status;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(daemon_sock), "%s/zdevd.sock", dir);
	snprintf(exe, sizeof(exe), "%s/zdevd", top ? top : ".");
	pid = fork();
	if (pid == 0) {
		execl(exe, exe, "--socket", sock, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "zdevd: status %#x", status);
	for (int i = 0; i < 500 && zdev_open(sock, 0, &dev); i++)
		usleep(10000);
	ck_assert_ptr_nonnull(dev);
	daemon_pid = find_zdevd(sock);
	ck_assert_int_gt(daemon_pid, 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x7777);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), 0);
	kill(daemon_pid, SIGKILL);
	ck_assert_uint_eq(first_wrong(buf, len, 0x7777), SIZE_MAX);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, 1, &res), -ENODEV);
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

/*
 * A fork child shares its parent's device pages; both keep them when zdevd
 * dies, whether the child made a call of its own first (child_calls) or
 * never calls libzdev at all.
 */
static void fork_then_sigkill(bool child_calls, uint64_t tag)
{
	const size_t len = 4 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	int ready[2], go[2], status;
	size_t wrong;
	pid_t pid;
	char c;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, tag);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	if (pid == 0) {
		struct zdev *cdev;
		struct zdev_stats st = { .size = sizeof(st) };

		if (child_calls && (zdev_open(NULL, 0, &cdev) || zdev_get_stats(cdev, &st) ||
				    st.device_pages != len / PG_SIZE))
			_exit(3);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(4);
		_exit(first_wrong(buf, len, tag) == SIZE_MAX ? 0 : 1);
	}
	/* A child that fails early must not leave us waiting. */
	close(ready[1]);
	close(go[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	kill_zdevd();
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	wrong = first_wrong(buf, len, tag);
	ck_assert_msg(wrong == SIZE_MAX, "parent: word %zu lost", wrong);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %#x", status);
	ck_assert_int_eq(zdev_close(dev), 0);
}

START_TEST(sigkill_after_fork)
{
	/* The child counts the device pages it shares with its parent. */
	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_FORK_SHARED);
	fork_then_sigkill(true, 0x4444);
}
END_TEST

START_TEST(sigkill_after_fork_child_silent)
{
#ifdef __SANITIZE_THREAD__
	/* libzdev's fork handler starts the child's agent; under TSan it
	 * cannot, and waits for the child's first call. */
	check_skip("ThreadSanitizer cannot start threads in fork children");
#else
	fork_then_sigkill(false, 0x8888);
#endif
}
END_TEST

/* ---- stores: a process's store holds its own pages only ---- */

/* Whether any page of this process's device stores holds tag's pattern. */
static bool stores_hold(uint64_t tag)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while ((de = readdir(d)) && !found) {
		char path[300], target[256];
		uint64_t page[PG_SIZE / 8];
		ssize_t n;
		int fd;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strstr(target, "zdev-store-dev"))
			continue;
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		/* Only the pages that hold data: the store is sparse. */
		for (off_t off = 0; !found && (off = lseek(fd, off, SEEK_DATA)) >= 0; off += PG_SIZE) {
			if (pread(fd, page, PG_SIZE, off) != (ssize_t)PG_SIZE)
				break;
			size_t tagged = 0;

			for (size_t i = 0; i < PG_SIZE / 8; i++)
				tagged += page[i] >> 48 == tag;
			found = tagged == PG_SIZE / 8;
		}
		close(fd);
	}
	closedir(d);
	return found;
}

/* One client: migrates 8 MiB tagged tag, optionally brings it back (its
 * blocks go free for others), then waits; answers whether its stores hold
 * other's pattern. */
static int store_client(uint64_t tag, uint64_t other, bool give_back, int done_fd, int go_fd)
{
	const size_t len = 4 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	char c;

	if (zdev_open(NULL, 0, &dev) || zdev_alloc(dev, len, (void **)&buf))
		return 10;
	fill(buf, len, tag);
	if (zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res))
		return 11;
	if (give_back && zdev_migrate_to_system(dev, buf, len / PG_SIZE, &res))
		return 12;
	if (write(done_fd, "d", 1) != 1 || read(go_fd, &c, 1) != 1)
		return 13;
	/* Its own pages are in its stores while on the device; another's
	 * never are. */
	if (!give_back && !stores_hold(tag))
		return 3;
	if (stores_hold(other))
		return 1;
	if (first_wrong(buf, len, tag) != SIZE_MAX)
		return 2;
	return zdev_close(dev) ? 14 : 0;
}

START_TEST(stores_hold_own_pages_only)
{
	int done_a[2], go_a[2], done_b[2], go_b[2], st_a, st_b;
	pid_t a, b;
	char c;

	ck_assert_int_eq(pipe(done_a) | pipe(go_a) | pipe(done_b) | pipe(go_b), 0);
	/* B first: its pages go to the device and back, freeing its blocks. */
	b = fork();
	if (b == 0)
		_exit(store_client(0xbbbb, 0xaaaa, true, done_b[1], go_b[0]));
	ck_assert_int_eq(read(done_b[0], &c, 1), 1);
	/* A takes blocks next, likely the ones B had. */
	a = fork();
	if (a == 0)
		_exit(store_client(0xaaaa, 0xbbbb, false, done_a[1], go_a[0]));
	ck_assert_int_eq(read(done_a[0], &c, 1), 1);
	ck_assert_int_eq(write(go_a[1], "g", 1), 1);
	ck_assert_int_eq(write(go_b[1], "g", 1), 1);
	ck_assert_int_eq(waitpid(a, &st_a, 0), a);
	ck_assert_int_eq(waitpid(b, &st_b, 0), b);
	ck_assert_msg(WIFEXITED(st_a) && WEXITSTATUS(st_a) == 0, "A: status %#x", st_a);
	ck_assert_msg(WIFEXITED(st_b) && WEXITSTATUS(st_b) == 0, "B: status %#x", st_b);
	kill_zdevd();
}
END_TEST

/* A fork child holds its parent's stores (its shared pages are there), but
 * never sees what the parent moves to the device after the fork. */
START_TEST(fork_child_sees_no_later_pages)
{
	const size_t len = 2 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *before, *after;
	int go[2], status;
	pid_t pid;
	char c;

	/* The child's stores are those it shares with its parent. */
	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_FORK_SHARED);
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&before), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&after), 0);
	fill(before, len, 0x9999);
	fill(after, len, 0xaaaa);
	ck_assert_int_eq(zdev_migrate_to_device(dev, before, len / PG_SIZE, &res), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(4);
		/* The pages shared at the fork are there; the later ones not. */
		_exit(!stores_hold(0x9999) ? 2 : stores_hold(0xaaaa) ? 1 : 0);
	}
	close(go[0]);
	ck_assert_int_eq(zdev_migrate_to_device(dev, after, len / PG_SIZE, &res), 0);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %#x", status);
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

/* SIGTERM evicts everything first; the rescue then has nothing to do. */
START_TEST(sigterm_then_no_device)
{
	const size_t len = 2 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x5555);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_int_eq(zdevd_stop(&zd), 0);
	zd.pid = 0;
	ck_assert_uint_eq(first_wrong(buf, len, 0x5555), SIZE_MAX);
	/* Registrations are gone with the uffd: fresh memory faults plainly. */
	ck_assert_int_eq(munmap(buf, len), 0);
	buf = mmap(buf, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ck_assert_ptr_ne(buf, MAP_FAILED);
	buf[0] = 1;
	ck_assert_uint_eq(buf[0], 1);
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

static void start_coherent_zdevd(void)
{
	static const char *const args[] = { "--memory-type", "coherent", NULL };

	zdevd_start(&zd, args);
}

/*
 * A coherent device's pages keep their data in the process: a SIGKILL loses
 * nothing of them, a device write included, and, write-protected for a fork
 * that shares them, they take the process's writes once zdevd is gone.
 */
START_TEST(sigkill_keeps_coherent_pages)
{
	const size_t len = HUGE, npages = len / PG_SIZE;
	struct zdev_result res;
	uint64_t *buf, *patch;
	unsigned int type = 0;
	struct zdev *dev;
	int status = 0;
	pid_t pid;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_get_memory_type(dev, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_COHERENT);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x6666);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, npages, &res), 0);
	ck_assert_uint_eq(device_pages(dev), npages);
	patch = malloc(4 * PG_SIZE);
	fill(patch, 4 * PG_SIZE, 0x7777);
	ck_assert_int_eq(zdev_write(dev, buf, 4, patch, &res), 0);
	/* With fork events the fork write-protects them in both processes. */
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		_exit(first_wrong(buf, 4 * PG_SIZE, 0x7777) == SIZE_MAX ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	kill_zdevd();

	ck_assert_uint_eq(first_wrong(buf, 4 * PG_SIZE, 0x7777), SIZE_MAX);
	ck_assert_uint_eq(wrong_in(buf, 4 * PG_SIZE, len, 0x6666), SIZE_MAX);
	fill(buf, len, 0x8888);
	ck_assert_uint_eq(first_wrong(buf, len, 0x8888), SIZE_MAX);
	free(patch);
	ck_assert_int_eq(zdev_close(dev), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

int main(void)
{
	const char *why = zdevd_unavailable();
	Suite *s;

	if (why)
		return check_skip_all("%s", why);
	s = suite_create("crash");
	check_add_case(s, "sigkill_keeps_device_pages", sigkill_keeps_device_pages, start_zdevd,
		       kill_zdevd, 120);
	check_add_case(s, "sigkill_during_migrations_with_writers",
		       sigkill_during_migrations_with_writers, NULL, kill_zdevd, 300);
	check_add_case(s, "sigkill_mid_migration", sigkill_mid_migration, NULL, kill_zdevd, 300);
	check_add_case(s, "sigkill_during_the_zap", sigkill_during_the_zap, start_zdevd, kill_zdevd,
		       120);
	check_add_case(s, "sigkill_daemonized_zdevd", sigkill_daemonized_zdevd, NULL, stop_daemonized,
		       120);
	check_add_case(s, "sigkill_after_fork", sigkill_after_fork, start_zdevd, kill_zdevd, 120);
	check_add_case(s, "sigkill_after_fork_child_silent", sigkill_after_fork_child_silent,
		       start_zdevd, kill_zdevd, 120);
	check_add_case(s, "stores_hold_own_pages_only", stores_hold_own_pages_only, start_zdevd,
		       kill_zdevd, 120);
	check_add_case(s, "fork_child_sees_no_later_pages", fork_child_sees_no_later_pages,
		       start_zdevd, kill_zdevd, 120);
	check_add_case(s, "sigterm_then_no_device", sigterm_then_no_device, start_zdevd,
		       kill_zdevd, 120);
	check_add_case(s, "sigkill_keeps_coherent_pages", sigkill_keeps_coherent_pages,
		       start_coherent_zdevd, kill_zdevd, 120);
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
