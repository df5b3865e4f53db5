/* SPDX-License-Identifier: MIT */
/*
 * A process's statistics (zdev_get_stats(3), docs/protocol.md): its CPU
 * faults on device pages fill its own latency histogram, over every device;
 * the peak of its device pages is the most it had at once; a fork child's
 * figures are its own; a caller built against version 1 of struct
 * zdev_stats gets no more than it has room for. The daemon's STATUS counts
 * every client process, fork children too, and each pool's peak.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/zdevpriv.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

static struct zdevd_instance zd;

/* ---- helpers ---- */

/* In a forked child no Check assertion: a failure prints and exits non-zero. */
#define CHILD_CHECK(cond, code)									\
	do {											\
		if (!(cond)) {									\
			fprintf(stderr, "%s:%d: child %d: check failed: %s\n", __FILE__,	\
				__LINE__, (int)getpid(), #cond);				\
			_exit(code);								\
		}										\
	} while (0)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* npages of anonymous memory, each page holding its index: small pages
 * only, so that a CPU fault brings back exactly one. */
static uint64_t *map_filled(size_t npages)
{
	uint64_t *p = mmap(NULL, npages * PG_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_eq(madvise(p, npages * PG_SIZE, MADV_NOHUGEPAGE), 0);
	for (size_t i = 0; i < npages; i++)
		p[i * (PG_SIZE / sizeof(*p))] = i + 1;
	return p;
}

/* Reads the first word of pages [first, first + n): true if each still
 * holds its index. */
static bool touch(const uint64_t *p, size_t first, size_t n)
{
	const volatile uint64_t *w = p;
	bool ok = true;

	for (size_t i = first; i < first + n; i++)
		ok &= w[i * (PG_SIZE / sizeof(*w))] == i + 1;
	return ok;
}

static void migrate(struct zdev *d, uint64_t *p, size_t first, size_t n)
{
	struct zdev_result res = { 0 };

	ck_assert_int_eq(zdev_migrate_to_device(d, p + first * (PG_SIZE / sizeof(*p)), n, &res),
			 0);
	ck_assert_uint_eq(res.cpages, n);
}

static struct zdev_stats stats(struct zdev *d)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	ck_assert_uint_eq(st.size, sizeof(st));
	ck_assert_uint_eq(st.version, ZDEV_STATS_VERSION);
	return st;
}

/* The process's histogram through d: the sum of its buckets; *max_ns the
 * longest fault. -errno as the call returned it, -ERANGE for a histogram
 * not of LATHIST_BUCKETS buckets. No Check assertion: fork children use it. */
static long long hist_sum(struct zdev *d, uint64_t *max_ns)
{
	uint64_t b[LATHIST_BUCKETS + 4];
	long long sum = 0;
	int n;

	n = zdevpriv_fault_hist(d, b, LATHIST_BUCKETS + 4, max_ns);
	if (n < 0)
		return n;
	if (n != LATHIST_BUCKETS)
		return -ERANGE;
	for (int i = 0; i < n; i++)
		sum += (long long)b[i];
	return sum;
}

static unsigned long long status_clients_total(void)
{
	struct zdevd_pool_status st;

	ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
	return st.clients_total;
}

/* ---- the histogram ---- */

/*
 * Every CPU touch of a device page is one fault in the process's histogram,
 * whichever device held the page: the buckets sum to the cpu_faults of both
 * devices, and either handle reads the same histogram.
 */
START_TEST(cpu_faults_fill_the_histogram)
{
	const size_t n = 64, t0 = 40, t1 = 9;
	uint64_t *p = map_filled(2 * n), max0 = 0, max1 = 0;
	struct zdev_stats s0, s1;
	struct zdev *d0, *d1;

	ck_assert_int_eq(zdev_open(NULL, 0, &d0), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &d1), 0);
	s0 = stats(d0);
	ck_assert_uint_eq(s0.cpu_faults, 0);
	ck_assert_int_eq(hist_sum(d0, &max0), 0);
	ck_assert_uint_eq(max0, 0);
	ck_assert_uint_eq(s0.fault_max_ns, 0);

	migrate(d0, p, 0, n);
	migrate(d1, p, n, n);
	ck_assert(touch(p, 0, t0));
	ck_assert(touch(p, n, t1));

	s0 = stats(d0);
	s1 = stats(d1);
	ck_assert_uint_eq(s0.cpu_faults, t0);
	ck_assert_uint_eq(s1.cpu_faults, t1);
	ck_assert_int_eq(hist_sum(d0, &max0), (long long)(t0 + t1));
	ck_assert_int_eq(hist_sum(d1, &max1), (long long)(t0 + t1));
	ck_assert_uint_gt(s0.fault_max_ns, 0);
	ck_assert_uint_eq(max0, s0.fault_max_ns);
	ck_assert_uint_eq(max1, s0.fault_max_ns);
	ck_assert_uint_eq(s1.fault_max_ns, s0.fault_max_ns);
	ck_assert_uint_gt(s0.fault_p50_ns, 0);
	ck_assert_uint_le(s0.fault_p50_ns, s0.fault_p99_ns);
	ck_assert_uint_le(s0.fault_p99_ns, s0.fault_max_ns);
	ck_assert_uint_eq(s1.fault_p50_ns, s0.fault_p50_ns);
	ck_assert_uint_eq(s1.fault_p99_ns, s0.fault_p99_ns);

	ck_assert_int_eq(zdev_close(d1), 0);
	ck_assert_int_eq(zdev_close(d0), 0);
	munmap(p, 2 * n * PG_SIZE);
}
END_TEST

/* zdevpriv_fault_hist fills no more buckets than asked, and refuses
 * nowhere to put them. */
START_TEST(fault_hist_fills_what_it_is_asked)
{
	const size_t n = 8;
	uint64_t *p = map_filled(n), b[LATHIST_BUCKETS], max = 0;
	long long sum = 0;
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	migrate(d, p, 0, n);
	ck_assert(touch(p, 0, n));

	for (unsigned int i = 0; i < LATHIST_BUCKETS; i++)
		b[i] = UINT64_MAX;
	ck_assert_int_eq(zdevpriv_fault_hist(d, b, 3, NULL), 3);
	for (unsigned int i = 3; i < LATHIST_BUCKETS; i++)
		ck_assert_uint_eq(b[i], UINT64_MAX);
	ck_assert_int_eq(zdevpriv_fault_hist(d, b, LATHIST_BUCKETS, &max), LATHIST_BUCKETS);
	for (unsigned int i = 0; i < LATHIST_BUCKETS; i++)
		sum += (long long)b[i];
	ck_assert_int_eq(sum, (long long)n);
	ck_assert_uint_gt(max, 0);
	ck_assert_int_eq(zdevpriv_fault_hist(d, NULL, 0, &max), 0);
	ck_assert_int_eq(zdevpriv_fault_hist(d, NULL, 1, NULL), -EINVAL);
	ck_assert_int_eq(zdevpriv_fault_hist(NULL, b, 1, NULL), -EINVAL);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, n * PG_SIZE);
}
END_TEST

/* ---- the peak ---- */

/* Migrate N, bring them back, migrate M < N: the peak stays N; M and then
 * N more on top of them raise it to M + N. */
START_TEST(peak_is_the_most_pages_at_once)
{
	const size_t n = 48, m = 16;
	uint64_t *p = map_filled(2 * n);
	struct zdev_result res = { 0 };
	struct zdev_stats st;
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	ck_assert_uint_eq(stats(d).peak_device_pages, 0);
	migrate(d, p, 0, n);
	ck_assert_int_eq(zdev_migrate_to_system(d, p, n, &res), 0);
	ck_assert_uint_eq(res.cpages, n);
	migrate(d, p, 0, m);
	st = stats(d);
	ck_assert_uint_eq(st.device_pages, m);
	ck_assert_uint_eq(st.peak_device_pages, n);

	migrate(d, p, n, n);
	st = stats(d);
	ck_assert_uint_eq(st.device_pages, m + n);
	ck_assert_uint_eq(st.peak_device_pages, m + n);
	ck_assert(touch(p, 0, 2 * n));
	st = stats(d);
	ck_assert_uint_eq(st.device_pages, 0);
	ck_assert_uint_eq(st.peak_device_pages, m + n);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, 2 * n * PG_SIZE);
}
END_TEST

/* ---- fork ---- */

/* The child of a fork starts with the device pages it shares with its
 * parent as its peak, and with no faults: what it touches is counted as its
 * own, and nothing of it as its parent's. */
static void fork_child(uint64_t *p, size_t first, size_t shared, size_t k)
{
	struct zdev_stats st = { .size = sizeof(st) };
	uint64_t max = 1;
	struct zdev *cd;

	CHILD_CHECK(zdev_open(NULL, 0, &cd) == 0, 2);
	CHILD_CHECK(zdev_get_stats(cd, &st) == 0, 3);
	CHILD_CHECK(st.cpu_faults == 0 && st.pages_to_device == 0, 4);
	CHILD_CHECK(st.device_pages == shared && st.peak_device_pages == shared, 5);
	CHILD_CHECK(st.fault_max_ns == 0 && hist_sum(cd, &max) == 0 && max == 0, 6);
	CHILD_CHECK(touch(p, first, k), 7);
	CHILD_CHECK(zdev_get_stats(cd, &st) == 0, 8);
	CHILD_CHECK(st.cpu_faults == k && st.device_pages == shared - k, 9);
	CHILD_CHECK(st.peak_device_pages == shared, 10);
	CHILD_CHECK(hist_sum(cd, &max) == (long long)k && max > 0, 11);
	_exit(0);
}

START_TEST(fork_child_stats_are_its_own)
{
	const size_t n = 32, t = 5, k = 11;
	uint64_t *p, max = 0;
	struct zdev_stats before, after;
	struct zdev *d;
	int status;
	pid_t pid;

	/* The child's counts are of the device pages it shares. */
	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_FORK_SHARED);
	p = map_filled(n);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	migrate(d, p, 0, n);
	ck_assert(touch(p, 0, t));
	before = stats(d);
	ck_assert_uint_eq(before.cpu_faults, t);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		fork_child(p, t, n - t, k);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: status %#x (exit %d)", status, WEXITSTATUS(status));

	after = stats(d);
	ck_assert_uint_eq(after.cpu_faults, t);
	ck_assert_uint_eq(after.device_pages, n - t);
	ck_assert_uint_eq(after.peak_device_pages, n);
	ck_assert_int_eq(hist_sum(d, &max), (long long)t);
	ck_assert_uint_eq(max, before.fault_max_ns);
	ck_assert_uint_eq(after.fault_max_ns, before.fault_max_ns);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, n * PG_SIZE);
}
END_TEST

/* ---- versions ---- */

/* struct zdev_stats as version 1 of the header had it. */
struct zdev_stats_v1 {
	uint32_t version;
	uint32_t size;
	uint64_t cpu_faults;
	uint64_t device_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	uint64_t device_pages;
	uint64_t pool_pages_total;
	uint64_t pool_pages_used;
	uint64_t pool_limit_pages;
};

_Static_assert(sizeof(struct zdev_stats_v1) == offsetof(struct zdev_stats, peak_device_pages),
	       "version 2 only adds at the end");

/* A caller built against version 1 gets its fields, and nothing past them. */
START_TEST(version_1_caller_is_not_written_past)
{
	const size_t n = 8;
	uint64_t *p = map_filled(n);
	struct {
		struct zdev_stats_v1 st;
		unsigned char after[sizeof(struct zdev_stats)];
	} old;
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	migrate(d, p, 0, n);
	ck_assert(touch(p, 0, 3));
	memset(&old, 0xa5, sizeof(old));
	old.st.size = sizeof(old.st);

	ck_assert_int_eq(zdev_get_stats(d, (struct zdev_stats *)&old.st), 0);
	ck_assert_uint_eq(old.st.size, sizeof(old.st));
	ck_assert_uint_eq(old.st.version, ZDEV_STATS_VERSION);
	ck_assert_uint_eq(old.st.cpu_faults, 3);
	ck_assert_uint_eq(old.st.pages_to_device, n);
	ck_assert_uint_eq(old.st.device_pages, n - 3);
	ck_assert_uint_gt(old.st.pool_limit_pages, 0);
	for (size_t i = 0; i < sizeof(old.after); i++)
		ck_assert_msg(old.after[i] == 0xa5, "byte %zu past the version 1 struct written",
			      i);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, n * PG_SIZE);
}
END_TEST

/* ---- the daemon's STATUS ---- */

/* Polls until STATUS counts `want` client processes ever, for up to ms;
 * returns the last count seen. */
static unsigned long long wait_clients_total(unsigned long long want, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	unsigned long long total;

	for (;;) {
		total = status_clients_total();
		if (total >= want || now_ms() >= end)
			return total;
		usleep(10000);
	}
}

/* A fork child is a client from its fork, once, whether it says hello
 * (zdev_open) or not; without fork events zdevd knows only of those that
 * say hello. */
START_TEST(clients_total_counts_fork_children)
{
	const size_t n = 8;
	uint64_t *p = map_filled(n), features = 0;
	unsigned long long before, total, silent;
	struct zdev *d;
	int status;
	pid_t pid;

	before = status_clients_total();
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	migrate(d, p, 0, n);
	ck_assert_uint_eq(status_clients_total(), before + 1);
	ck_assert_int_eq(zdev_get_features(d, &features), 0);
	silent = features & ZDEV_FEATURE_FORK_SHARED ? 1 : 0;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct zdev *cd;

		_exit(zdev_open(NULL, 0, &cd) ? 2 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %#x", status);
	ck_assert_uint_eq(status_clients_total(), before + 2);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	/* Its fork event is read by the loop, so it may be counted late. */
	total = silent ? wait_clients_total(before + 3, 2000) : status_clients_total();
	ck_assert_msg(total == before + 2 + silent, "clients_total %llu after a silent fork "
		      "child, expected %llu", total, before + 2 + silent);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, n * PG_SIZE);
}
END_TEST

/* The pool's peak holds the pages a process had, after they went back. */
START_TEST(pool_peak_holds_a_process_pages)
{
	const size_t n = 200;
	uint64_t *p = map_filled(n);
	struct zdevd_pool_status st;
	struct zdev *d;

	ck_assert_int_eq(zdev_open(NULL, 1, &d), 0);
	migrate(d, p, 0, n);
	ck_assert(touch(p, 0, n));
	ck_assert_int_eq(zdevd_pool_status(&zd, 1, &st), 0);
	ck_assert_uint_lt(st.used, n);
	ck_assert_msg(st.peak >= n, "pool peak %llu, below the %zu pages the process had",
		      st.peak, n);
	ck_assert_uint_ge(st.peak, st.used);

	ck_assert_int_eq(zdev_close(d), 0);
	munmap(p, n * PG_SIZE);
}
END_TEST

#define ADD_TEST(s, test) check_add_case(s, #test, test, NULL, NULL, 60)

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");

	ADD_TEST(s, cpu_faults_fill_the_histogram);
	ADD_TEST(s, fault_hist_fills_what_it_is_asked);
	ADD_TEST(s, peak_is_the_most_pages_at_once);
	ADD_TEST(s, fork_child_stats_are_its_own);
	ADD_TEST(s, version_1_caller_is_not_written_past);
	ADD_TEST(s, clients_total_counts_fork_children);
	ADD_TEST(s, pool_peak_holds_a_process_pages);
	return s;
}

int main(void)
{
	return run_suite_with_zdevd(&zd, NULL, stats_suite());
}
