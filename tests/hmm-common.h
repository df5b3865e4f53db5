/* SPDX-License-Identifier: MIT */
/*
 * What the hmm conformance tests (test-hmm.c, test-hmm2.c) share: the
 * buffer a scenario runs on, the device commands on it with the driver's
 * counters, the assertions on its contents, and the program around the
 * suite (a private zdevd, one tcase a test).
 *
 * The driver's ioctls map onto libzdev as follows: READ = zdev_read (the
 * device's view of the range lands in the mirror buffer), WRITE = zdev_write
 * (the mirror buffer goes into the device's view), MIGRATE_TO_DEV/SYS =
 * zdev_migrate_to_device/system, SNAPSHOT = zdev_snapshot; the command's
 * cpages/faults are struct zdev_result's. As with the driver, a failed
 * command leaves the counters of the buffer as they were.
 *
 * test_hmm's MIGRATE_TO_DEV ends with a read of the whole range through the
 * device's own table into the mirror, and fails if a page is not there.
 * zdev's migration does not fill the caller's buffer, so migrate_to_dev()
 * does that read itself with zdev_read: it must succeed for every page
 * without a fault round, and it leaves the mirror as the kernel test has it.
 */
#ifndef ZDEV_TEST_HMM_COMMON_H
#define ZDEV_TEST_HMM_COMMON_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "zdev.h"

/* The system page size and its log2, set by hmm_init_page_size(). */
extern unsigned long page_size;
extern unsigned int page_shift;

void hmm_init_page_size(void);

/* The loop variant running, as a prefix of failure messages ("" outside
 * loops): tests in a loop set it with snprintf(variant, sizeof(variant), ...). */
extern char variant[160];

struct hmm_buffer {
	void *ptr;		/* the process memory the device accesses */
	void *mirror;		/* the device side's data (the kernel's buffer->mirror) */
	unsigned long size;	/* bytes mapped at ptr, unmapped by buffer_free() */
	int fd;			/* a file behind ptr, closed by buffer_free(), or -1 */
	uint64_t cpages;
	uint64_t faults;
};

/* A buffer with a mirror of mirror_size bytes and nothing mapped yet. */
struct hmm_buffer *buffer_new(unsigned long mirror_size);
/* Maps size bytes of fd (-1: anonymous) at b->ptr, for buffer_free() to unmap. */
void buffer_mmap(struct hmm_buffer *b, unsigned long size, int prot, int flags, int fd);
/* A buffer of size bytes mapped anonymously, with a mirror of the same size. */
struct hmm_buffer *buffer_map(unsigned long size, int prot, int flags);
void buffer_free(struct hmm_buffer *b);

enum dev_op { OP_READ, OP_WRITE, OP_SNAPSHOT, OP_MIGRATE_TO_SYS };

/* One device command on the buffer: 0 with its counters, or -errno and the
 * counters untouched. */
int dev_cmd(struct zdev *d, enum dev_op op, struct hmm_buffer *b, unsigned long npages);
/* MIGRATE_TO_DEV with the driver's verification read (see the top). */
int migrate_to_dev(struct zdev *d, struct hmm_buffer *b, unsigned long npages);
int migrate_to_sys(struct zdev *d, struct hmm_buffer *b, unsigned long npages);
/* In a forked child no Check assertion: a failure prints and exits non-zero. */
#define CHILD_EACH_INT(arr, n, want)							\
	do {										\
		const volatile int *a_ = (const volatile int *)(arr);			\
		for (unsigned long i = 0; i < (unsigned long)(n); i++)			\
			if (a_[i] != (int)(want)) {					\
				fprintf(stderr, "%s:%d: child: %s%s[%lu] = %d, expected %d\n",	\
					__FILE__, __LINE__, variant, #arr, i, a_[i],	\
					(int)(want));					\
				_exit(1);						\
			}								\
	} while (0)

#define CHILD_CHECK(cond)								\
	do {										\
		if (!(cond)) {								\
			fprintf(stderr, "%s:%d: child: %scheck failed: %s\n", __FILE__,	\
				__LINE__, variant, #cond);				\
			_exit(1);							\
		}									\
	} while (0)

/* Reaps the fork child pid and asserts that it exited with 0. */
void wait_child_ok(pid_t pid);

/* hmm2's pages of every kind, from page 2 of the mapping at p (page 1 is
 * the hole the caller unmapped): page 2 the zero page, read-only; page 3
 * written, then read-only; nrw read-write pages from page 4, the first
 * nwritten of them written, with 3. */
void map_mixed_pages(char *p, unsigned long nrw, unsigned long nwritten);
/* Frees the buffer of the npages pages mapped at p but for the hole at page 1. */
void buffer_free_holed(struct hmm_buffer *b, char *p, unsigned long npages);

/* Whether an anonymous read fault maps the shared zero page on this machine
 * (some kernels allocate a fresh page instead; the kernel's snapshot then
 * shows a plain READ page, and so does zdev's). */
bool read_fault_maps_zero_page(void);

/* One tcase a test, named after it, with the given fixture:
 * CK_RUN_CASE=<test> runs that one alone. */
void hmm_add_test(Suite *s, const char *name, const TTest *test, SFun setup, SFun teardown);

/* The program: a private zdevd, the suite make_suite() builds run against
 * it, EXIT_SUCCESS if every test passed and zdevd stopped cleanly. */
int hmm_main(Suite *(*make_suite)(void));

/* ---- assertions (macros, so that a failure names the test's own line) ---- */

#define ASSERT_EQ_V(a, b)								\
	do {										\
		long long a_ = (long long)(a), b_ = (long long)(b);			\
		ck_assert_msg(a_ == b_, "%s%s = %lld, expected %lld", variant, #a, a_, b_);	\
	} while (0)

/* Every int of an array equals want (an expression of i); the first that
 * does not fails the test. */
#define ASSERT_EACH_INT(arr, n, want)							\
	do {										\
		const volatile int *a_ = (const volatile int *)(arr);			\
		for (unsigned long i = 0; i < (unsigned long)(n); i++)			\
			if (a_[i] != (int)(want))					\
				ck_abort_msg("%s%s[%lu] = %d, expected %d", variant,	\
					     #arr, i, a_[i], (int)(want));		\
	} while (0)

/* Every byte of an array (a snapshot's) equals want. */
#define ASSERT_EACH_BYTE(arr, n, want)							\
	do {										\
		const uint8_t *a_ = (const uint8_t *)(arr);				\
		for (unsigned long i = 0; i < (unsigned long)(n); i++)			\
			if (a_[i] != (want))						\
				ck_abort_msg("%s%s[%lu] = 0x%02x, expected 0x%02x",	\
					     variant, #arr, i, a_[i], (unsigned)(want));	\
	} while (0)

#define FILL_INT(arr, n, val)								\
	do {										\
		int *a_ = (int *)(arr);							\
		for (unsigned long i = 0; i < (unsigned long)(n); i++)			\
			a_[i] = (int)(val);						\
	} while (0)

/* A device command that succeeds for all npages pages. */
#define ASSERT_CMD(d, op, b, npages)							\
	do {										\
		ASSERT_EQ_V(dev_cmd(d, op, b, npages), 0);				\
		ASSERT_EQ_V((b)->cpages, npages);					\
	} while (0)

/* The same, in nfaults fault rounds. */
#define ASSERT_CMD_FAULTS(d, op, b, npages, nfaults)					\
	do {										\
		ASSERT_CMD(d, op, b, npages);						\
		ASSERT_EQ_V((b)->faults, nfaults);					\
	} while (0)

/* A migration to the device of all npages pages (verification read included). */
#define ASSERT_MIGRATED(d, b, npages)							\
	do {										\
		ASSERT_EQ_V(migrate_to_dev(d, b, npages), 0);				\
		ASSERT_EQ_V((b)->cpages, npages);					\
	} while (0)

#endif
