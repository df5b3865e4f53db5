/* SPDX-License-Identifier: MIT */
/*
 * Conformance: the kernel's hmm-tests scenarios of fixture "hmm2" (two
 * device-private devices, /dev/hmm_dmirror0 and 1 there, zdev devices 0 and 1
 * here), with the kernel's assertions, against a private zdevd.
 *
 * READ = zdev_read (into the mirror), SNAPSHOT = zdev_snapshot (into the
 * mirror), MIGRATE_TO_DEV = zdev_migrate_to_device followed by the read of
 * the range through the same device that test_hmm's migration ends with (see
 * test-hmm.c): it must find every page without a fault round.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zdev.h"
#include "zdevd-harness.h"
#include "check-run.h"

static struct zdevd_instance zdevd;
static unsigned long page_size;
static unsigned int page_shift;
static struct zdev *dev0, *dev1;	/* the fixture's devices 0 and 1 */

struct hmm_buffer {
	void *ptr;
	void *mirror;
	unsigned long size;
	uint64_t cpages;
	uint64_t faults;
};

static struct hmm_buffer *buffer_new(unsigned long mirror_size)
{
	struct hmm_buffer *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	b->mirror = malloc(mirror_size);
	ck_assert_ptr_nonnull(b->mirror);
	return b;
}

static void buffer_free(struct hmm_buffer *b)
{
	if (b->ptr)
		munmap(b->ptr, b->size);
	free(b->mirror);
	free(b);
}

static int dev_read(struct zdev *d, struct hmm_buffer *b, unsigned long npages)
{
	struct zdev_result res = { 0 };
	int ret = zdev_read(d, b->ptr, npages, b->mirror, &res);

	if (ret)
		return ret;
	b->cpages = res.cpages;
	b->faults = res.faults;
	return 0;
}

static int dev_snapshot(struct zdev *d, struct hmm_buffer *b, unsigned long npages)
{
	struct zdev_result res = { 0 };
	int ret = zdev_snapshot(d, b->ptr, npages, b->mirror, &res);

	if (ret)
		return ret;
	b->cpages = res.cpages;
	b->faults = res.faults;
	return 0;
}

static int migrate_to_dev(struct zdev *d, struct hmm_buffer *b, unsigned long npages)
{
	struct zdev_result res = { 0 }, rd = { 0 };
	int ret = zdev_migrate_to_device(d, b->ptr, npages, &res);

	if (ret)
		return ret;
	b->cpages = res.cpages;
	b->faults = res.faults;
	ret = zdev_read(d, b->ptr, npages, b->mirror, &rd);
	ck_assert_msg(ret == 0, "reading the migrated range through the device: %d (%s)", ret,
		      strerror(-ret));
	ck_assert_msg(rd.cpages == npages, "reading the migrated range: cpages %llu of %lu",
		      (unsigned long long)rd.cpages, npages);
	ck_assert_msg(rd.faults == 0,
		      "reading the migrated range needed a fault round: migrated pages are "
		      "missing from the device's table");
	return 0;
}

#define ASSERT_EACH_INT(arr, n, want)							\
	do {										\
		const volatile int *a_ = (const volatile int *)(arr);			\
		for (unsigned long i = 0; i < (unsigned long)(n); i++)			\
			if (a_[i] != (int)(want))					\
				ck_abort_msg("%s[%lu] = %d, expected %d", #arr, i,	\
					     a_[i], (int)(want));			\
	} while (0)

static void hmm2_setup(void)
{
	page_size = (unsigned long)sysconf(_SC_PAGESIZE);
	page_shift = (unsigned int)ffs((int)page_size) - 1;
	ck_assert_int_eq(zdev_open(NULL, 0, &dev0), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &dev1), 0);
}

static void hmm2_teardown(void)
{
	ck_assert_int_eq(zdev_close(dev0), 0);
	ck_assert_int_eq(zdev_close(dev1), 0);
	dev0 = dev1 = NULL;
}

/*
 * Six pages of every kind: PROT_NONE and a hole refuse migration with
 * -EINVAL; a read-only zero page, a read-only data page and two written
 * pages go to device 1; a page of device 1 does not go to device 0.
 */
START_TEST(migrate_mixed)
{
	unsigned long npages = 6, size = npages << page_shift;
	struct hmm_buffer *b = buffer_new(size);
	char *p;
	int *ptr, val;

	b->size = size;
	b->ptr = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(b->ptr, MAP_FAILED);
	p = b->ptr;

	/* no read access */
	ck_assert_int_eq(migrate_to_dev(dev1, b, npages), -EINVAL);

	/* a hole at page 1: the range is not covered */
	ck_assert_int_eq(munmap(p + page_size, page_size), 0);
	ck_assert_int_eq(migrate_to_dev(dev1, b, 3), -EINVAL);

	/* page 2: read-only, the zero page */
	ck_assert_int_eq(mprotect(p + 2 * page_size, page_size, PROT_READ), 0);
	ptr = (int *)(p + 2 * page_size);
	val = *(volatile int *)ptr + 3;
	ck_assert_int_eq(val, 3);

	/* page 3: written, then read-only */
	ck_assert_int_eq(mprotect(p + 3 * page_size, page_size, PROT_READ | PROT_WRITE), 0);
	ptr = (int *)(p + 3 * page_size);
	*ptr = val;
	ck_assert_int_eq(mprotect(p + 3 * page_size, page_size, PROT_READ), 0);

	/* pages 4 and 5: read-write, written */
	ck_assert_int_eq(mprotect(p + 4 * page_size, 2 * page_size, PROT_READ | PROT_WRITE), 0);
	ptr = (int *)(p + 4 * page_size);
	*ptr = val;
	ptr = (int *)(p + 5 * page_size);
	*ptr = val;

	/* pages 2 to 5 to device 1 */
	b->ptr = p + 2 * page_size;
	ck_assert_int_eq(migrate_to_dev(dev1, b, 4), 0);
	ck_assert_uint_eq(b->cpages, 4);

	/* page 5 belongs to device 1: device 0 does not take it */
	b->ptr = p + 5 * page_size;
	ck_assert_int_eq(migrate_to_dev(dev0, b, 1), -ENOENT);

	/* page 1 is a hole: unmap around it */
	b->ptr = NULL;
	munmap(p, page_size);
	munmap(p + 2 * page_size, 4 * page_size);
	buffer_free(b);
}
END_TEST

/*
 * What device 0's snapshot shows of: PROT_NONE, a hole, the zero page, a
 * read-only page, a written page, its own private page, device 1's private
 * page (invisible: NONE).
 */
START_TEST(snapshot)
{
	unsigned long npages = 7, size = npages << page_shift;
	/* the snapshot fills npages bytes; the read after a migration one page */
	struct hmm_buffer *b = buffer_new(size);
	const uint8_t *m = b->mirror;
	char *p;
	int *ptr, val;

	b->size = size;
	b->ptr = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(b->ptr, MAP_FAILED);
	p = b->ptr;

	ck_assert_int_eq(munmap(p + page_size, page_size), 0);

	ck_assert_int_eq(mprotect(p + 2 * page_size, page_size, PROT_READ), 0);
	ptr = (int *)(p + 2 * page_size);
	val = *(volatile int *)ptr + 3;
	ck_assert_int_eq(val, 3);

	ck_assert_int_eq(mprotect(p + 3 * page_size, page_size, PROT_READ | PROT_WRITE), 0);
	ptr = (int *)(p + 3 * page_size);
	*ptr = val;
	ck_assert_int_eq(mprotect(p + 3 * page_size, page_size, PROT_READ), 0);

	ck_assert_int_eq(mprotect(p + 4 * page_size, 3 * page_size, PROT_READ | PROT_WRITE), 0);
	ptr = (int *)(p + 4 * page_size);
	*ptr = val;

	b->ptr = p + 5 * page_size;
	ck_assert_int_eq(migrate_to_dev(dev0, b, 1), 0);
	ck_assert_uint_eq(b->cpages, 1);

	b->ptr = p + 6 * page_size;
	ck_assert_int_eq(migrate_to_dev(dev1, b, 1), 0);
	ck_assert_uint_eq(b->cpages, 1);

	b->ptr = p;
	ck_assert_int_eq(dev_snapshot(dev0, b, npages), 0);
	ck_assert_uint_eq(b->cpages, npages);
	ck_assert_uint_eq(m[0], ZDEV_PROT_ERROR);
	ck_assert_uint_eq(m[1], ZDEV_PROT_ERROR);
	ck_assert_uint_eq(m[2], ZDEV_PROT_ZERO | ZDEV_PROT_READ);
	ck_assert_uint_eq(m[3], ZDEV_PROT_READ);
	ck_assert_uint_eq(m[4], ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[5], ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[6], ZDEV_PROT_NONE);

	b->ptr = NULL;
	munmap(p, page_size);
	munmap(p + 2 * page_size, 5 * page_size);
	buffer_free(b);
}
END_TEST

/* Both devices read the same read-only pages; once they are device 1's,
 * device 0's read brings them back to system memory first. */
START_TEST(double_map)
{
	unsigned long npages = 6, size = npages << page_shift;
	struct hmm_buffer *b = buffer_new(size);
	int *ptr;

	b->size = size;
	b->ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(b->ptr, MAP_FAILED);
	ptr = b->ptr;
	for (unsigned long i = 0; i < size / sizeof(int); i++)
		ptr[i] = (int)i;
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ), 0);

	ck_assert_int_eq(dev_read(dev0, b, npages), 0);
	ck_assert_uint_eq(b->cpages, npages);
	ck_assert_uint_eq(b->faults, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

	ck_assert_int_eq(dev_read(dev1, b, npages), 0);
	ck_assert_uint_eq(b->cpages, npages);
	ck_assert_uint_eq(b->faults, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

	ck_assert_int_eq(migrate_to_dev(dev1, b, npages), 0);
	ck_assert_uint_eq(b->cpages, npages);

	ck_assert_int_eq(dev_read(dev0, b, npages), 0);
	ck_assert_uint_eq(b->cpages, npages);
	ck_assert_uint_eq(b->faults, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

/* One tcase a test, named after it: CK_RUN_CASE=<test> runs that one alone. */
static void add_test(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, hmm2_setup, hmm2_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

#define ADD_TEST(s, test) add_test(s, #test, test)

static Suite *hmm2_suite(void)
{
	Suite *s = suite_create("hmm2");

	ADD_TEST(s, migrate_mixed);
	ADD_TEST(s, snapshot);
	ADD_TEST(s, double_map);
	return s;
}

int main(void)
{
	int failed, stopped;

	zdevd_start(&zdevd, NULL);
	failed = check_run(hmm2_suite());
	stopped = zdevd_stop(&zdevd);
	return failed || stopped ? EXIT_FAILURE : EXIT_SUCCESS;
}
