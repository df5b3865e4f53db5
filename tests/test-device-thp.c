/* SPDX-License-Identifier: MIT */
/*
 * Device THPs (the kernel's device-private folios of PMD order): a THP or a
 * never-touched huge-page-eligible window moves as one 2 MiB block, shows as
 * PMD in the device's snapshot and as swapped-out entries in pagemap, comes
 * back whole on one CPU fault, falls back to 4 KiB pages when FAIL_ALLOC
 * says so, splits when a munmap or an mremap cuts through it, is shared by
 * fork, and goes back to the pool as one block.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel-thp.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define PMD (2ul << 20)
#define PMD_PAGES (PMD / PG_SIZE)
#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)

static struct zdevd_instance zd;
static struct zdev *dev;

static void open_device(void)
{
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
}

static void close_device(void)
{
	ck_assert_int_eq(zdev_close(dev), 0);
}

static struct zdev_stats stats(void)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(dev, &st), 0);
	return st;
}

/* A PMD-aligned 2 MiB range inside a 4 MiB mapping, MADV_HUGEPAGE. */
struct thp {
	char *base, *p;
};

static struct thp thp_map(void)
{
	struct thp t;

	t.base = mmap(NULL, 2 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(t.base, MAP_FAILED);
	t.p = (char *)(((uintptr_t)t.base + PMD - 1) & ~(PMD - 1));
	ck_assert_int_eq(madvise(t.p, PMD, MADV_HUGEPAGE), 0);
	return t;
}

static void thp_unmap(struct thp *t)
{
	munmap(t->base, 2 * PMD);
}

static uint32_t word(uint32_t seed, size_t i)
{
	return seed * 0x9e3779b9u ^ (uint32_t)i;
}

static void fill(char *p, size_t len, uint32_t seed)
{
	uint32_t *w = (uint32_t *)p;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		w[i] = word(seed, i);
}

#define ASSERT_FILLED(p, first_byte, len, seed)						\
	do {										\
		const volatile uint32_t *w_ = (const uint32_t *)(p);			\
		for (size_t i_ = (first_byte) / 4; i_ < ((first_byte) + (len)) / 4; i_++)	\
			if (w_[i_] != word((seed), i_))					\
				ck_abort_msg("word %zu = %#x, expected %#x", i_, w_[i_],	\
					     word((seed), i_));				\
	} while (0)

/* A THP filled with seed's words; the test skipped when this machine gives
 * none. */
static int thp_filled(struct thp *t, uint32_t seed)
{
	fill(t->p, PMD, seed);
	if (!kernel_thp_present(t->p, PMD))
		madvise(t->p, PMD, 25 /* MADV_COLLAPSE */);
	if (!kernel_thp_present(t->p, PMD)) {
		check_skip("the kernel gave no THP to a MADV_HUGEPAGE range (%s)",
			   kernel_thp_settings());
		return -1;
	}
	return 0;
}

static void assert_snapshot(const char *p, size_t npages, uint8_t want)
{
	uint8_t *snap = malloc(npages);
	struct zdev_result res;

	ck_assert_ptr_nonnull(snap);
	ck_assert_int_eq(zdev_snapshot(dev, p, npages, snap, &res), 0);
	for (size_t i = 0; i < npages; i++)
		ck_assert_msg(snap[i] == want, "snapshot byte %zu = %#x, expected %#x", i, snap[i],
			      want);
	free(snap);
}

/* Every page of the range is swap-like and not present in pagemap (want) or
 * present. */
static void assert_pagemap_swapped(const char *p, size_t npages, bool want)
{
	uint64_t *pm = calloc(npages, sizeof(*pm));
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	ck_assert_ptr_nonnull(pm);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, pm, npages * sizeof(*pm), (off_t)((uintptr_t)p / PG_SIZE * 8)),
			 (ssize_t)(npages * sizeof(*pm)));
	close(fd);
	for (size_t i = 0; i < npages; i++)
		ck_assert_msg(want ? (pm[i] & PM_SWAP) && !(pm[i] & PM_PRESENT)
				   : (pm[i] & PM_PRESENT) != 0,
			      "pagemap[%zu] = %#llx: expected %s", i, (unsigned long long)pm[i],
			      want ? "swapped, not present" : "present");
	free(pm);
}

static void migrate_all(char *p, size_t npages)
{
	struct zdev_result res = { 0 };

	ck_assert_int_eq(zdev_migrate_to_device(dev, p, npages, &res), 0);
	ck_assert_uint_eq(res.cpages, npages);
}

START_TEST(thp_moves_and_comes_back_whole)
{
	struct thp t = thp_map();
	struct zdev_stats before, after;

	if (thp_filled(&t, 1))
		goto out;
	assert_snapshot(t.p, PMD_PAGES, ZDEV_PROT_WRITE | ZDEV_PROT_PMD);
	before = stats();
	migrate_all(t.p, PMD_PAGES);
	assert_snapshot(t.p, PMD_PAGES,
			ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE | ZDEV_PROT_PMD);
	assert_pagemap_swapped(t.p, PMD_PAGES, true);
	ck_assert_uint_eq(stats().device_pages, before.device_pages + PMD_PAGES);

	/* one touch in the middle brings the whole THP back */
	ck_assert_uint_eq(((volatile uint32_t *)t.p)[PMD / 8], word(1, PMD / 8));
	after = stats();
	ck_assert_uint_eq(after.cpu_faults, before.cpu_faults + 1);
	ck_assert_uint_eq(after.pages_to_system, before.pages_to_system + PMD_PAGES);
	ck_assert_uint_eq(after.device_pages, before.device_pages);
	assert_pagemap_swapped(t.p, PMD_PAGES, false);
	ASSERT_FILLED(t.p, 0, PMD, 1);
	ck_assert_uint_eq(stats().cpu_faults, before.cpu_faults + 1);
out:
	thp_unmap(&t);
}
END_TEST

/* A never-touched window of a THP-eligible mapping becomes one zero THP. */
START_TEST(empty_window_becomes_a_zero_thp)
{
	struct thp t = thp_map();
	struct zdev_stats before = stats();

	if (!kernel_thp_eligible(t.p)) {
		check_skip("the kernel would give no THP to a MADV_HUGEPAGE range (%s)",
			   kernel_thp_settings());
		thp_unmap(&t);
		return;
	}
	migrate_all(t.p, PMD_PAGES);
	assert_snapshot(t.p, PMD_PAGES,
			ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE | ZDEV_PROT_PMD);
	ck_assert_uint_eq(((volatile char *)t.p)[PMD - 1], 0);
	ck_assert_uint_eq(stats().cpu_faults, before.cpu_faults + 1);
	ck_assert_uint_eq(stats().pages_to_system, before.pages_to_system + PMD_PAGES);
	thp_unmap(&t);
}
END_TEST

/* FAIL_ALLOC fails the next large allocation once: 4 KiB device pages. */
START_TEST(fail_alloc_falls_back_to_small_pages)
{
	struct thp t = thp_map(), u = thp_map();
	struct zdev_stats before;

	if (thp_filled(&t, 2) || thp_filled(&u, 3))
		goto out;
	ck_assert_int_eq(zdev_set_flags(dev, ZDEV_FLAG_FAIL_ALLOC), 0);
	before = stats();
	migrate_all(t.p, PMD_PAGES);
	assert_snapshot(t.p, PMD_PAGES, ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(((volatile uint32_t *)t.p)[2048], word(2, 2048));
	ck_assert_uint_eq(stats().pages_to_system, before.pages_to_system + 1);

	/* the flag was used up: the next THP moves whole */
	migrate_all(u.p, PMD_PAGES);
	assert_snapshot(u.p, PMD_PAGES,
			ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE | ZDEV_PROT_PMD);
	ASSERT_FILLED(t.p, 0, PMD, 2);
	ASSERT_FILLED(u.p, 0, PMD, 3);
out:
	thp_unmap(&t);
	thp_unmap(&u);
}
END_TEST

/* A munmap through a device THP splits it: the rest stays on the device as
 * 4 KiB pages, each touch bringing back one, and the pool ends where it was. */
START_TEST(partial_munmap_splits)
{
	struct thp t = thp_map();
	struct zdev_stats before;

	if (thp_filled(&t, 4))
		goto out;
	before = stats();
	migrate_all(t.p, PMD_PAGES);
	ck_assert_int_eq(munmap(t.p, PMD / 4), 0);
	assert_snapshot(t.p + PMD / 4, PMD_PAGES * 3 / 4,
			ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(stats().device_pages, before.device_pages + PMD_PAGES * 3 / 4);
	ck_assert_uint_eq(((volatile uint32_t *)t.p)[PMD / 2 / 4], word(4, PMD / 2 / 4));
	ck_assert_uint_eq(stats().pages_to_system, before.pages_to_system + 1);
	ASSERT_FILLED(t.p, PMD / 4, PMD * 3 / 4, 4);
	ck_assert_uint_eq(stats().device_pages, before.device_pages);
out:
	thp_unmap(&t);
}
END_TEST

/* An mremap by half a PMD splits it; by whole PMDs it stays whole. */
START_TEST(mremap_splits_unless_aligned)
{
	struct thp t = thp_map();
	char *dst = mmap(NULL, 4 * PMD, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *half,
	     *whole, *moved;

	ck_assert_ptr_ne(dst, MAP_FAILED);
	whole = (char *)(((uintptr_t)dst + PMD - 1) & ~(PMD - 1));
	half = whole + PMD + PMD / 2;
	if (thp_filled(&t, 5))
		goto out;
	migrate_all(t.p, PMD_PAGES);
	moved = mremap(t.p, PMD, PMD, MREMAP_MAYMOVE | MREMAP_FIXED, whole);
	ck_assert_ptr_eq(moved, whole);
	assert_snapshot(whole, PMD_PAGES,
			ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE | ZDEV_PROT_PMD);
	moved = mremap(whole, PMD, PMD, MREMAP_MAYMOVE | MREMAP_FIXED, half);
	ck_assert_ptr_eq(moved, half);
	assert_snapshot(half, PMD_PAGES, ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ASSERT_FILLED(half, 0, PMD, 5);
out:
	munmap(dst, 4 * PMD);
	thp_unmap(&t);
}
END_TEST

/* Fork shares a device THP; each side's fault takes its own copy; the block
 * goes back to the pool once both are done. */
START_TEST(fork_shares_a_thp)
{
	struct thp t = thp_map();
	struct zdevd_pool_status st;
	unsigned long long base;
	int status;
	pid_t pid;

	if (thp_filled(&t, 6))
		goto out;
	ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
	base = st.used;
	migrate_all(t.p, PMD_PAGES);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const volatile uint32_t *w = (const uint32_t *)t.p;

		for (size_t i = 0; i < PMD / 4; i++)
			if (w[i] != word(6, i))
				_exit(1);
		((volatile uint32_t *)t.p)[0] = 77;
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_FILLED(t.p, 0, PMD, 6);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(zdevd_pool_status(&zd, 0, &st), 0);
		if (st.used == base)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(st.used, base);
out:
	thp_unmap(&t);
}
END_TEST

/* 4 KiB device-private pages are swapped-out entries in pagemap too. */
START_TEST(small_pages_show_as_swapped)
{
	char *p = mmap(NULL, 64 * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	ck_assert_int_eq(madvise(p, 64 * PG_SIZE, MADV_NOHUGEPAGE), 0);
	fill(p, 32 * PG_SIZE, 7);		/* half written, half never touched */
	migrate_all(p, 64);
	assert_pagemap_swapped(p, 64, true);
	ASSERT_FILLED(p, 0, 32 * PG_SIZE, 7);
	assert_pagemap_swapped(p, 32, false);
	assert_pagemap_swapped(p + 32 * PG_SIZE, 32, true);
	munmap(p, 64 * PG_SIZE);
}
END_TEST

#define ADD_TEST(s, test) check_add_case(s, #test, test, open_device, close_device, 0)

static Suite *thp_suite(void)
{
	Suite *s = suite_create("device-thp");

	ADD_TEST(s, thp_moves_and_comes_back_whole);
	ADD_TEST(s, empty_window_becomes_a_zero_thp);
	ADD_TEST(s, fail_alloc_falls_back_to_small_pages);
	ADD_TEST(s, partial_munmap_splits);
	ADD_TEST(s, mremap_splits_unless_aligned);
	ADD_TEST(s, fork_shares_a_thp);
	ADD_TEST(s, small_pages_show_as_swapped);
	return s;
}

int main(void)
{
	return run_suite_with_zdevd(&zd, NULL, thp_suite());
}
