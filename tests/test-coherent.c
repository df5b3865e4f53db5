/* SPDX-License-Identifier: MIT */
/*
 * Conformance: the coherent variants of the kernel's hmm-tests (test_hmm's
 * devices 2 and 3, DEVICE_COHERENT) through libzdev, against a private zdevd
 * with devices 0 and 1 coherent and device 2 private. A coherent device's
 * page is the process's own page, owned by the device: the CPU reads and
 * writes it without a fault, and the pool charges one page for it.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdev.h"
#include "hmm-common.h"
#include "zdevd-check.h"
#include "zdevd-harness.h"

static struct zdevd_instance zdevd;
static struct zdev *dev0, *dev1;	/* coherent */
static struct zdev *devp;		/* private */

static void setup(void)
{
	hmm_init_page_size();
	ck_assert_int_eq(zdev_open(NULL, 0, &dev0), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &dev1), 0);
	ck_assert_int_eq(zdev_open(NULL, 2, &devp), 0);
}

static unsigned long long pool_used(unsigned int dev);
static unsigned long long wait_pool_used(unsigned int dev, unsigned long long want);

/* The last handles' close lets go of every page: the pools are back at 0. */
static void teardown(void)
{
	ck_assert_int_eq(zdev_close(dev0), 0);
	ck_assert_int_eq(zdev_close(dev1), 0);
	ck_assert_int_eq(zdev_close(devp), 0);
	dev0 = dev1 = devp = NULL;
	for (unsigned int i = 0; i < 3; i++)
		ck_assert_uint_eq(wait_pool_used(i, 0), 0);
}

/* The pages the pool of device dev has in use, every client's. */
static unsigned long long pool_used(unsigned int dev)
{
	struct zdevd_pool_status st;

	ck_assert_int_eq(zdevd_pool_status(&zdevd, dev, &st), 0);
	return st.used;
}

/*
 * The same once it is want, or after 30 s: zdevd lets go of an exited
 * process's pages when it sees the exit, a little after waitpid() has.
 * The last count seen.
 */
static unsigned long long wait_pool_used(unsigned int dev, unsigned long long want)
{
	unsigned long long used = pool_used(dev);

	for (int tries = 0; used != want && tries < 3000; tries++) {
		usleep(10000);
		used = pool_used(dev);
	}
	return used;
}

static uint64_t cpu_faults(struct zdev *d)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	return st.cpu_faults;
}

static uint64_t device_pages(struct zdev *d)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	return st.device_pages;
}

/* Each device's type as zdevd was told, through the handshake. */
START_TEST(memory_type)
{
	unsigned int type = 0;

	ck_assert_int_eq(zdev_get_memory_type(dev0, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_COHERENT);
	ck_assert_int_eq(zdev_get_memory_type(dev1, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_COHERENT);
	ck_assert_int_eq(zdev_get_memory_type(devp, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_PRIVATE);
	ck_assert_int_eq(zdev_get_memory_type(NULL, &type), -EINVAL);
	ck_assert_int_eq(zdev_get_memory_type(dev0, NULL), -EINVAL);
}
END_TEST

#define NPAGES 64	/* a buffer's pages, as HMM_BUFFER_SIZE's role in the kernel tests */

/*
 * migrate: the pages go to the device and stay mapped: the CPU reads and
 * writes them without a fault, the device's snapshot shows them as its own
 * coherent pages, and the device's pool charges one page each; back in
 * system memory, the pool has them back.
 */
START_TEST(migrate)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t faults0;

	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	ASSERT_EACH_INT(b->mirror, n, i);
	ck_assert_uint_eq(device_pages(dev0), npages);
	ck_assert_uint_eq(pool_used(0), npages);

	faults0 = cpu_faults(dev0);
	ASSERT_EACH_INT(b->ptr, n, i);
	FILL_INT(b->ptr, n, i + 1);
	ck_assert_uint_eq(cpu_faults(dev0), faults0);

	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	ASSERT_CMD_FAULTS(dev0, OP_READ, b, npages, 0);
	ASSERT_EACH_INT(b->mirror, n, i + 1);

	ck_assert_int_eq(migrate_to_sys(dev0, b, npages), 0);
	ASSERT_EQ_V(b->cpages, npages);
	ck_assert_uint_eq(device_pages(dev0), 0);
	ck_assert_uint_eq(pool_used(0), 0);
	ASSERT_EACH_INT(b->ptr, n, i + 1);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_WRITE);
	buffer_free(b);
}
END_TEST

/* migrate of never-touched memory: each page gets a zeroed page of its own,
 * which the CPU reads and writes without a fault. */
START_TEST(migrate_untouched)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t faults0;

	ASSERT_MIGRATED(dev0, b, npages);
	ASSERT_EACH_INT(b->mirror, n, 0);
	faults0 = cpu_faults(dev0);
	ASSERT_EACH_INT(b->ptr, n, 0);
	FILL_INT(b->ptr, n, i);
	ck_assert_uint_eq(cpu_faults(dev0), faults0);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	buffer_free(b);
	ck_assert_uint_eq(pool_used(0), 0);
}
END_TEST

/* migrate_multiple: coherent pages never fault back, so each round migrates
 * back to system memory explicitly, as the kernel test does for them. */
START_TEST(migrate_multiple)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);

	for (int round = 0; round < 10; round++) {
		struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE,
						  MAP_PRIVATE | MAP_ANONYMOUS);

		snprintf(variant, sizeof(variant), "round %d: ", round);
		FILL_INT(b->ptr, n, i + round);
		ASSERT_MIGRATED(dev0, b, npages);
		ASSERT_EACH_INT(b->mirror, n, i + round);
		ck_assert_int_eq(migrate_to_sys(dev0, b, npages), 0);
		ASSERT_EQ_V(b->cpages, npages);
		ASSERT_EACH_INT(b->ptr, n, i + round);
		buffer_free(b);
	}
	ck_assert_uint_eq(pool_used(0), 0);
}
END_TEST

/* migrate_fault: the CPU reads migrated pages in place, no CPU fault. */
START_TEST(migrate_fault)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	uint64_t faults0 = cpu_faults(dev0);

	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	ASSERT_EACH_INT(b->ptr, n, i);
	ck_assert_uint_eq(cpu_faults(dev0), faults0);
	/* still the device's */
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	buffer_free(b);
}
END_TEST

/*
 * hmm2.migrate_mixed: PROT_NONE and a hole refuse with -EINVAL; pages 2 to 5
 * (the zero page, read-only data, two written pages) go to device 1; device
 * 0, and the private device, leave device 1's page where it is.
 */
START_TEST(migrate_mixed)
{
	unsigned long npages = 6, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *p = b->ptr;

	ck_assert_int_eq(migrate_to_dev(dev1, b, npages), -EINVAL);
	ck_assert_int_eq(munmap(p + page_size, page_size), 0);
	ck_assert_int_eq(migrate_to_dev(dev1, b, 3), -EINVAL);

	map_mixed_pages(p, 2, 2);

	b->ptr = p + 2 * page_size;
	ASSERT_MIGRATED(dev1, b, 4);

	b->ptr = p + 5 * page_size;
	ck_assert_int_eq(migrate_to_dev(dev0, b, 1), -ENOENT);
	ck_assert_int_eq(migrate_to_dev(devp, b, 1), -ENOENT);
	ASSERT_CMD(dev1, OP_SNAPSHOT, b, 1);
	ck_assert_uint_eq(((uint8_t *)b->mirror)[0],
			  ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_int_eq(*(volatile int *)(p + 3 * page_size), 3);
	ck_assert_int_eq(*(volatile int *)(p + 5 * page_size), 3);

	buffer_free_holed(b, p, npages);
	ck_assert_uint_eq(pool_used(1), 0);
}
END_TEST

/*
 * hmm2.snapshot: device 0's view of PROT_NONE, a hole, the zero page, a
 * read-only page, a written page, its own coherent page (LOCAL) and device
 * 1's (REMOTE: coherent memory is visible to every device). The private
 * device sees both as remote.
 */
START_TEST(snapshot)
{
	unsigned long npages = 7, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS);
	const uint8_t *m = b->mirror;
	char *p = b->ptr;

	ck_assert_int_eq(munmap(p + page_size, page_size), 0);
	map_mixed_pages(p, 3, 1);

	b->ptr = p + 5 * page_size;
	ASSERT_MIGRATED(dev0, b, 1);
	b->ptr = p + 6 * page_size;
	ASSERT_MIGRATED(dev1, b, 1);

	b->ptr = p;
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ck_assert_uint_eq(m[0], ZDEV_PROT_ERROR);
	ck_assert_uint_eq(m[1], ZDEV_PROT_ERROR);
	if (read_fault_maps_zero_page())
		ck_assert_uint_eq(m[2], ZDEV_PROT_ZERO | ZDEV_PROT_READ);
	else
		ck_assert_uint_eq(m[2], ZDEV_PROT_READ);
	ck_assert_uint_eq(m[3], ZDEV_PROT_READ);
	ck_assert_uint_eq(m[4], ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[5], ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[6], ZDEV_PROT_DEV_COHERENT_REMOTE | ZDEV_PROT_WRITE);

	ASSERT_CMD(devp, OP_SNAPSHOT, b, npages);
	ck_assert_uint_eq(m[5], ZDEV_PROT_DEV_COHERENT_REMOTE | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[6], ZDEV_PROT_DEV_COHERENT_REMOTE | ZDEV_PROT_WRITE);

	buffer_free_holed(b, p, npages);
}
END_TEST

/*
 * hmm2.double_map: both devices read the read-only pages; after they went to
 * device 1, device 0 reads them where they are, in one fault round (the
 * migration erased its mirror), and they stay device 1's.
 */
START_TEST(double_map)
{
	unsigned long npages = 6, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, n, i);
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ), 0);

	ASSERT_CMD_FAULTS(dev0, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, n, i);
	ASSERT_CMD_FAULTS(dev1, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, n, i);

	ASSERT_MIGRATED(dev1, b, npages);

	ASSERT_CMD_FAULTS(dev0, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, n, i);
	ASSERT_CMD(dev1, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_READ);
	ck_assert_uint_eq(pool_used(1), npages);
	buffer_free(b);
}
END_TEST

/* migrate_release: the device lets go of every page it holds; the data is
 * where it was. */
START_TEST(migrate_release)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	struct zdev_stats st = { .size = sizeof(st) };

	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	ck_assert_int_eq(zdev_release(dev0), 0);
	ck_assert_uint_eq(pool_used(0), 0);
	ck_assert_int_eq(zdev_get_stats(dev0, &st), 0);
	ck_assert_uint_eq(st.device_pages, 0);
	ck_assert_uint_eq(st.pages_to_system, npages);
	ASSERT_EACH_INT(b->ptr, n, i);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_WRITE);
	buffer_free(b);
}
END_TEST

/* exclusive, on system pages and on the device's own coherent pages: every
 * CPU increment revokes and goes on. */
START_TEST(exclusive)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);

	for (int migrated = 0; migrated < 2; migrated++) {
		struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE,
						  MAP_PRIVATE | MAP_ANONYMOUS);
		struct zdev_result res = { 0 };
		int *ptr = b->ptr;

		snprintf(variant, sizeof(variant), "migrated %d: ", migrated);
		FILL_INT(b->ptr, n, i);
		if (migrated)
			ASSERT_MIGRATED(dev0, b, npages);
		ck_assert_int_eq(zdev_make_exclusive(dev0, b->ptr, npages, &res), 0);
		ASSERT_EQ_V(res.cpages, npages);
		ASSERT_CMD(dev0, OP_READ, b, npages);
		ASSERT_EACH_INT(b->mirror, n, i);
		for (unsigned long i = 0; i < n; i++)
			ck_assert_int_eq(ptr[i]++, (int)i);
		ASSERT_EACH_INT(b->ptr, n, i + 1);
		ck_assert_int_eq(zdev_check_exclusive(dev0, b->ptr, npages), 0);
		buffer_free(b);
	}
	ck_assert_uint_eq(pool_used(0), 0);
}
END_TEST

/*
 * anon_write_child: after a fork, the child's own device writes its copy of
 * the migrated buffer; the parent's stays as it was.
 */
START_TEST(anon_write_child)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	pid_t pid;

	FILL_INT(b->ptr, n, -(int)i);
	ASSERT_MIGRATED(dev0, b, npages);
	FILL_INT(b->mirror, n, i);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		const volatile int *ptr = b->ptr;
		struct zdev_result res = { 0 };
		struct zdev *child_dev = NULL;

		for (unsigned long i = 0; i < n; i++)
			CHILD_CHECK(ptr[i] == -(int)i);
		CHILD_CHECK(zdev_open(NULL, 0, &child_dev) == 0);
		CHILD_CHECK(zdev_write(child_dev, b->ptr, npages, b->mirror, &res) == 0);
		CHILD_CHECK(res.cpages == npages);
		CHILD_CHECK(res.faults == 1);
		for (unsigned long i = 0; i < n; i++)
			CHILD_CHECK(ptr[i] == (int)i);
		zdev_close(child_dev);
		_exit(0);
	}
	wait_child_ok(pid);
	ASSERT_EACH_INT(b->ptr, n, -(int)i);
	buffer_free(b);
}
END_TEST

/*
 * hmm_cow_in_device: after a fork, the parent's write breaks copy-on-write
 * and its pages are ordinary system pages, while the child still holds its
 * share.
 */
START_TEST(hmm_cow_in_device)
{
	unsigned long npages = 4, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	int running[2], status = 0;
	char c;
	pid_t pid;

	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	ck_assert_int_eq(pipe(running), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		/* the child only holds its share until it is killed */
		CHILD_CHECK(write(running[1], "", 1) == 1);
		for (;;)
			pause();
	}
	/* the write breaks copy-on-write: the parent's pages are its own */
	FILL_INT(b->ptr, n, i);
	/* Killed once its fork handler is done: zdevd sees the exit of a
	 * fork child that said hello, and then lets go of its share. */
	ck_assert_int_eq(read(running[0], &c, 1), 1);
	close(running[0]);
	close(running[1]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGKILL);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_WRITE);
	buffer_free(b);
}
END_TEST

/*
 * With fork events, a fork shares the coherent pages: both processes hold
 * them, read-only, until each one's first write copies its page into
 * ordinary system memory; the pool page goes when neither holds it.
 */
START_TEST(fork_shares_until_written)
{
	unsigned long npages = 4, size = npages << page_shift, n = size / sizeof(int);
	const unsigned long per_page = page_size / sizeof(int);
	struct hmm_buffer *b;
	int ready[2], status = 0;
	const uint8_t *m;
	char c;
	int *ptr;
	pid_t pid;

	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_FORK_SHARED);
	b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	m = b->mirror;
	ptr = b->ptr;
	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	ck_assert_int_eq(pipe(ready), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		struct zdev_stats st = { .size = sizeof(st) };
		struct zdev *child_dev = NULL;

		/* the child writes page 1 only, then holds the rest */
		ptr[per_page] = -1;
		for (unsigned long i = 0; i < n; i++)
			CHILD_CHECK(ptr[i] == (i == per_page ? -1 : (int)i));
		CHILD_CHECK(zdev_open(NULL, 0, &child_dev) == 0);
		CHILD_CHECK(zdev_get_stats(child_dev, &st) == 0);
		CHILD_CHECK(st.device_pages == npages - 1);
		CHILD_CHECK(write(ready[1], "", 1) == 1);
		for (;;)
			pause();
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	close(ready[1]);

	/* shared: mapped read-only until written */
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(m, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_READ);
	ck_assert_uint_eq(pool_used(0), npages);
	ck_assert_int_eq(ptr[per_page], (int)per_page);

	ptr[0] = -1;	/* page 0 is the parent's own now */
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ck_assert_uint_eq(m[0], ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[1], ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_READ);
	ck_assert_uint_eq(device_pages(dev0), npages - 1);
	/* the child still holds page 0 */
	ck_assert_uint_eq(pool_used(0), npages);

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_uint_eq(wait_pool_used(0, npages - 1), npages - 1);

	/* the parent's alone again: a write keeps the page on the device, as
	 * the kernel reuses a page no one else maps */
	ptr[2 * per_page] = -1;
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ck_assert_uint_eq(m[2], ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(device_pages(dev0), npages - 1);
	buffer_free(b);
	ck_assert_uint_eq(pool_used(0), 0);
}
END_TEST

/*
 * A migration to the private device over coherent pages a fork shares
 * leaves them to their device, still read-only: the parent's first write
 * still makes its page its own.
 */
START_TEST(fork_protection_survives_migration)
{
	unsigned long npages = 8, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b;
	int ready[2], status = 0;
	const uint8_t *m;
	char c;
	int *ptr;
	pid_t pid;

	SKIP_WITHOUT_FEATURE(ZDEV_FEATURE_FORK_SHARED);
	b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	m = b->mirror;
	ptr = b->ptr;
	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, 4);
	ck_assert_int_eq(pipe(ready), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		CHILD_CHECK(write(ready[1], "", 1) == 1);
		for (;;)
			pause();
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	close(ready[1]);

	ck_assert_int_eq(migrate_to_dev(devp, b, npages), -ENOENT);
	ASSERT_EQ_V(b->cpages, 4);
	ptr[0] = -1;
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, 4);
	ck_assert_uint_eq(m[0], ZDEV_PROT_WRITE);
	ck_assert_uint_eq(m[1], ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_READ);
	ck_assert_uint_eq(device_pages(dev0), 3);

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	buffer_free(b);
}
END_TEST

/*
 * exclusive_cow: pages of the device made exclusive, then a fork: each
 * process's increments revoke and copy, and each sees its own.
 */
START_TEST(exclusive_cow)
{
	unsigned long npages = 16, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	struct zdev_result res = { 0 };
	int *ptr = b->ptr;
	pid_t pid;

	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	ck_assert_int_eq(zdev_make_exclusive(dev0, b->ptr, npages, &res), 0);
	ASSERT_EQ_V(res.cpages, npages);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		for (unsigned long i = 0; i < n; i++)
			CHILD_CHECK(ptr[i]++ == (int)i);
		for (unsigned long i = 0; i < n; i++)
			CHILD_CHECK(ptr[i] == (int)i + 1);
		_exit(0);
	}
	for (unsigned long i = 0; i < n; i++)
		ck_assert_int_eq(ptr[i]++, (int)i);
	ASSERT_EACH_INT(b->ptr, n, i + 1);
	wait_child_ok(pid);
	ASSERT_EACH_INT(b->ptr, n, i + 1);
	buffer_free(b);
}
END_TEST

/* Shared memory stays where it is; a private file mapping's copy-on-write
 * pages migrate (migrate_file_private), its file pages would stay. */
START_TEST(migrate_shared_and_file)
{
	unsigned long npages = 4, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	char path[] = "/tmp/zdev-coherent-XXXXXX";
	int fd;

	ck_assert_int_eq(migrate_to_dev(dev0, b, npages), -ENOENT);
	buffer_free(b);

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	b = buffer_new(size);
	buffer_mmap(b, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	b->fd = fd;
	memset(b->ptr, 1, size);	/* copy-on-write pages, anonymous ones */
	ASSERT_MIGRATED(dev0, b, npages);
	ck_assert_uint_eq(pool_used(0), npages);
	ASSERT_EACH_BYTE(b->ptr, size, 1);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	buffer_free(b);
}
END_TEST

/* migrate_anon_huge_empty: a never-touched read-only THP window migrates
 * page by page, each a zeroed page of its own. */
START_TEST(migrate_anon_huge_empty)
{
	unsigned long size = 2ul << 20, npages = size >> page_shift;
	struct hmm_buffer *b = buffer_map(2 * size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
	void *base = b->ptr;

	b->ptr = (void *)(((uintptr_t)b->ptr + size - 1) & ~(uintptr_t)(size - 1));
	ck_assert_int_eq(madvise(b->ptr, size, MADV_HUGEPAGE), 0);
	memset(b->mirror, 0xff, size);
	ASSERT_MIGRATED(dev0, b, npages);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), 0);
	ASSERT_EACH_INT(b->ptr, size / sizeof(int), 0);
	ck_assert_uint_eq(pool_used(0), npages);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_READ);
	b->ptr = base;
	buffer_free(b);
}
END_TEST

struct unmapper {
	char *half;		/* the second half of the buffer */
	size_t len;
	atomic_bool stop;
	int rounds;
};

static void *unmap_remap(void *arg)
{
	struct unmapper *u = arg;

	while (!atomic_load(&u->stop)) {
		if (u->rounds & 1)
			munmap(u->half, u->len);
		else
			madvise(u->half, u->len, MADV_DONTNEED);
		if (mmap(u->half, u->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			break;
		memset(u->half, 1, u->len);
		u->rounds++;
	}
	return NULL;
}

/*
 * Migrations to the device and back while another thread unmaps, zaps and
 * maps again half of the range: whatever each call returns, no pool page is
 * left behind.
 */
START_TEST(racing_unmap)
{
	unsigned long npages = 64, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	struct unmapper u = { .half = (char *)b->ptr + size / 2, .len = size / 2 };
	struct zdev_result res;
	pthread_t t;

	memset(b->ptr, 1, size);
	ck_assert_int_eq(pthread_create(&t, NULL, unmap_remap, &u), 0);
	for (int i = 0; i < 200; i++) {
		int ret = zdev_migrate_to_device(dev0, b->ptr, npages, &res);

		ck_assert_msg(ret == 0 || ret == -ENOENT || ret == -EINVAL,
			      "migration %d: %d", i, ret);
		ck_assert_int_eq(zdev_migrate_to_system(dev0, b->ptr, npages, &res), 0);
	}
	atomic_store(&u.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_eq(device_pages(dev0), 0);
	ck_assert_uint_eq(pool_used(0), 0);
	buffer_free(b);
}
END_TEST

/* munmap and MADV_DONTNEED of coherent pages give their pool pages back. */
START_TEST(munmap_returns_pool_pages)
{
	unsigned long npages = NPAGES, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	char *p = b->ptr;

	memset(p, 1, size);
	ASSERT_MIGRATED(dev0, b, npages);
	ck_assert_uint_eq(pool_used(0), npages);
	ck_assert_int_eq(munmap(p + size / 2, size / 2), 0);
	ck_assert_uint_eq(pool_used(0), npages / 2);
	ck_assert_uint_eq(device_pages(dev0), npages / 2);
	ck_assert_int_eq(madvise(p, page_size, MADV_DONTNEED), 0);
	ck_assert_uint_eq(pool_used(0), npages / 2 - 1);
	ck_assert_int_eq(p[0], 0);
	ck_assert_int_eq(p[page_size], 1);
	b->size = size / 2;
	buffer_free(b);
	ck_assert_uint_eq(pool_used(0), 0);
	ck_assert_uint_eq(device_pages(dev0), 0);
}
END_TEST

/* mremap moves the device's hold with the pages. */
START_TEST(mremap_keeps_pages)
{
	unsigned long npages = NPAGES, size = npages << page_shift, n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	void *to = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(to, MAP_FAILED);
	FILL_INT(b->ptr, n, i);
	ASSERT_MIGRATED(dev0, b, npages);
	b->ptr = mremap(b->ptr, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	ck_assert_ptr_eq(b->ptr, to);
	ASSERT_EACH_INT(b->ptr, n, i);
	ASSERT_CMD(dev0, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_DEV_COHERENT_LOCAL | ZDEV_PROT_WRITE);
	ck_assert_uint_eq(pool_used(0), npages);
	buffer_free(b);
	ck_assert_uint_eq(pool_used(0), 0);
}
END_TEST

/* A device with its memory full moves what fits. */
START_TEST(pool_limit)
{
	/* 64M of device memory: 16384 pages */
	unsigned long npages = 16384 + 16, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	ck_assert_int_eq(migrate_to_dev(dev1, b, npages), -ENOENT);
	ck_assert_uint_eq(pool_used(1), 16384);
	buffer_free(b);
	ck_assert_uint_eq(pool_used(1), 0);
}
END_TEST

static Suite *coherent_suite(void)
{
	Suite *s = suite_create("coherent");

	hmm_add_test(s, "memory_type", memory_type, setup, teardown);
	hmm_add_test(s, "migrate", migrate, setup, teardown);
	hmm_add_test(s, "migrate_untouched", migrate_untouched, setup, teardown);
	hmm_add_test(s, "migrate_multiple", migrate_multiple, setup, teardown);
	hmm_add_test(s, "migrate_fault", migrate_fault, setup, teardown);
	hmm_add_test(s, "migrate_mixed", migrate_mixed, setup, teardown);
	hmm_add_test(s, "snapshot", snapshot, setup, teardown);
	hmm_add_test(s, "double_map", double_map, setup, teardown);
	hmm_add_test(s, "migrate_release", migrate_release, setup, teardown);
	hmm_add_test(s, "exclusive", exclusive, setup, teardown);
	hmm_add_test(s, "exclusive_cow", exclusive_cow, setup, teardown);
	hmm_add_test(s, "migrate_shared_and_file", migrate_shared_and_file, setup, teardown);
	hmm_add_test(s, "migrate_anon_huge_empty", migrate_anon_huge_empty, setup, teardown);
	hmm_add_test(s, "anon_write_child", anon_write_child, setup, teardown);
	hmm_add_test(s, "hmm_cow_in_device", hmm_cow_in_device, setup, teardown);
	hmm_add_test(s, "fork_shares_until_written", fork_shares_until_written, setup, teardown);
	hmm_add_test(s, "fork_protection_survives_migration", fork_protection_survives_migration,
		     setup, teardown);
	hmm_add_test(s, "munmap_returns_pool_pages", munmap_returns_pool_pages, setup, teardown);
	hmm_add_test(s, "mremap_keeps_pages", mremap_keeps_pages, setup, teardown);
	hmm_add_test(s, "racing_unmap", racing_unmap, setup, teardown);
	hmm_add_test(s, "pool_limit", pool_limit, setup, teardown);
	return s;
}

int main(void)
{
	static const char *const args[] = { "--devices", "3", "--memory", "64M",
					     "--memory-type", "coherent,coherent", NULL };

	return run_suite_with_zdevd(&zdevd, args, coherent_suite());
}
