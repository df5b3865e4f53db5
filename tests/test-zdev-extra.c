/* SPDX-License-Identifier: MIT */
/*
 * Conformance beyond the kernel's hmm-tests: what zdev promises as a daemon
 * serving processes (docs/architecture.md, docs/protocol.md, docs/errors.md). Writers racing
 * migrations lose no write; fork, kills, munmap and mremap leave the pool at
 * its baseline; the kernel itself can read into and out of device-resident
 * buffers; an exhausted pool moves what fits and loses nothing; a foreign
 * userfaultfd is refused; garbage on the socket harms no one.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdevpriv.h"
#include "page.h"
#include "proto.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define WORDS_PER_PAGE (PG_SIZE / sizeof(uint64_t))

static struct zdevd_instance zd;

/* ---- helpers ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct zdevd_pool_status pool_status(struct zdevd_instance *z, unsigned int device)
{
	struct zdevd_pool_status st;
	int ret = zdevd_pool_status(z, device, &st);

	ck_assert_msg(ret == 0, "zdevd status: %d (%s)", ret, strerror(-ret));
	return st;
}

/* Polls until device's pool has `want` pages in use, for up to ms; returns
 * the last count seen. */
static unsigned long long wait_pool_used(struct zdevd_instance *z, unsigned int device,
					 unsigned long long want, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	unsigned long long used;

	for (;;) {
		used = pool_status(z, device).used;
		if (used == want || now_ms() >= end)
			return used;
		usleep(10000);
	}
}

/* The pool's pages in use once the clients of earlier tests are gone (their
 * exit is noticed asynchronously). */
static unsigned long long pool_baseline(struct zdevd_instance *z, unsigned int device)
{
	uint64_t end = now_ms() + 2000;
	struct zdevd_pool_status st;

	for (;;) {
		st = pool_status(z, device);
		if (st.clients == 0 || now_ms() >= end)
			return st.used;
		usleep(10000);
	}
}

static void *map_pages(size_t npages)
{
	void *p = mmap(NULL, npages * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* The pattern word w of a buffer holds: distinct in every word and seed. */
static uint64_t pattern(uint64_t seed, uint64_t w)
{
	return (seed << 40) ^ (w * 0x9e3779b97f4a7c15ull) ^ w;
}

static void fill_pattern(void *buf, size_t npages, uint64_t seed)
{
	uint64_t *w = buf;

	for (uint64_t i = 0; i < npages * WORDS_PER_PAGE; i++)
		w[i] = pattern(seed, i);
}

/* Index of the first word that differs from the pattern, or -1. */
static long long check_pattern(const void *buf, size_t first_page, size_t npages, uint64_t seed)
{
	const volatile uint64_t *w = buf;

	for (uint64_t i = first_page * WORDS_PER_PAGE; i < (first_page + npages) * WORDS_PER_PAGE; i++)
		if (w[i] != pattern(seed, i))
			return (long long)i;
	return -1;
}

#define ASSERT_PATTERN(buf, first, n, seed)							\
	do {											\
		long long bad_ = check_pattern((buf), (first), (n), (seed));			\
		if (bad_ >= 0)									\
			ck_abort_msg("word %lld (page %lld) = 0x%016llx, expected 0x%016llx",	\
				     bad_, bad_ / (long long)WORDS_PER_PAGE,			\
				     (unsigned long long)((const uint64_t *)(buf))[bad_],	\
				     (unsigned long long)pattern((seed), (uint64_t)bad_));	\
	} while (0)

/* In a forked child no Check assertion: a failure prints and exits non-zero. */
#define CHILD_CHECK(cond, code)									\
	do {											\
		if (!(cond)) {									\
			fprintf(stderr, "%s:%d: child %d: check failed: %s\n", __FILE__,	\
				__LINE__, (int)getpid(), #cond);				\
			_exit(code);								\
		}										\
	} while (0)

static void wait_child_ok(pid_t pid, const char *who)
{
	int status = 0;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "%s did not exit (status 0x%x, signal %d)", who, status,
		      WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	ck_assert_msg(WEXITSTATUS(status) == 0, "%s failed with exit status %d", who,
		      WEXITSTATUS(status));
}

static int tmp_file(void)
{
	int fd = open("/tmp", O_TMPFILE | O_EXCL | O_RDWR, 0600);

	ck_assert_msg(fd >= 0, "O_TMPFILE in /tmp: %s", strerror(errno));
	return fd;
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 3 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", path,
		      strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* HELLO for this process; returns the proof address. */
static uint64_t raw_hello(int fd)
{
	union zmsg m;
	int devnode = -1, type;

	zmsg_init(&m, ZMSG_HELLO, 1);
	m.hello.version = ZDEV_PROTO_VERSION;
	m.hello.pid = getpid();
	ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
	type = zmsg_recv(fd, &m, &devnode);
	if (devnode >= 0)
		close(devnode);
	ck_assert_msg(type == ZMSG_HELLO_OK, "HELLO answered with %d (%s)", type,
		      type < 0 ? strerror(-type) : zmsg_type_name(type));
	ck_assert_int_eq(m.hello_ok.status, 0);
	ck_assert_uint_ne(m.hello_ok.proof_addr, 0);
	return m.hello_ok.proof_addr;
}

/* After a bad message the daemon answers with an error or closes the
 * connection (docs/protocol.md, "Validation"); silence with the connection open is neither. */
static void expect_refused(int fd, const char *what)
{
	union zmsg m;
	int type = zmsg_recv(fd, &m, NULL);

	if (type == -ECONNRESET || type == -EPIPE)
		return;
	ck_assert_msg(type != -EAGAIN && type != -EWOULDBLOCK,
		      "%s: no error reply and the connection still open after 3 s", what);
	ck_assert_msg(type >= 0, "%s: receiving the answer: %s", what, strerror(-type));
	if (type == ZMSG_REPLY)
		ck_assert_msg(m.reply.status < 0, "%s: answered with success", what);
	else if (type == ZMSG_HELLO_OK)
		ck_assert_msg(m.hello_ok.status < 0, "%s: answered with success", what);
	else
		ck_abort_msg("%s: answered with a %s", what, zmsg_type_name(type));
}

/* ---- writers racing migrations ---- */

#define RACE_PAGES 1024
#define RACE_MIGRATIONS 20
#define RACE_WRITERS 2

/* Writer t owns two words of every page: t and WORDS_PER_PAGE - 1 - t. */
static uint64_t owned_word(unsigned int t, unsigned int k, uint64_t page)
{
	return page * WORDS_PER_PAGE + (k ? WORDS_PER_PAGE - 1 - t : t);
}

struct writer {
	pthread_t thread;
	volatile uint64_t *buf;
	unsigned int id;
	atomic_bool *stop;
	uint64_t count[RACE_PAGES];	/* increments done on each page */
	uint64_t lost;			/* reads that did not see our last write */
	long long first_lost_word;
	uint64_t passes;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	w->first_lost_word = -1;
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		for (uint64_t p = 0; p < RACE_PAGES; p++) {
			for (unsigned int k = 0; k < 2; k++) {
				uint64_t idx = owned_word(w->id, k, p);
				uint64_t want = pattern(1, idx) + w->count[p];

				if (w->buf[idx] != want) {
					if (w->first_lost_word < 0)
						w->first_lost_word = (long long)idx;
					w->lost++;
				}
				w->buf[idx] = want + 1;
			}
			w->count[p]++;
		}
		w->passes++;
	}
	return NULL;
}

START_TEST(writers_race_migrations)
{
	atomic_bool stop = false;
	struct writer *w = calloc(RACE_WRITERS, sizeof(*w));
	uint64_t *buf = map_pages(RACE_PAGES);
	struct zdev *d;
	unsigned long long partial = 0, bad = 0;
	long long first_bad = -1;

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	fill_pattern(buf, RACE_PAGES, 1);
	for (unsigned int t = 0; t < RACE_WRITERS; t++) {
		w[t].buf = buf;
		w[t].id = t;
		w[t].stop = &stop;
		ck_assert_int_eq(pthread_create(&w[t].thread, NULL, writer_main, &w[t]), 0);
	}
	for (int i = 0; i < RACE_MIGRATIONS; i++) {
		struct zdev_result res = { 0 };
		int ret = zdev_migrate_to_device(d, buf, RACE_PAGES, &res);

		/* pages the writers pulled back meanwhile are not on the device */
		ck_assert_msg(ret == 0 || ret == -ENOENT, "migration %d to the device: %d (%s)", i,
			      ret, strerror(-ret));
		if (ret == 0)
			ck_assert_msg(res.cpages == RACE_PAGES, "migration %d to the device: cpages "
				      "%llu of %d", i, (unsigned long long)res.cpages, RACE_PAGES);
		else
			partial++;
		ret = zdev_migrate_to_system(d, buf, RACE_PAGES, &res);
		ck_assert_msg(ret == 0, "migration %d to system memory: %d (%s)", i, ret,
			      strerror(-ret));
	}
	atomic_store(&stop, true);
	for (unsigned int t = 0; t < RACE_WRITERS; t++)
		pthread_join(w[t].thread, NULL);
	printf("writers_race_migrations: %llu passes, %llu of %d migrations partial\n",
	       (unsigned long long)(w[0].passes + w[1].passes), partial, RACE_MIGRATIONS);

	for (unsigned int t = 0; t < RACE_WRITERS; t++)
		ck_assert_msg(w[t].lost == 0,
			      "writer %u: %llu reads did not see its own last write (first: word %lld)",
			      t, (unsigned long long)w[t].lost, w[t].first_lost_word);
	/* every word: a writer's exact count, or untouched */
	for (uint64_t p = 0; p < RACE_PAGES; p++) {
		for (uint64_t j = 0; j < WORDS_PER_PAGE; j++) {
			uint64_t idx = p * WORDS_PER_PAGE + j, want = pattern(1, idx);

			for (unsigned int t = 0; t < RACE_WRITERS; t++)
				if (idx == owned_word(t, 0, p) || idx == owned_word(t, 1, p))
					want += w[t].count[p];
			if (buf[idx] != want) {
				if (first_bad < 0)
					first_bad = (long long)idx;
				bad++;
			}
		}
	}
	ck_assert_msg(bad == 0, "%llu words differ from what the writers wrote (first: word %lld "
		      "= 0x%016llx)", bad, first_bad,
		      first_bad >= 0 ? (unsigned long long)buf[first_bad] : 0ull);
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(buf, RACE_PAGES * PG_SIZE);
	free(w);
}
END_TEST

/* ---- fork with device pages, then both processes exit ---- */

#define FORK_PAGES 512

START_TEST(fork_pool_back_to_baseline)
{
	unsigned long long base = pool_baseline(&zd, 0), used;
	int cpipe[2];
	pid_t p, c = -1;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	ck_assert_int_eq(pipe(cpipe), 0);
	p = fork();
	ck_assert_int_ne(p, -1);
	if (p == 0) {
		uint64_t *buf = map_pages(FORK_PAGES);
		struct zdev_result res = { 0 };
		struct zdevd_pool_status st;
		struct zdev *d;
		pid_t me = getpid(), child;
		int ret;

		close(cpipe[0]);
		fill_pattern(buf, FORK_PAGES, 2);
		ret = zdev_open(NULL, 0, &d);
		CHILD_CHECK(ret == 0, 2);
		ret = zdev_migrate_to_device(d, buf, FORK_PAGES, &res);
		if (ret || res.cpages != FORK_PAGES)
			fprintf(stderr, "parent: migrate: %d, cpages %llu\n", ret,
				(unsigned long long)res.cpages);
		CHILD_CHECK(ret == 0 && res.cpages == FORK_PAGES, 3);
		ret = zdevd_pool_status(&zd, 0, &st);
		if (!ret && st.used != base + FORK_PAGES)
			fprintf(stderr, "parent: pool used %llu, expected %llu\n", st.used,
				base + FORK_PAGES);
		CHILD_CHECK(ret == 0 && st.used == base + FORK_PAGES, 4);
		child = fork();
		CHILD_CHECK(child != -1, 5);
		if (child == 0) {
			/* The child: after the parent exited, its share of the
			 * device pages still holds the data before the fork. */
			uint64_t end = now_ms() + 5000;

			while (getppid() == me && now_ms() < end)
				usleep(1000);
			CHILD_CHECK(getppid() != me, 20);
			CHILD_CHECK(check_pattern(buf, 0, 3 * FORK_PAGES / 4, 2) < 0, 21);
			/* the last quarter stays on the device */
			_exit(0);
		}
		CHILD_CHECK(write(cpipe[1], &child, sizeof(child)) == sizeof(child), 6);
		/* The parent reads the first quarter back and rewrites the
		 * second (copy-on-write: the child keeps the old data). */
		CHILD_CHECK(check_pattern(buf, 0, FORK_PAGES / 4, 2) < 0, 7);
		fill_pattern(buf + FORK_PAGES / 4 * WORDS_PER_PAGE, FORK_PAGES / 4, 3);
		_exit(0);
	}
	close(cpipe[1]);
	if (read(cpipe[0], &c, sizeof(c)) != sizeof(c))
		c = -1;
	close(cpipe[0]);
	wait_child_ok(p, "the forking process");
	ck_assert_int_gt(c, 0);
	/* a subreaper: the orphaned child is ours to reap */
	wait_child_ok(c, "its fork child");

	used = wait_pool_used(&zd, 0, base, 2000);
	ck_assert_msg(used == base, "pool used %llu pages 2 s after both exited, baseline %llu", used,
		      base);
}
END_TEST

/* ---- a fork child that never claims its uffd ---- */

/*
 * A child forked by the raw system call, so that libzdev's fork handler does
 * not run and it never claims the uffd its fork event brought zdevd, and
 * gone at once. zdevd has no pid of it, hence no pidfd, yet its share of the
 * parent's device pages goes back to the pool: without that, the pool never
 * returned to its baseline.
 */
START_TEST(unclaimed_fork_child_lets_go_when_it_exits)
{
	unsigned long long base, used;
	pid_t p;

	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_FORK_SHARED);
	base = pool_baseline(&zd, 0);
	p = fork();
	ck_assert_int_ne(p, -1);
	if (p == 0) {
		uint64_t *buf = map_pages(FORK_PAGES);
		struct zdev_result res = { 0 };
		struct zdev *d;
		int status;
		pid_t c;

		fill_pattern(buf, FORK_PAGES, 4);
		CHILD_CHECK(zdev_open(NULL, 0, &d) == 0, 2);
		CHILD_CHECK(zdev_migrate_to_device(d, buf, FORK_PAGES, &res) == 0 &&
				    res.cpages == FORK_PAGES,
			    3);
		c = (pid_t)syscall(SYS_fork);
		if (c == 0)
			_exit(0);
		CHILD_CHECK(c > 0 && waitpid(c, &status, 0) == c, 4);
		/* The parent's own share comes home with its data. */
		CHILD_CHECK(zdev_migrate_to_system(d, buf, FORK_PAGES, &res) == 0, 5);
		CHILD_CHECK(check_pattern(buf, 0, FORK_PAGES, 4) < 0, 6);
		_exit(0);
	}
	wait_child_ok(p, "the forking process");
	used = wait_pool_used(&zd, 0, base, 5000);
	ck_assert_msg(used == base, "pool used %llu pages 5 s after both exited, baseline %llu",
		      used, base);
}
END_TEST

/* ---- clients killed with SIGKILL ---- */

#define KILL_PAGES 512
#define KILL_ROUNDS 10

/* The files zdevd has open. */
static unsigned int daemon_fds(void)
{
	char path[64];
	unsigned int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)zd.pid);
	dir = opendir(path);
	ck_assert_ptr_nonnull(dir);
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

#define QUICK_KILLS 40

START_TEST(sigkill_clients)
{
	unsigned long long base = pool_baseline(&zd, 0);
	/* + the memfd of the device's first chunk, if no test made it yet */
	unsigned int fds_allowed = daemon_fds() + 1, fds = 0;

	for (int round = 0; round < KILL_ROUNDS; round++) {
		/* 0: the client kills itself once migrated; 1: we kill it once
		 * migrated; 2: we kill it at a random moment (mid-handshake,
		 * mid-migration, ...) */
		int mode = round % 3, ready[2], status = 0;
		unsigned long long used;
		pid_t pid;
		char c;

		ck_assert_int_eq(pipe(ready), 0);
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			uint64_t *buf = map_pages(KILL_PAGES);
			struct zdev_result res = { 0 };
			struct zdev *d;
			int ret;

			close(ready[0]);
			fill_pattern(buf, KILL_PAGES, 4);
			ret = zdev_open(NULL, 0, &d);
			CHILD_CHECK(ret == 0, 2);
			ret = zdev_migrate_to_device(d, buf, KILL_PAGES, &res);
			if (ret || res.cpages != KILL_PAGES)
				fprintf(stderr, "client: migrate: %d, cpages %llu\n", ret,
					(unsigned long long)res.cpages);
			CHILD_CHECK(ret == 0 && res.cpages == KILL_PAGES, 3);
			if (mode == 0)
				kill(getpid(), SIGKILL);
			CHILD_CHECK(write(ready[1], "m", 1) == 1, 4);
			for (;;)
				pause();
		}
		close(ready[1]);
		if (mode == 1) {
			ck_assert_msg(read(ready[0], &c, 1) == 1, "round %d: the client died before "
				      "it migrated", round);
			used = pool_status(&zd, 0).used;
			ck_assert_msg(used == base + KILL_PAGES, "round %d: pool used %llu, expected "
				      "%llu", round, used, base + KILL_PAGES);
			kill(pid, SIGKILL);
		} else if (mode == 2) {
			unsigned int r = 0;

			if (getrandom(&r, sizeof(r), 0) != sizeof(r))
				r = (unsigned int)round * 1237u;
			usleep(r % 5000);
			kill(pid, SIGKILL);
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		close(ready[0]);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			      "round %d: the client was not killed but exited with status %d", round,
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		used = wait_pool_used(&zd, 0, base, 2000);
		ck_assert_msg(used == base, "round %d (mode %d): pool used %llu pages 2 s after the "
			      "kill, baseline %llu", round, mode, used, base);
	}
	/* Many more killed at random moments, quickly: nor does zdevd keep
	 * the dead clients' files (uffd, pidfd, pagemap) once it has seen
	 * them go, nor their pages. */
	for (int round = 0; round < QUICK_KILLS; round++) {
		unsigned int r = 0;
		pid_t pid = fork();

		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			uint64_t *buf = map_pages(KILL_PAGES);
			struct zdev_result res = { 0 };
			struct zdev *d;

			fill_pattern(buf, KILL_PAGES, 5);
			if (!zdev_open(NULL, 0, &d))
				zdev_migrate_to_device(d, buf, KILL_PAGES, &res);
			for (;;)
				pause();
		}
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (unsigned int)round * 7919u;
		usleep(r % 5000);
		kill(pid, SIGKILL);
		ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	}
	ck_assert_uint_eq(wait_pool_used(&zd, 0, base, 2000), base);
	for (int i = 0; i < 200 && (fds = daemon_fds()) > fds_allowed; i++)
		usleep(10000);
	ck_assert_msg(fds <= fds_allowed, "zdevd has %u files open after %d killed clients, at "
		      "most %u expected", fds, KILL_ROUNDS + QUICK_KILLS, fds_allowed);
}
END_TEST

/* ---- munmap and mremap of device pages ---- */

#define MAP_TEST_PAGES 512

START_TEST(munmap_frees_device_pages)
{
	unsigned long long base = pool_baseline(&zd, 0), used;
	uint64_t *buf = map_pages(MAP_TEST_PAGES);
	struct zdev_result res = { 0 };
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	fill_pattern(buf, MAP_TEST_PAGES, 5);
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, MAP_TEST_PAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, MAP_TEST_PAGES);
	used = pool_status(&zd, 0).used;
	ck_assert_msg(used == base + MAP_TEST_PAGES, "pool used %llu after the migration, expected "
		      "%llu", used, base + MAP_TEST_PAGES);

	ck_assert_int_eq(munmap(buf, MAP_TEST_PAGES * PG_SIZE), 0);
	used = wait_pool_used(&zd, 0, base, 1000);
	ck_assert_msg(used == base, "pool used %llu pages 1 s after the munmap, baseline %llu", used,
		      base);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

/* A fork child's device write to a page it shares with its parent is its
 * own, as the write fault's copy-on-write makes it in the kernel. */
START_TEST(fork_child_device_write_is_its_own)
{
	const size_t n = 16;
	uint64_t *buf = map_pages(n), page[WORDS_PER_PAGE];
	struct zdev_result res = { 0 };
	struct zdev *d;
	int status;
	pid_t pid;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	fill_pattern(buf, n, 8);
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, n, &res), 0);
	pid = fork();
	if (pid == 0) {
		struct zdev *cd;
		int ok;

		for (size_t i = 0; i < WORDS_PER_PAGE; i++)
			page[i] = 0xdeadbeef;
		ok = !zdev_open(NULL, 0, &cd) && !zdev_write(cd, buf, 1, page, &res) &&
		     buf[0] == 0xdeadbeef && buf[WORDS_PER_PAGE - 1] == 0xdeadbeef;
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %#x", status);
	ASSERT_PATTERN(buf, 0, n, 8);
	munmap(buf, n * PG_SIZE);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

START_TEST(mremap_moves_device_pages)
{
	const size_t n = MAP_TEST_PAGES, size = n * PG_SIZE;
	unsigned long long base = pool_baseline(&zd, 0), used;
	char *area = map_pages(2 * n), *moved;
	uint8_t *snap = malloc(n);
	struct zdev_result res = { 0 };
	unsigned long bad_snap = 0, first_bad_snap = 0;
	struct zdev *d;

	ck_assert_ptr_nonnull(snap);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	/* the second half is where the range moves to */
	ck_assert_int_eq(munmap(area + size, size), 0);
	fill_pattern(area, n, 6);
	ck_assert_int_eq(zdev_migrate_to_device(d, area, n, &res), 0);
	ck_assert_uint_eq(res.cpages, n);

	moved = mremap(area, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, area + size);
	ck_assert_msg(moved != MAP_FAILED, "mremap: %s", strerror(errno));
	ck_assert_ptr_eq(moved, area + size);

	/* the device pages moved with the range (as the kernel's swap-like
	 * device-private entries do); checked after the data */
	ck_assert_int_eq(zdev_snapshot(d, moved, n, snap, &res), 0);
	for (size_t i = 0; i < n; i++)
		if (snap[i] != (ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE) && !bad_snap++)
			first_bad_snap = i;

	ASSERT_PATTERN(moved, 0, n, 6);
	ck_assert_msg(bad_snap == 0, "after mremap, %lu of %zu pages are not device-private at the "
		      "new address (first: page %lu = 0x%02x)", bad_snap, n, first_bad_snap,
		      snap[first_bad_snap]);
	/* the CPU took every page back */
	used = wait_pool_used(&zd, 0, base, 1000);
	ck_assert_msg(used == base, "pool used %llu after reading everything back, baseline %llu",
		      used, base);
	munmap(moved, size);
	ck_assert_int_eq(zdev_close(d), 0);
	free(snap);
}
END_TEST

/* ---- the kernel reading and writing device-resident buffers ---- */

#define KREAD_PAGES 64

START_TEST(kernel_mode_read)
{
	const size_t size = KREAD_PAGES * PG_SIZE;
	uint64_t *file_data, *buf;
	struct zdev_result res = { 0 };
	struct zdev *d;
	int fd, out;
	ssize_t n;

	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_KERNEL_FAULTS);
	file_data = malloc(size);
	buf = map_pages(KREAD_PAGES);
	fd = tmp_file();
	out = tmp_file();
	ck_assert_ptr_nonnull(file_data);
	fill_pattern(file_data, KREAD_PAGES, 7);
	ck_assert_int_eq(pwrite(fd, file_data, size, 0), (ssize_t)size);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);

	/* read(2) into a buffer the device holds: a kernel-mode fault */
	memset(buf, 0xEE, size);
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, KREAD_PAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, KREAD_PAGES);
	n = pread(fd, buf, size, 0);
	ck_assert_msg(n == (ssize_t)size, "read(2) into device-resident memory: %zd (%s)", n,
		      n < 0 ? strerror(errno) : "short");
	ASSERT_PATTERN(buf, 0, KREAD_PAGES, 7);

	/* and write(2) out of one */
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, KREAD_PAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, KREAD_PAGES);
	n = pwrite(out, buf, size, 0);
	ck_assert_msg(n == (ssize_t)size, "write(2) from device-resident memory: %zd (%s)", n,
		      n < 0 ? strerror(errno) : "short");
	memset(file_data, 0, size);
	ck_assert_int_eq(pread(out, file_data, size, 0), (ssize_t)size);
	ASSERT_PATTERN(file_data, 0, KREAD_PAGES, 7);

	ck_assert_int_eq(zdev_close(d), 0);
	close(fd);
	close(out);
	munmap(buf, size);
	free(file_data);
}
END_TEST

/* ---- exclusive access held unmapped (the shim's stress policy) ---- */

#define HELD_PAGES 32

static struct zdev_stats stats_of(struct zdev *d)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	return st;
}

/* The kernel revokes a device-exclusive page for its own access too: a
 * read(2) into a held page, a write(2) out of one, and a CPU touch each
 * bring the data back, and nothing fails with EFAULT. */
START_TEST(held_exclusive_revoked_by_syscall)
{
	const size_t half = HELD_PAGES / 2 * PG_SIZE;
	uint64_t *buf, *file_data;
	struct zdev_result res = { 0 };
	struct zdev_stats before, after;
	struct zdev *d;
	int in, out;
	ssize_t n;

	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_KERNEL_FAULTS);
	buf = map_pages(HELD_PAGES);
	file_data = malloc(half);
	in = tmp_file();
	out = tmp_file();
	ck_assert_ptr_nonnull(file_data);
	fill_pattern(file_data, HELD_PAGES / 2, 11);
	ck_assert_int_eq(pwrite(in, file_data, half, 0), (ssize_t)half);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	fill_pattern(buf, HELD_PAGES, 12);
	before = stats_of(d);
	ck_assert_int_eq(zdevpriv_make_exclusive_held(d, buf, HELD_PAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, HELD_PAGES);
	after = stats_of(d);
	ck_assert_uint_eq(after.exclusive_grants - before.exclusive_grants, HELD_PAGES);
	ck_assert_uint_eq(after.pages_to_device, before.pages_to_device);

	/* The first half: read(2) into it. */
	n = pread(in, buf, half, 0);
	ck_assert_msg(n == (ssize_t)half, "read(2) into held pages: %zd (%s)", n,
		      n < 0 ? strerror(errno) : "short");
	ck_assert_int_eq(memcmp(buf, file_data, half), 0);
	/* The second half: write(2) out of it, then a CPU check. */
	n = pwrite(out, (char *)buf + half, half, 0);
	ck_assert_msg(n == (ssize_t)half, "write(2) from held pages: %zd (%s)", n,
		      n < 0 ? strerror(errno) : "short");
	ck_assert_int_eq(pread(out, file_data, half, 0), (ssize_t)half);
	ck_assert_int_eq(memcmp(file_data, (char *)buf + half, half), 0);
	for (size_t w = 0; w < half / sizeof(uint64_t); w++)
		ck_assert_uint_eq(buf[HELD_PAGES / 2 * WORDS_PER_PAGE + w],
				  pattern(12, HELD_PAGES / 2 * WORDS_PER_PAGE + w));

	after = stats_of(d);
	ck_assert_uint_eq(after.exclusive_revokes - before.exclusive_revokes, HELD_PAGES);
	ck_assert_uint_eq(after.cpu_faults, before.cpu_faults);
	ck_assert_uint_eq(after.device_pages, 0);

	ck_assert_int_eq(zdev_close(d), 0);
	close(in);
	close(out);
	munmap(buf, HELD_PAGES * PG_SIZE);
	free(file_data);
}
END_TEST

/* ---- a client that execs ---- */

#define EXEC_PAGES 16

/* The image after the exec: a client again under the same pid, whose
 * migrations work on its own new memory. Exit status 0 when they do. */
static int exec_image_main(void)
{
	uint64_t *buf = mmap(NULL, EXEC_PAGES * PG_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct zdev_result res = { 0 };
	struct zdev *d;

	if (buf == MAP_FAILED || zdev_open(NULL, 0, &d))
		return 2;
	fill_pattern(buf, EXEC_PAGES, 21);
	if (zdev_migrate_to_device(d, buf, EXEC_PAGES, &res) || res.cpages != EXEC_PAGES)
		return 3;
	if (check_pattern(buf, 0, EXEC_PAGES, 21) >= 0)
		return 4;
	return zdev_close(d) ? 5 : 0;
}

START_TEST(exec_makes_a_new_client)
{
	pid_t pid = fork();

	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		uint64_t *buf = mmap(NULL, EXEC_PAGES * PG_SIZE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct zdev_result res = { 0 };
		struct zdev *d;

		CHILD_CHECK(buf != MAP_FAILED, 10);
		CHILD_CHECK(zdev_open(NULL, 0, &d) == 0, 11);
		fill_pattern(buf, EXEC_PAGES, 20);
		CHILD_CHECK(zdev_migrate_to_device(d, buf, EXEC_PAGES, &res) == 0, 12);
		/* Device pages left behind, and a handle never closed: the
		 * old image's all the same. */
		execl("/proc/self/exe", "test-zdev-extra", "--exec-image", (char *)NULL);
		_exit(13);
	}
	wait_child_ok(pid, "the exec'd client");
}
END_TEST

/* ---- an exhausted pool ---- */

#define EXHAUST_PAGES 2048	/* twice the 4 MiB device */

/* Stops a daemon if this test process dies before it could: disarmed by a
 * byte, fired by the end of file. */
static pid_t guard_daemon(pid_t daemon, int *arm)
{
	int p[2];
	pid_t g;

	ck_assert_int_eq(pipe(p), 0);
	g = fork();
	ck_assert_int_ne(g, -1);
	if (g == 0) {
		char c;
		ssize_t n;

		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		if (n <= 0) {
			kill(daemon, SIGTERM);
			sleep(2);
			kill(daemon, SIGKILL);
		}
		_exit(0);
	}
	close(p[0]);
	*arm = p[1];
	return g;
}

START_TEST(pool_exhaustion)
{
	static const char *const args[] = { "--memory", "4M", "--chunk", "2M", NULL };
	struct zdevd_instance z2;
	uint8_t *snap = malloc(EXHAUST_PAGES);
	struct zdev_result res = { 0 };
	struct zdevd_pool_status st;
	unsigned long long used;
	size_t on_device = 0, outside = SIZE_MAX;
	uint64_t *buf;
	struct zdev *d;
	pid_t guard;
	int arm, ret;

	ck_assert_ptr_nonnull(snap);
	zdevd_start(&z2, args);
	guard = guard_daemon(z2.pid, &arm);
	st = pool_status(&z2, 0);
	ck_assert_uint_eq(st.limit, 1024);

	ck_assert_int_eq(zdev_open(z2.socket_path, 0, &d), 0);
	buf = map_pages(EXHAUST_PAGES);
	fill_pattern(buf, EXHAUST_PAGES, 8);

	/* what fits moves; the rest could not end on the device */
	ret = zdev_migrate_to_device(d, buf, EXHAUST_PAGES, &res);
	ck_assert_msg(ret == -ENOENT, "migrating 2048 pages to a 1024-page device: %d (%s), "
		      "expected -ENOENT", ret, strerror(-ret));
	ck_assert_uint_eq(res.cpages, 1024);
	used = pool_status(&z2, 0).used;
	ck_assert_uint_eq(used, 1024);

	ck_assert_int_eq(zdev_snapshot(d, buf, EXHAUST_PAGES, snap, &res), 0);
	for (size_t i = 0; i < EXHAUST_PAGES; i++) {
		if (snap[i] == (ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE))
			on_device++;
		else if (outside == SIZE_MAX)
			outside = i;
	}
	ck_assert_uint_eq(on_device, 1024);
	ck_assert_uint_ne(outside, SIZE_MAX);

	/* nothing more fits: nothing moved */
	ret = zdev_migrate_to_device(d, (char *)buf + outside * PG_SIZE, 1, &res);
	ck_assert_msg(ret == -ENOMEM, "migrating a page to a full device: %d (%s), expected -ENOMEM",
		      ret, strerror(-ret));

	/* every byte is intact, on the device or not */
	ASSERT_PATTERN(buf, 0, EXHAUST_PAGES, 8);
	used = wait_pool_used(&z2, 0, 0, 1000);
	ck_assert_msg(used == 0, "pool used %llu after the CPU took every page back", used);

	/* and the device is usable again */
	ck_assert_int_eq(zdev_migrate_to_device(d, buf, 1024, &res), 0);
	ck_assert_uint_eq(res.cpages, 1024);
	ASSERT_PATTERN(buf, 0, EXHAUST_PAGES, 8);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(buf, EXHAUST_PAGES * PG_SIZE);
	free(snap);
	ck_assert_int_eq(write(arm, "x", 1), 1);
	close(arm);
	waitpid(guard, NULL, 0);
	ck_assert_int_eq(zdevd_stop(&z2), 0);
}
END_TEST

/* ---- a foreign userfaultfd ---- */

/* A uffd of the kind zdevd's clients make: one that serves kernel-mode
 * faults where this process may have it, else a user-mode-only one. */
static int any_uffd(void)
{
	int fd = uffd_create(0);

	return fd < 0 ? uffd_create(UFFD_USER_MODE_ONLY) : fd;
}

/* True when a VMA of this process is registered with a userfaultfd. */
static bool any_uffd_vma(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmFlags:", 8) &&
		    (strstr(line, " um") || strstr(line, " uw") || strstr(line, " ui")))
			found = true;
	fclose(f);
	return found;
}

START_TEST(foreign_uffd_refused)
{
	union zmsg m;
	uint64_t proof_addr;
	int sv[2], child_uffd = -1, fd, type;
	void *page;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		/* The victim: a uffd of its own, handed to the parent. */
		uint8_t *canary = mmap(NULL, 4 * PG_SIZE, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char vec;
		uint64_t addr;
		int u;

		close(sv[0]);
		CHILD_CHECK(canary != MAP_FAILED, 2);
		memset(canary, 0xC3, 4 * PG_SIZE);
		u = any_uffd();
		CHILD_CHECK(u >= 0, 3);
		zmsg_init(&m, ZMSG_REPLY, 0);
		CHILD_CHECK(zmsg_send(sv[1], &m, u) == 0, 4);
		/* asleep until the parent is done, then look at ourselves */
		CHILD_CHECK(zmsg_recv(sv[1], &m, NULL) == ZMSG_REPLY, 5);
		addr = m.reply.cpages;
		for (size_t i = 0; i < 4 * PG_SIZE; i++)
			CHILD_CHECK(canary[i] == 0xC3, 6);
		/* nothing was mapped or registered in our address space */
		CHILD_CHECK(mincore((void *)(uintptr_t)addr, PG_SIZE, &vec) == -1 && errno == ENOMEM, 7);
		CHILD_CHECK(!any_uffd_vma(), 8);
		_exit(0);
	}
	close(sv[1]);
	type = zmsg_recv(sv[0], &m, &child_uffd);
	ck_assert_int_eq(type, ZMSG_REPLY);
	ck_assert_int_ge(child_uffd, 0);

	fd = raw_connect(zd.socket_path);
	proof_addr = raw_hello(fd);
	page = mmap((void *)(uintptr_t)proof_addr, PG_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ck_assert_msg(page != MAP_FAILED, "mapping the proof page: %s", strerror(errno));
	ck_assert_ptr_eq(page, (void *)(uintptr_t)proof_addr);

	/* our proof page, the child's uffd */
	zmsg_init(&m, ZMSG_UFFD, 2);
	m.req.addr = proof_addr;
	ck_assert_int_eq(zmsg_send(fd, &m, child_uffd), 0);
	type = zmsg_recv(fd, &m, NULL);
	if (type != -ECONNRESET && type != -EPIPE) {
		ck_assert_msg(type == ZMSG_REPLY, "the foreign uffd was answered with %d (%s)", type,
			      type < 0 ? strerror(-type) : zmsg_type_name(type));
		ck_assert_msg(m.reply.status == -EPERM, "the foreign uffd was answered with status "
			      "%d (%s), expected -EPERM", m.reply.status, strerror(-m.reply.status));
		/* and if the connection lives on, it serves nothing */
		zmsg_init(&m, ZMSG_OPEN, 3);
		if (zmsg_send(fd, &m, -1) == 0)
			expect_refused(fd, "OPEN after a refused uffd");
	}

	zmsg_init(&m, ZMSG_REPLY, 0);
	m.reply.cpages = proof_addr;
	ck_assert_int_eq(zmsg_send(sv[0], &m, -1), 0);
	wait_child_ok(pid, "the uffd's owner");
	close(fd);
	close(child_uffd);
	close(sv[0]);
	munmap(page, PG_SIZE);
}
END_TEST

/* ---- garbage on the socket ---- */

static size_t make_garbage(uint8_t *g, size_t max)
{
	uint32_t r[2];
	size_t len;

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		r[0] = (uint32_t)rand(), r[1] = (uint32_t)rand();
	len = 1 + r[0] % max;
	if (getrandom(g, len, 0) != (ssize_t)len)
		for (size_t i = 0; i < len; i++)
			g[i] = (uint8_t)rand();
	if ((r[1] & 1) && len >= sizeof(struct zmsg_hdr)) {
		/* half of them get past the magic */
		struct zmsg_hdr h;

		memcpy(&h, g, sizeof(h));
		h.magic = ZDEV_PROTO_MAGIC;
		h.type = (uint16_t)((r[1] >> 1) % (ZMSG_TYPE_END + 2));
		if (r[1] & 0x100)
			h.size = (uint16_t)len;
		memcpy(g, &h, sizeof(h));
	}
	return len;
}

/* count garbage datagrams, reconnecting whenever the daemon hangs up */
static void flood(unsigned int count)
{
	uint8_t g[sizeof(union zmsg) + 64];
	uint64_t end = now_ms() + 30000;
	unsigned int sent = 0, conns = 0;
	int fd = -1;

	while (sent < count) {
		ssize_t n;

		ck_assert_msg(now_ms() < end, "flood: only %u of %u datagrams sent in 30 s", sent,
			      count);
		if (fd < 0) {
			fd = raw_connect(zd.socket_path);
			conns++;
		}
		n = send(fd, g, make_garbage(g, sizeof(g)), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			sent++;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			usleep(1000);
		} else {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	printf("bad_input: %u garbage datagrams over %u connections\n", sent, conns);
}

/* count connections of one garbage datagram each, so that every one is
 * decoded (a burst on one connection ends at the first the daemon rejects) */
static void garbage_connections(unsigned int count)
{
	uint8_t g[sizeof(union zmsg) + 64];

	for (unsigned int i = 0; i < count; i++) {
		int fd = raw_connect(zd.socket_path);

		send(fd, g, make_garbage(g, sizeof(g)), MSG_NOSIGNAL);
		close(fd);
	}
}

/* In a forked child: a connection that said HELLO for this process; m holds
 * the answer. */
static int child_hello(union zmsg *m, int *devnode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 3 };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), type;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", zd.socket_path);
	CHILD_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, 3);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	zmsg_init(m, ZMSG_HELLO, 1);
	m->hello.version = ZDEV_PROTO_VERSION;
	m->hello.pid = getpid();
	CHILD_CHECK(zmsg_send(fd, m, -1) == 0, 4);
	type = zmsg_recv(fd, m, devnode);
	CHILD_CHECK(type == ZMSG_HELLO_OK && m->hello_ok.status == 0, 5);
	return fd;
}

/* A client in a process of its own, speaking the protocol itself, asks for
 * impossible things; each is refused. Exits 0 when all were. */
static void raw_client_bad_requests(void)
{
	static const struct {
		int type;
		uint32_t device;
		uint64_t addr_off, npages;
		bool bad_buf;
	} reqs[] = {
		{ ZMSG_READ, 0, 0, 1ull << 50, false },
		{ ZMSG_MIGRATE_TO_DEV, 0, 0, UINT64_MAX, false },
		{ ZMSG_WRITE, 0, 0, UINT64_MAX / 4096 + 1, false },
		{ ZMSG_SNAPSHOT, 0, 0, 0, false },
		{ ZMSG_READ, 0, 123, 1, false },
		{ ZMSG_READ, 99, 0, 1, false },
		{ ZMSG_READ, 0, 0, 1, true },
		{ ZMSG_MIGRATE_TO_SYS, 0, 0, 1ull << 62, false },
	};
	uint8_t *mem = mmap(NULL, 4 * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
	uint64_t proof;
	union zmsg m;
	void *page;
	int fd, u, type, devnode = -1;

	CHILD_CHECK(mem != MAP_FAILED, 2);
	memset(mem, 0x5A, 4 * PG_SIZE);
	/* First a wrong fd: /dev/null for a uffd. A process zdevd serves
	 * already is not asked for a uffd at all, so this one, which is no
	 * client yet, tries. */
	for (int attempt = 0; attempt < 2; attempt++) {
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		CHILD_CHECK(nul >= 0, 3);
		fd = child_hello(&m, &devnode);
		CHILD_CHECK(m.hello_ok.proof_addr != 0, 5);
		zmsg_init(&m, ZMSG_UFFD, 2);
		m.req.addr = m.hello_ok.proof_addr;
		/* the second time, the proof address is one it was not given */
		if (attempt)
			m.req.addr += PG_SIZE;
		CHILD_CHECK(zmsg_send(fd, &m, nul) == 0, 12);
		type = zmsg_recv(fd, &m, NULL);
		CHILD_CHECK(type == -ECONNRESET || (type == ZMSG_REPLY && m.reply.status < 0), 13);
		close(nul);
		close(fd);
		if (devnode >= 0)
			close(devnode);
		devnode = -1;
	}
	fd = child_hello(&m, &devnode);
	prctl(PR_SET_PTRACER, (unsigned long)m.hello_ok.daemon_pid, 0, 0, 0);
	proof = m.hello_ok.proof_addr;
	page = mmap((void *)(uintptr_t)proof, PG_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHILD_CHECK(page == (void *)(uintptr_t)proof, 6);
	u = any_uffd();
	CHILD_CHECK(u >= 0, 7);
	zmsg_init(&m, ZMSG_UFFD, 2);
	m.req.addr = proof;
	CHILD_CHECK(zmsg_send(fd, &m, u) == 0, 8);
	type = zmsg_recv(fd, &m, NULL);
	if (type != ZMSG_REPLY || m.reply.status != 0)
		fprintf(stderr, "raw client: UFFD answered %d, status %d\n", type, m.reply.status);
	CHILD_CHECK(type == ZMSG_REPLY && m.reply.status == 0, 9);
	munmap(page, PG_SIZE);
	close(u);
	zmsg_init(&m, ZMSG_OPEN, 3);
	CHILD_CHECK(zmsg_send(fd, &m, -1) == 0, 10);
	type = zmsg_recv(fd, &m, NULL);
	CHILD_CHECK(type == ZMSG_REPLY && m.reply.status == 0, 11);

	for (unsigned int i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		zmsg_init(&m, (enum zmsg_type)reqs[i].type, 10 + i);
		m.req.device = reqs[i].device;
		m.req.addr = (uint64_t)(uintptr_t)mem + reqs[i].addr_off;
		m.req.npages = reqs[i].npages;
		m.req.buf = reqs[i].bad_buf ? 16 : (uint64_t)(uintptr_t)(mem + 2 * PG_SIZE);
		if (zmsg_send(fd, &m, -1))
			_exit(0);	/* hung up on us: refused too */
		do
			type = zmsg_recv(fd, &m, NULL);
		while (type == ZMSG_ZAP);
		if (type == -ECONNRESET)
			_exit(0);
		if (type != ZMSG_REPLY || m.reply.status >= 0)
			fprintf(stderr, "raw client: request %u (%s) answered %d, status %d\n", i,
				zmsg_type_name(reqs[i].type), type, m.reply.status);
		CHILD_CHECK(type == ZMSG_REPLY && m.reply.status < 0, 20 + (int)i);
	}
	for (size_t i = 0; i < 4 * PG_SIZE; i++)
		CHILD_CHECK(mem[i] == 0x5A, 40);
	_exit(0);
}

/* A process that never was a client, becoming one: exits 0 when served. */
static void new_client(void)
{
	uint64_t *buf = map_pages(64);
	struct zdev_result res = { 0 };
	struct zdev *cd;
	int ret;

	fill_pattern(buf, 64, 10);
	ret = zdev_open(NULL, 0, &cd);
	if (ret)
		fprintf(stderr, "new client: zdev_open: %d (%s)\n", ret, strerror(-ret));
	CHILD_CHECK(ret == 0, 2);
	ret = zdev_migrate_to_device(cd, buf, 64, &res);
	if (ret || res.cpages != 64)
		fprintf(stderr, "new client: migrate: %d, cpages %llu\n", ret,
			(unsigned long long)res.cpages);
	CHILD_CHECK(ret == 0 && res.cpages == 64, 3);
	CHILD_CHECK(check_pattern(buf, 0, 64, 10) < 0, 4);
	CHILD_CHECK(zdev_close(cd) == 0, 5);
	_exit(0);
}

/* Forks a process that runs fn once it is told to (a byte on *go), so that
 * it is no fork child of a zdev client; the end of file makes it exit. */
static pid_t fork_waiting(void (*fn)(void), int *go)
{
	int p[2];
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		char c;

		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(1);
		close(p[0]);
		fn();
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

static void run_now(pid_t pid, int go, const char *who)
{
	ck_assert_int_eq(write(go, "g", 1), 1);
	close(go);
	wait_child_ok(pid, who);
}

START_TEST(bad_input)
{
	struct zdev_result res = { 0 };
	uint64_t *a_buf = map_pages(64);
	uint8_t junk[64];
	struct zdev *d;
	union zmsg m;
	pid_t raw_pid, new_pid;
	int fd, raw_go, new_go;

	/* the clients that come after the garbage, forked before we are one */
	raw_pid = fork_waiting(raw_client_bad_requests, &raw_go);
	new_pid = fork_waiting(new_client, &new_go);

	/* a client minding its business all along */
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	fill_pattern(a_buf, 64, 9);
	ck_assert_int_eq(zdev_migrate_to_device(d, a_buf, 64, &res), 0);
	ck_assert_uint_eq(res.cpages, 64);

	/* garbage bytes */
	fd = raw_connect(zd.socket_path);
	ck_assert_int_eq(getrandom(junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
	ck_assert_int_eq(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	expect_refused(fd, "garbage bytes");
	close(fd);

	/* a truncated HELLO: part of its header, then the header alone */
	zmsg_init(&m, ZMSG_HELLO, 1);
	m.hello.version = ZDEV_PROTO_VERSION;
	m.hello.pid = getpid();
	fd = raw_connect(zd.socket_path);
	ck_assert_int_eq(send(fd, &m, 10, MSG_NOSIGNAL), 10);
	expect_refused(fd, "10 bytes of a HELLO");
	close(fd);
	fd = raw_connect(zd.socket_path);
	ck_assert_int_eq(send(fd, &m, sizeof(struct zmsg_hdr), MSG_NOSIGNAL),
			 (ssize_t)sizeof(struct zmsg_hdr));
	expect_refused(fd, "the header of a HELLO alone");
	close(fd);

	/* a HELLO of the wrong size: longer, saying so; longer, saying not;
	 * shorter, saying so */
	fd = raw_connect(zd.socket_path);
	m.hdr.size = sizeof(struct zmsg_hello) + 8;
	ck_assert_int_eq(send(fd, &m, sizeof(struct zmsg_hello) + 8, MSG_NOSIGNAL),
			 (ssize_t)sizeof(struct zmsg_hello) + 8);
	expect_refused(fd, "a HELLO 8 bytes too long");
	close(fd);
	fd = raw_connect(zd.socket_path);
	m.hdr.size = sizeof(struct zmsg_hello);
	ck_assert_int_eq(send(fd, &m, sizeof(struct zmsg_hello) + 8, MSG_NOSIGNAL),
			 (ssize_t)sizeof(struct zmsg_hello) + 8);
	expect_refused(fd, "a HELLO whose size says 8 bytes less than it has");
	close(fd);
	fd = raw_connect(zd.socket_path);
	m.hdr.size = sizeof(struct zmsg_hello) - 4;
	ck_assert_int_eq(send(fd, &m, sizeof(struct zmsg_hello) - 4, MSG_NOSIGNAL),
			 (ssize_t)sizeof(struct zmsg_hello) - 4);
	expect_refused(fd, "a HELLO 4 bytes short");
	close(fd);

	/* a HELLO speaking for another process */
	fd = raw_connect(zd.socket_path);
	zmsg_init(&m, ZMSG_HELLO, 1);
	m.hello.version = ZDEV_PROTO_VERSION;
	m.hello.pid = getppid();
	ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
	expect_refused(fd, "a HELLO with another process's pid");
	close(fd);

	/* huge requests before any HELLO */
	fd = raw_connect(zd.socket_path);
	zmsg_init(&m, ZMSG_MIGRATE_TO_DEV, 1);
	m.req.addr = 1ull << 30;
	m.req.npages = 1ull << 62;
	ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
	expect_refused(fd, "a 2^62-page migration before HELLO");
	close(fd);
	fd = raw_connect(zd.socket_path);
	zmsg_init(&m, ZMSG_READ, 1);
	m.req.addr = (uint64_t)(uintptr_t)a_buf;
	m.req.npages = UINT64_MAX;
	m.req.buf = (uint64_t)(uintptr_t)a_buf;
	ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
	expect_refused(fd, "a 2^64-page read before HELLO");
	close(fd);

	/* a flood, then many connections of one bad datagram each */
	flood(1000);
	garbage_connections(300);

	/* impossible requests from a client that did its handshake right */
	run_now(raw_pid, raw_go, "the raw client");

	/* the daemon lives, the first client is unharmed */
	ck_assert_int_eq(kill(zd.pid, 0), 0);
	ASSERT_PATTERN(a_buf, 0, 64, 9);
	ck_assert_int_eq(zdev_migrate_to_device(d, a_buf, 64, &res), 0);
	ck_assert_uint_eq(res.cpages, 64);
	ASSERT_PATTERN(a_buf, 0, 64, 9);

	/* and a new client is served */
	run_now(new_pid, new_go, "the new client");
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(a_buf, 64 * PG_SIZE);
}
END_TEST

#define ADD_TEST(s, test) check_add_case(s, #test, test, NULL, NULL, 60)

static Suite *extra_suite(void)
{
	Suite *s = suite_create("zdev-extra");

	ADD_TEST(s, writers_race_migrations);
	ADD_TEST(s, kernel_mode_read);
	ADD_TEST(s, held_exclusive_revoked_by_syscall);
	ADD_TEST(s, exec_makes_a_new_client);
	ADD_TEST(s, pool_exhaustion);
	ADD_TEST(s, fork_pool_back_to_baseline);
	ADD_TEST(s, unclaimed_fork_child_lets_go_when_it_exits);
	ADD_TEST(s, sigkill_clients);
	ADD_TEST(s, munmap_frees_device_pages);
	ADD_TEST(s, mremap_moves_device_pages);
	ADD_TEST(s, fork_child_device_write_is_its_own);
	ADD_TEST(s, foreign_uffd_refused);
	ADD_TEST(s, bad_input);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--exec-image"))
		return exec_image_main();
	return run_suite_with_zdevd(&zd, NULL, extra_suite());
}
