/* SPDX-License-Identifier: MIT */
/*
 * Conformance: the kernel's hmm-tests scenarios of fixture "hmm2" (two
 * device-private devices, /dev/hmm_dmirror0 and 1 there, zdev devices 0 and 1
 * here), with the kernel's assertions, against a private zdevd.
 *
 * READ = zdev_read (into the mirror), SNAPSHOT = zdev_snapshot (into the
 * mirror), MIGRATE_TO_DEV = zdev_migrate_to_device followed by the read of
 * the range through the same device that test_hmm's migration ends with (see
 * hmm-common.h): it must find every page without a fault round.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#include "zdev.h"
#include "hmm-common.h"

static struct zdev *dev0, *dev1;	/* the fixture's devices 0 and 1 */

static void hmm2_setup(void)
{
	hmm_init_page_size();
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
	struct hmm_buffer *b = buffer_map(size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *p = b->ptr;

	/* no read access */
	ck_assert_int_eq(migrate_to_dev(dev1, b, npages), -EINVAL);

	/* a hole at page 1: the range is not covered */
	ck_assert_int_eq(munmap(p + page_size, page_size), 0);
	ck_assert_int_eq(migrate_to_dev(dev1, b, 3), -EINVAL);

	/* page 2 the zero page, page 3 read-only data, pages 4 and 5 written */
	map_mixed_pages(p, 2, 2);

	/* pages 2 to 5 to device 1 */
	b->ptr = p + 2 * page_size;
	ASSERT_MIGRATED(dev1, b, 4);

	/* page 5 belongs to device 1: device 0 does not take it */
	b->ptr = p + 5 * page_size;
	ck_assert_int_eq(migrate_to_dev(dev0, b, 1), -ENOENT);

	buffer_free_holed(b, p, npages);
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
	struct hmm_buffer *b = buffer_map(size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	const uint8_t *m = b->mirror;
	char *p = b->ptr;

	ck_assert_int_eq(munmap(p + page_size, page_size), 0);

	/* page 2 the zero page, page 3 read-only data, pages 4 to 6 read-write
	 * with page 4 written */
	map_mixed_pages(p, 3, 1);

	b->ptr = p + 5 * page_size;
	ASSERT_MIGRATED(dev0, b, 1);

	b->ptr = p + 6 * page_size;
	ASSERT_MIGRATED(dev1, b, 1);

	b->ptr = p;
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ck_assert_uint_eq(m[0], ZDEV_PROT_ERROR);
	ck_assert_uint_eq(m[1], ZDEV_PROT_ERROR);
	if (read_fault_maps_zero_page()) {
		ck_assert_uint_eq(m[2], ZDEV_PROT_ZERO | ZDEV_PROT_READ);
	} else {
		printf("snapshot: this kernel maps no zero page on a read fault: page 2 is READ\n");
		ck_assert_uint_eq(m[2], ZDEV_PROT_READ);
	}
	ck_assert_uint_eq(m[3], ZDEV_PROT_READ);
	ck_assert_uint_eq(m[4], ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[5], ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[6], ZDEV_PROT_NONE);

	buffer_free_holed(b, p, npages);
}
END_TEST

/* Both devices read the same read-only pages; once they are device 1's,
 * device 0's read brings them back to system memory first. */
START_TEST(double_map)
{
	unsigned long npages = 6, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, size / sizeof(int), i);
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ), 0);

	ASSERT_CMD_FAULTS(dev0, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

	ASSERT_CMD_FAULTS(dev1, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

	ASSERT_MIGRATED(dev1, b, npages);

	ASSERT_CMD_FAULTS(dev0, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

/* One tcase a test, named after it: CK_RUN_CASE=<test> runs that one alone. */
#define ADD_TEST(s, test) hmm_add_test(s, #test, test, hmm2_setup, hmm2_teardown)

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
	return hmm_main(hmm2_suite);
}
