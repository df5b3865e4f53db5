/* SPDX-License-Identifier: MIT */
/*
 * Scale: a device filled by several processes at once and torn down with all
 * of it in use, 100 000 exclusive pages in one process, and single pages
 * moved out of a 16 GiB range. Every byte is checked, and the process's
 * mappings stay few (a VMA a page would reach vm.max_map_count). The sizes
 * here keep make check short; bench/scale-bench goes to 4 GiB.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
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
#include "zdevd-check.h"
#include "zdevd-harness.h"

#define MIB (1ull << 20)
#define CLIENTS 4
#define CLIENT_BYTES (64 * MIB)
#define EXCLUSIVE_PAGES 100000ull
#define SPARSE_RANGE (16ull << 30)
#define SPARSE_STEP (8 * MIB)

static struct zdevd_instance zd;

static uint64_t word_of(uint64_t tag, size_t i)
{
	return (tag << 40) ^ (i * 0x9e3779b97f4a7c15ull);
}

static void fill(uint64_t *p, size_t bytes, uint64_t tag)
{
	for (size_t i = 0; i < bytes / sizeof(*p); i++)
		p[i] = word_of(tag, i);
}

static bool holds(const uint64_t *p, size_t bytes, uint64_t tag)
{
	for (size_t i = 0; i < bytes / sizeof(*p); i++)
		if (p[i] != word_of(tag, i))
			return false;
	return true;
}

/* The mappings of this process over [start, start + len): only the range's
 * own, as the rest of the process (a sanitizer's runtime among it) maps
 * what it likes meanwhile. */
static unsigned int vma_count(const void *start, size_t len)
{
	const uintptr_t lo = (uintptr_t)start, hi = lo + len;
	char line[512];
	unsigned int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && e > lo && s < hi)
			n++;
	}
	fclose(f);
	return n;
}

/* ---- a full device, torn down in use ---- */

/*
 * Client k: its share of the device there, a byte to ready_fd; at go, the
 * first half back by CPU faults and checked; at the second go (zdevd has
 * gone by then, having brought every page home), all of it checked.
 */
static int client_main(unsigned int k, int ready_fd, int go_fd)
{
	const size_t npages = CLIENT_BYTES / PG_SIZE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	char c;

	buf = mmap(NULL, CLIENT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 2;
	fill(buf, CLIENT_BYTES, k + 1);
	if (zdev_open(NULL, 0, &dev))
		return 3;
	if (zdev_migrate_to_device(dev, buf, npages, &res) || res.cpages != npages)
		return 4;
	if (write(ready_fd, "r", 1) != 1 || read(go_fd, &c, 1) != 1)
		return 5;
	if (!holds(buf, CLIENT_BYTES / 2, k + 1))
		return 6;
	if (write(ready_fd, "h", 1) != 1 || read(go_fd, &c, 1) != 1)
		return 7;
	if (!holds(buf, CLIENT_BYTES, k + 1))
		return 8;
	return 0;
}

START_TEST(full_device_torn_down_in_use)
{
	static const char *const args[] = { "--devices", "1", "--memory", "256M", NULL };
	int ready[CLIENTS][2], go[CLIENTS][2], status;
	struct zdevd_pool_status st;
	pid_t pid[CLIENTS];
	char c;

	zdevd_start(&zd, args);
	for (unsigned int k = 0; k < CLIENTS; k++) {
		ck_assert_int_eq(pipe(ready[k]), 0);
		ck_assert_int_eq(pipe(go[k]), 0);
		pid[k] = fork();
		ck_assert_int_ne(pid[k], -1);
		if (pid[k] == 0)
			_exit(client_main(k, ready[k][1], go[k][0]));
	}
	for (unsigned int k = 0; k < CLIENTS; k++)
		ck_assert_msg(read(ready[k][0], &c, 1) == 1, "client %u did not get its pages there",
			      k);
	ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
	ck_assert_uint_eq(st.used, CLIENTS * CLIENT_BYTES / PG_SIZE);
	ck_assert_uint_eq(st.used, st.limit);
	for (unsigned int k = 0; k < CLIENTS; k++) {
		ck_assert_int_eq(write(go[k][1], "g", 1), 1);
		ck_assert_msg(read(ready[k][0], &c, 1) == 1, "client %u lost its faulted half", k);
	}
	ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
	ck_assert_uint_eq(st.used, CLIENTS * CLIENT_BYTES / PG_SIZE / 2);
	/* The teardown finds every page still in use and brings it home. */
	ck_assert_int_eq(zdevd_stop(&zd), 0);
	for (unsigned int k = 0; k < CLIENTS; k++) {
		ck_assert_int_eq(write(go[k][1], "g", 1), 1);
		ck_assert_int_eq(waitpid(pid[k], &status, 0), pid[k]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "client %u: status %#x", k, status);
		close(ready[k][0]);
		close(ready[k][1]);
		close(go[k][0]);
		close(go[k][1]);
	}
}
END_TEST

/* ---- many exclusive pages ---- */

START_TEST(exclusive_pages_keep_mappings_few)
{
	const size_t bytes = EXCLUSIVE_PAGES * PG_SIZE;
	unsigned int granted, revoked;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;

	zdevd_start(&zd, NULL);
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(buf, MAP_FAILED);
	fill(buf, bytes, 0x77);
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_make_exclusive(dev, buf, EXCLUSIVE_PAGES, &res), 0);
	ck_assert_uint_eq(res.cpages, EXCLUSIVE_PAGES);
	/* Granted as one, it stays one mapping. */
	granted = vma_count(buf, bytes);
	ck_assert_uint_le(granted, 2);
	/* Every other page revoked by a CPU write: the worst order for VMAs. */
	for (size_t p = 0; p < EXCLUSIVE_PAGES; p += 2)
		buf[p * (PG_SIZE / sizeof(*buf))] = word_of(0x78, p);
	revoked = vma_count(buf, bytes);
	/* Far from vm.max_map_count (65530 by default), whatever the order. */
	ck_assert_msg(revoked < 10000, "%u mappings of the range after the revocations",
		      revoked);
	for (size_t p = 0; p < EXCLUSIVE_PAGES; p++) {
		const uint64_t *w = buf + p * (PG_SIZE / sizeof(*buf));
		const size_t i = p * (PG_SIZE / sizeof(*buf));

		ck_assert_uint_eq(w[0], p % 2 ? word_of(0x77, i) : word_of(0x78, p));
		ck_assert_uint_eq(w[1], word_of(0x77, i + 1));
	}
	ck_assert_int_eq(zdev_close(dev), 0);
	munmap(buf, bytes);
	ck_assert_int_eq(zdevd_stop(&zd), 0);
}
END_TEST

/* ---- a large sparse range ---- */

START_TEST(single_pages_of_a_16g_range)
{
	const size_t npages = SPARSE_RANGE / SPARSE_STEP;
	struct zdev_result res;
	struct zdevd_pool_status st;
	struct zdev *dev;
	char *range;

	zdevd_start(&zd, NULL);
	range = mmap(NULL, SPARSE_RANGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ck_assert_ptr_ne(range, MAP_FAILED);
	for (size_t i = 0; i < npages; i++)
		fill((uint64_t *)(range + i * SPARSE_STEP), PG_SIZE, i);
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	for (size_t i = 0; i < npages; i++) {
		ck_assert_int_eq(zdev_migrate_to_device(dev, range + i * SPARSE_STEP, 1, &res), 0);
		ck_assert_uint_eq(res.cpages, 1);
	}
	ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
	ck_assert_uint_eq(st.used, npages);
	/* Registering and write-protecting single pages splits nothing. */
	ck_assert_uint_le(vma_count(range, SPARSE_RANGE), 2);
	for (size_t i = 0; i < npages; i++)
		ck_assert(holds((uint64_t *)(range + i * SPARSE_STEP), PG_SIZE, i));
	ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
	ck_assert_uint_eq(st.used, 0);
	ck_assert_uint_le(vma_count(range, SPARSE_RANGE), 2);
	ck_assert_int_eq(zdev_close(dev), 0);
	munmap(range, SPARSE_RANGE);
	ck_assert_int_eq(zdevd_stop(&zd), 0);
}
END_TEST

int main(void)
{
	const char *why = zdevd_unavailable();
	Suite *s = suite_create("scale");

	check_add_case(s, "full_device_torn_down_in_use", full_device_torn_down_in_use, NULL, NULL,
		       300);
	check_add_case(s, "exclusive_pages_keep_mappings_few", exclusive_pages_keep_mappings_few,
		       NULL, NULL, 300);
	check_add_case(s, "single_pages_of_a_16g_range", single_pages_of_a_16g_range, NULL, NULL,
		       300);
	if (why) {
		srunner_free(srunner_create(s));
		return check_skip_all("%s", why);
	}
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
