/* SPDX-License-Identifier: MIT */
/*
 * Conformance: the kernel's hmm-tests scenarios of fixture "hmm" (one
 * device-private device, /dev/hmm_dmirror0 there, zdev device 0 here), each
 * with the assertions the kernel makes, against a private zdevd.
 *
 * How the driver's ioctls map onto libzdev, and the verification read that
 * ends migrate_to_dev(), are told in hmm-common.h; besides those, RELEASE =
 * zdev_release and FLAGS = zdev_set_flags.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "kernel-thp.h"
#include "zdev.h"
#include "hmm-common.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define NTIMES 10
#define HMM_BUFFER_SIZE (1024ul << 12)	/* 1024 pages of 4 KiB */
#define TWOMEG (1ul << 21)
#define PM_SWAP (1ull << 62)
#define PM_PRESENT (1ull << 63)

static struct zdev *dev;		/* the fixture's device 0 */

/* ---- helpers ---- */

static unsigned long align_up(unsigned long x, unsigned long a)
{
	return (x + a - 1) & ~(a - 1);
}

static unsigned long read_ulong_file(const char *path)
{
	unsigned long v = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* The THP size, as the kernel test's read_pmd_pagesize(), 2 MiB if unknown. */
static unsigned long pmd_size(void)
{
	unsigned long v = read_ulong_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");

	return v ? v : TWOMEG;
}

/* The default hugetlb page size in bytes (Hugepagesize: in /proc/meminfo). */
static unsigned long default_hugepage_size(void)
{
	unsigned long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return TWOMEG;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb ? kb << 10 : TWOMEG;
}

static unsigned long free_default_hugepages(void)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%lukB/free_hugepages",
		 default_hugepage_size() >> 10);
	return read_ulong_file(path);
}

/*
 * A buffer of 2 MiB (rounded up to the default hugetlb page size) mapped
 * MAP_HUGETLB, with mirror_per_page bytes of mirror a page; or NULL, the
 * test skipped, when this machine has no huge page to give.
 */
static struct hmm_buffer *hugetlb_buffer_map(unsigned long mirror_per_page)
{
	unsigned long hsize = default_hugepage_size(), size = align_up(TWOMEG, hsize);
	struct hmm_buffer *b;

	if (!free_default_hugepages()) {
		check_skip("no free hugetlb pages of %lu kB", hsize >> 10);
		return NULL;
	}
	b = buffer_new((size >> page_shift) * mirror_per_page);
	b->ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB,
		      -1, 0);
	if (b->ptr == MAP_FAILED) {
		/* as the kernel test: no huge page after all, nothing to check */
		b->ptr = NULL;
		buffer_free(b);
		check_skip("a hugetlb page of %lu kB could not be allocated", hsize >> 10);
		return NULL;
	}
	b->size = size;
	return b;
}

/* A buffer with a mirror of size bytes on an unnamed file in /tmp of size
 * bytes (b->fd), not mapped yet. */
static struct hmm_buffer *file_buffer_new(unsigned long size)
{
	struct hmm_buffer *b = buffer_new(size);
	int ret;

	b->fd = open("/tmp", O_TMPFILE | O_EXCL | O_RDWR, 0600);
	ck_assert_msg(b->fd >= 0, "O_TMPFILE in /tmp: %s", strerror(errno));
	do
		ret = ftruncate(b->fd, (off_t)size);
	while (ret == -1 && errno == EINTR);
	ck_assert_int_eq(ret, 0);
	return b;
}

/* Round c of a repeated scenario: a fresh private anonymous buffer of size
 * bytes, with the round named in failure messages. */
static struct hmm_buffer *round_buffer_map(int c, unsigned long size)
{
	snprintf(variant, sizeof(variant), "round %d: ", c);
	return buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
}

/* A PMD range, aligned, madvise()d with advice, inside a mapping twice its size. */
struct thp_range {
	struct hmm_buffer *b;
	void *base;
	unsigned long size, npages;
};

static struct thp_range thp_range_map(int prot, unsigned long mirror_size, int advice)
{
	struct thp_range r;

	r.size = pmd_size();
	r.npages = r.size >> page_shift;
	r.b = buffer_new(mirror_size);
	buffer_mmap(r.b, 2 * r.size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	r.base = r.b->ptr;
	r.b->ptr = (void *)align_up((uintptr_t)r.base, r.size);
	ASSERT_EQ_V(madvise(r.b->ptr, r.size, advice), 0);
	return r;
}

/* The range unmapped and mapped afresh (MADV_HUGEPAGE), to start over. */
static void thp_range_remap(struct thp_range *r, int prot)
{
	ck_assert_int_eq(munmap(r->base, 2 * r->size), 0);
	r->base = mmap(NULL, 2 * r->size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(r->base, MAP_FAILED);
	r->b->ptr = (void *)align_up((uintptr_t)r->base, r->size);
	ck_assert_int_eq(madvise(r->b->ptr, r->size, MADV_HUGEPAGE), 0);
}

static void thp_range_free(struct thp_range *r)
{
	r->b->ptr = r->base;
	buffer_free(r->b);
}

/*
 * The fork child of anon_write_child(_shared), on a buffer of npages pages
 * that holds i (and -i in the mirror unless it migrated, when the
 * verification read filled the mirror): the child sees the parent's values,
 * and with a device of its own (a mirror of its own address space) writes the
 * mirror into its buffer, in one fault round; unless migrated, the buffer
 * then holds the mirror's values. Exits the child: 0, or 1 on a failure.
 */
static void child_write_and_exit(struct hmm_buffer *b, unsigned long npages, int migrated)
{
	unsigned long n = (npages << page_shift) / sizeof(int);
	struct zdev *child_dev = NULL;
	struct zdev_result res = { 0 };
	int ret;

	CHILD_EACH_INT(b->ptr, n, i);
	if (!migrated)
		CHILD_EACH_INT(b->mirror, n, -i);
	ret = zdev_open(NULL, 0, &child_dev);
	if (ret)
		fprintf(stderr, "child: zdev_open: %d (%s)\n", ret, strerror(-ret));
	CHILD_CHECK(ret == 0);
	ret = zdev_write(child_dev, b->ptr, npages, b->mirror, &res);
	if (ret)
		fprintf(stderr, "child: zdev_write: %d (%s)\n", ret, strerror(-ret));
	CHILD_CHECK(ret == 0);
	if (res.cpages != npages || res.faults != 1)
		fprintf(stderr, "child: cpages %llu (want %lu), faults %llu (want 1)\n",
			(unsigned long long)res.cpages, npages, (unsigned long long)res.faults);
	CHILD_CHECK(res.cpages == npages);
	CHILD_CHECK(res.faults == 1);
	if (!migrated)
		CHILD_EACH_INT(b->ptr, n, -i);
	zdev_close(child_dev);
	_exit(0);
}

/* ---- the fixture ---- */

static void hmm_setup(void)
{
	hmm_init_page_size();
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
}

static void hmm_teardown(void)
{
	ck_assert_int_eq(zdev_close(dev), 0);
	dev = NULL;
}

/* ---- the tests ---- */

START_TEST(open_close)
{
	/* the fixture's open and close are the test */
	ck_assert_ptr_nonnull(dev);
}
END_TEST

START_TEST(anon_read)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	unsigned long first = 2 * page_size / sizeof(int);
	int *ptr = b->ptr;
	int val;

	/* Pages 0 and 1 stay zero: page 0 never touched, page 1 the zero page. */
	for (unsigned long i = first; i < size / sizeof(int); i++)
		ptr[i] = (int)i;
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ), 0);
	val = *(volatile int *)((char *)b->ptr + page_size);
	ck_assert_int_eq(val, 0);

	ASSERT_CMD_FAULTS(dev, OP_READ, b, npages, 1);

	ASSERT_EACH_INT(b->mirror, first, 0);
	ASSERT_EACH_INT((int *)b->mirror + first, size / sizeof(int) - first, i + first);
	buffer_free(b);
}
END_TEST

START_TEST(anon_read_prot)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, size / sizeof(int), i);
	/* the mirror tells whether the device wrote anything */
	FILL_INT(b->mirror, size / sizeof(int), -i);
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_NONE), 0);

	ck_assert_int_eq(dev_cmd(dev, OP_READ, b, npages), -EFAULT);

	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ), 0);
	ASSERT_EACH_INT(b->ptr, size / sizeof(int), i);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), -i);
	buffer_free(b);
}
END_TEST

START_TEST(anon_write)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->mirror, size / sizeof(int), i);

	ASSERT_CMD_FAULTS(dev, OP_WRITE, b, npages, 1);

	ASSERT_EACH_INT(b->ptr, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

START_TEST(anon_write_prot)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);

	/* a device read of one page maps the zero page */
	ASSERT_CMD_FAULTS(dev, OP_READ, b, 1, 1);

	FILL_INT(b->mirror, size / sizeof(int), i);
	ck_assert_int_eq(dev_cmd(dev, OP_WRITE, b, npages), -EPERM);
	ASSERT_EACH_INT(b->ptr, size / sizeof(int), 0);

	/* writable now: the device's write replaces the zero page */
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ | PROT_WRITE), 0);
	ASSERT_CMD_FAULTS(dev, OP_WRITE, b, npages, 1);
	ASSERT_EACH_INT(b->ptr, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

/*
 * A device writes a fork child's copy-on-write memory: the parent's copy
 * keeps its values. Every combination of "migrated to the device before the
 * fork" and "THP-backed".
 */
START_TEST(anon_write_child)
{
	for (int migrate = 0; migrate < 2; migrate++) {
		for (int use_thp = 0; use_thp < 2; use_thp++) {
			unsigned long size = align_up(use_thp ? pmd_size() : HMM_BUFFER_SIZE, page_size);
			unsigned long npages = size >> page_shift, n = size / sizeof(int);
			struct hmm_buffer *b;
			void *base;
			pid_t pid;

			ck_assert_uint_ne(npages, 0);
			snprintf(variant, sizeof(variant), "migrate %d use_thp %d: ", migrate, use_thp);
			b = buffer_map(2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
			base = b->ptr;
			if (use_thp) {
				void *map = (void *)align_up((uintptr_t)b->ptr, size);

				ASSERT_EQ_V(madvise(map, size, MADV_HUGEPAGE), 0);
				b->ptr = map;
			}
			FILL_INT(b->ptr, n, i);
			FILL_INT(b->mirror, n, -i);
			if (migrate)
				ASSERT_MIGRATED(dev, b, npages);

			pid = fork();
			ck_assert_int_ne(pid, -1);
			if (pid == 0)
				child_write_and_exit(b, npages, migrate);
			wait_child_ok(pid);
			/* copy-on-write: the parent's buffer did not change */
			ASSERT_EACH_INT(b->ptr, n, i);
			b->ptr = base;
			buffer_free(b);
		}
	}
}
END_TEST

START_TEST(anon_write_child_shared)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	unsigned long n = size / sizeof(int);
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);
	pid_t pid;

	FILL_INT(b->ptr, n, i);
	FILL_INT(b->mirror, n, -i);

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		child_write_and_exit(b, npages, 0);
	wait_child_ok(pid);
	/* a shared mapping: the parent sees what the device wrote */
	ASSERT_EACH_INT(b->ptr, n, -i);
	buffer_free(b);
}
END_TEST

START_TEST(anon_write_huge)
{
	struct thp_range r = thp_range_map(PROT_READ | PROT_WRITE, 2 * pmd_size(), MADV_HUGEPAGE);

	FILL_INT(r.b->mirror, r.size / sizeof(int), i);

	ASSERT_CMD_FAULTS(dev, OP_WRITE, r.b, r.npages, 1);
	ASSERT_EACH_INT(r.b->ptr, r.size / sizeof(int), i);
	thp_range_free(&r);
}
END_TEST

START_TEST(anon_write_hugetlbfs)
{
	struct hmm_buffer *b = hugetlb_buffer_map(page_size);
	unsigned long size, npages;

	if (!b)
		return;
	size = b->size;
	npages = size >> page_shift;
	FILL_INT(b->mirror, size / sizeof(int), i);

	ASSERT_CMD_FAULTS(dev, OP_WRITE, b, npages, 1);
	ASSERT_EACH_INT(b->ptr, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

START_TEST(file_read)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = file_buffer_new(size);
	ssize_t len;

	FILL_INT(b->mirror, size / sizeof(int), i);
	len = pwrite(b->fd, b->mirror, size, 0);
	ck_assert_int_eq(len, (ssize_t)size);
	memset(b->mirror, 0, size);
	buffer_mmap(b, size, PROT_READ, MAP_SHARED, b->fd);

	ASSERT_CMD_FAULTS(dev, OP_READ, b, npages, 1);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

START_TEST(file_write)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = file_buffer_new(size);
	ssize_t len;

	buffer_mmap(b, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd);
	FILL_INT(b->mirror, size / sizeof(int), i);

	ASSERT_CMD_FAULTS(dev, OP_WRITE, b, npages, 1);
	ASSERT_EACH_INT(b->ptr, size / sizeof(int), i);

	/* the device wrote the file too */
	len = pread(b->fd, b->mirror, size, 0);
	ck_assert_int_eq(len, (ssize_t)size);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

START_TEST(migrate)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, size / sizeof(int), i);
	ASSERT_MIGRATED(dev, b, npages);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

/* A private file mapping the CPU wrote holds anonymous copy-on-write pages:
 * those migrate like any anonymous page. */
START_TEST(migrate_file_private)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = file_buffer_new(size);

	buffer_mmap(b, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, b->fd);
	FILL_INT(b->ptr, size / sizeof(int), i);

	ASSERT_MIGRATED(dev, b, npages);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

START_TEST(migrate_fault)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, size / sizeof(int), i);
	ASSERT_MIGRATED(dev, b, npages);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

	/* the CPU takes the first half back */
	ASSERT_EACH_INT(b->ptr, size / (2 * sizeof(int)), i);

	/* half on the device, half in system memory: all of it goes again */
	ASSERT_MIGRATED(dev, b, npages);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
	buffer_free(b);
}
END_TEST

START_TEST(migrate_release)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);

	FILL_INT(b->ptr, size / sizeof(int), i);
	ASSERT_MIGRATED(dev, b, npages);
	ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

	/* the device frees its memory: the pages are evicted to system RAM */
	ck_assert_int_eq(zdev_release(dev), 0);

	ASSERT_EACH_INT(b->ptr, size / (2 * sizeof(int)), i);
	buffer_free(b);
}
END_TEST

START_TEST(migrate_shared)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS);

	/* shared memory never becomes device-private */
	ck_assert_int_eq(migrate_to_dev(dev, b, npages), -ENOENT);
	buffer_free(b);
}
END_TEST

START_TEST(migrate_multiple)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;

	for (int c = 0; c < NTIMES; c++) {
		struct hmm_buffer *b = round_buffer_map(c, size);

		FILL_INT(b->ptr, size / sizeof(int), i);
		ASSERT_MIGRATED(dev, b, npages);
		ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);
		/* device-private: the CPU's reads fault every page back */
		ASSERT_EACH_INT(b->ptr, size / sizeof(int), i);
		buffer_free(b);
	}
}
END_TEST

START_TEST(anon_read_multiple)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;

	for (int c = 0; c < NTIMES; c++) {
		struct hmm_buffer *b = round_buffer_map(c, size);

		FILL_INT(b->ptr, size / sizeof(int), i + c);
		ASSERT_CMD_FAULTS(dev, OP_READ, b, npages, 1);
		ASSERT_EACH_INT(b->mirror, size / sizeof(int), i + c);
		buffer_free(b);
	}
}
END_TEST

struct unmapper {
	char *ptr;
	unsigned long size;
};

static void *unmap_second_half(void *arg)
{
	struct unmapper *u = arg;
	unsigned int r = 0;
	struct timespec ts = { 0, 0 };

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (unsigned int)rand();
	/* a little while into the device's read: 0 to 32 µs */
	ts.tv_nsec = r % 32000;
	nanosleep(&ts, NULL);
	munmap(u->ptr + u->size / 2, u->size / 2);
	return NULL;
}

/* munmap racing a device read must not crash anything; a read that
 * succeeds saw the whole buffer. */
START_TEST(anon_teardown)
{
	unsigned long npages = HMM_BUFFER_SIZE >> page_shift, size = npages << page_shift;

	for (int c = 0; c < NTIMES; c++) {
		struct hmm_buffer *b = round_buffer_map(c, size);
		struct unmapper u = { b->ptr, size };
		pthread_t thread;
		int ret;

		FILL_INT(b->ptr, size / sizeof(int), i + c);
		ASSERT_EQ_V(pthread_create(&thread, NULL, unmap_second_half, &u), 0);
		ret = dev_cmd(dev, OP_READ, b, npages);
		if (ret == 0) {
			ASSERT_EQ_V(b->cpages, npages);
			ASSERT_EQ_V(b->faults, 1);
			ASSERT_EACH_INT(b->mirror, size / sizeof(int), i + c);
		}
		pthread_join(thread, NULL);
		/* the second half is gone: unmap only the first */
		b->size = size / 2;
		buffer_free(b);
	}
}
END_TEST

/* A never-touched THP range becomes one zero-filled device THP. */
START_TEST(migrate_anon_huge_empty)
{
	struct thp_range r = thp_range_map(PROT_READ, pmd_size(), MADV_HUGEPAGE);

	memset(r.b->mirror, 0xFF, r.size);
	ASSERT_MIGRATED(dev, r.b, r.npages);
	ASSERT_EACH_INT(r.b->mirror, r.size / sizeof(int), 0);
	thp_range_free(&r);
}
END_TEST

/* The huge zero page migrates as zeroes, and comes back as zeroes. */
START_TEST(migrate_anon_huge_zero)
{
	struct thp_range r = thp_range_map(PROT_READ, pmd_size(), MADV_HUGEPAGE);
	int val;

	memset(r.b->mirror, 0xFF, r.size);
	val = *(volatile int *)r.b->ptr;
	ck_assert_int_eq(val, 0);

	ASSERT_MIGRATED(dev, r.b, r.npages);
	ASSERT_EACH_INT(r.b->mirror, r.size / sizeof(int), 0);

	/* the CPU faults it all back (the check stops at the first mismatch) */
	ASSERT_EACH_INT(r.b->ptr, r.size / sizeof(int), 0);
	thp_range_free(&r);
}
END_TEST

START_TEST(migrate_anon_huge_free)
{
	struct thp_range r = thp_range_map(PROT_READ | PROT_WRITE, pmd_size(), MADV_HUGEPAGE);

	FILL_INT(r.b->ptr, r.size / sizeof(int), i);
	ASSERT_MIGRATED(dev, r.b, r.npages);
	ASSERT_EACH_INT(r.b->mirror, r.size / sizeof(int), i);

	/* MADV_FREE of a device-resident THP */
	ck_assert_int_eq(madvise(r.b->ptr, r.size, MADV_FREE), 0);
	thp_range_free(&r);
}
END_TEST

START_TEST(migrate_anon_huge_fault)
{
	struct thp_range r = thp_range_map(PROT_READ | PROT_WRITE, pmd_size(), MADV_HUGEPAGE);
	uint64_t *pm = calloc(r.npages, sizeof(*pm));
	const uint8_t *snapshot = r.b->mirror;
	int fd;

	ck_assert_ptr_nonnull(pm);
	FILL_INT(r.b->ptr, r.size / sizeof(int), i);
	if (!kernel_thp_present(r.b->ptr, r.size))
		madvise(r.b->ptr, r.size, MADV_COLLAPSE);
	if (!kernel_thp_present(r.b->ptr, r.size)) {
		check_skip("the kernel gave no THP to a MADV_HUGEPAGE range (%s)",
			   kernel_thp_settings());
		free(pm);
		thp_range_free(&r);
		return;
	}
	ASSERT_MIGRATED(dev, r.b, r.npages);
	ASSERT_EACH_INT(r.b->mirror, r.size / sizeof(int), i);

	/* one device THP, mapped at PMD level */
	ASSERT_CMD(dev, OP_SNAPSHOT, r.b, r.npages);
	ASSERT_EACH_BYTE(snapshot, r.npages,
			 ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE | ZDEV_PROT_PMD);

	/* the CPU sees device-private entries: swap-like, not present */
	fd = open("/proc/self/pagemap", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, pm, r.npages * sizeof(*pm),
			       (off_t)(((uintptr_t)r.b->ptr >> page_shift) * sizeof(*pm))),
			 (ssize_t)(r.npages * sizeof(*pm)));
	close(fd);
	for (unsigned long i = 0; i < r.npages; i++)
		if (!(pm[i] & PM_SWAP) || (pm[i] & PM_PRESENT))
			ck_abort_msg("pagemap[%lu] = 0x%016llx: expected PM_SWAP set and not present",
				     i, (unsigned long long)pm[i]);

	/* the THP fault path brings it back */
	ASSERT_EACH_INT(r.b->ptr, r.size / sizeof(int), i);
	free(pm);
	thp_range_free(&r);
}
END_TEST

/* Unmapping part of a device THP splits it; the rest keeps its data. */
START_TEST(migrate_partial_unmap_fault)
{
	const unsigned long size = pmd_size();
	const unsigned long offsets[] = { 0, size / 4, size / 2 };

	for (int use_thp = 0; use_thp < 2; use_thp++) {
		for (unsigned int j = 0; j < sizeof(offsets) / sizeof(offsets[0]); j++) {
			struct thp_range r;
			const int *ptr;

			snprintf(variant, sizeof(variant), "use_thp %d offset %lu: ", use_thp, offsets[j]);
			r = thp_range_map(PROT_READ | PROT_WRITE, size,
					  use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
			memset(r.b->mirror, 0xFF, size);

			FILL_INT(r.b->ptr, size / sizeof(int), i);
			ASSERT_MIGRATED(dev, r.b, r.npages);
			ASSERT_EACH_INT(r.b->mirror, size / sizeof(int), i);

			munmap((char *)r.b->ptr + offsets[j], size / 2);

			ptr = r.b->ptr;
			for (unsigned long i = 0; i < size / sizeof(int); i++) {
				if (i * sizeof(int) >= offsets[j] &&
				    i * sizeof(int) < offsets[j] + size / 2)
					continue;
				if (ptr[i] != (int)i)
					ck_abort_msg("%sptr[%lu] = %d, expected %d", variant, i,
						     ptr[i], (int)i);
			}
			thp_range_free(&r);
		}
	}
}
END_TEST

/* mremap of a range before or after it migrated, moving or keeping the old
 * mapping, THP or not, to an aligned or unaligned new address: the CPU reads
 * the data through the new address. */
START_TEST(migrate_remap_fault)
{
	const unsigned long size = pmd_size();
	const unsigned long offsets[] = { 0, size / 4, size / 2 };

	for (int before = 0; before < 2; before++)
	for (int dont_unmap = 0; dont_unmap < 2; dont_unmap++)
	for (int use_thp = 0; use_thp < 2; use_thp++)
	for (unsigned int j = 0; j < sizeof(offsets) / sizeof(offsets[0]); j++) {
		int flags = MREMAP_MAYMOVE | MREMAP_FIXED | (dont_unmap ? MREMAP_DONTUNMAP : 0);
		unsigned long npages = size >> page_shift;
		struct hmm_buffer *b = buffer_new(size);
		char *base, *map, *target;
		void *new_ptr = NULL;
		const int *ptr;

		snprintf(variant, sizeof(variant), "before %d dont_unmap %d use_thp %d offset %lu: ",
			 before, dont_unmap, use_thp, offsets[j]);
		memset(b->mirror, 0xFF, size);
		buffer_mmap(b, 8 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
		base = b->ptr;
		map = (char *)align_up((uintptr_t)b->ptr, size);
		ASSERT_EQ_V(madvise(map, size, use_thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE), 0);
		/* room for the move right after the range */
		munmap(map + size, 2 * size);
		b->ptr = map;
		target = map + size + offsets[j];

		FILL_INT(b->ptr, size / sizeof(int), i);
		if (before) {
			new_ptr = mremap(map, size, size, flags, target);
			ck_assert_msg(new_ptr != MAP_FAILED, "%smremap: %s", variant, strerror(errno));
			b->ptr = new_ptr;
		}

		ASSERT_MIGRATED(dev, b, npages);
		ASSERT_EACH_INT(b->mirror, size / sizeof(int), i);

		if (!before) {
			new_ptr = mremap(map, size, size, flags, target);
			ck_assert_msg(new_ptr != MAP_FAILED, "%smremap: %s", variant, strerror(errno));
			b->ptr = new_ptr;
		}

		ptr = b->ptr;
		ASSERT_EACH_INT(ptr, size / sizeof(int), i);

		munmap(new_ptr, size);
		b->ptr = base;
		buffer_free(b);
	}
}
END_TEST

/* A failing large device allocation falls back to 4 KiB device pages, and a
 * failing large system allocation to 4 KiB system pages, with the same data. */
START_TEST(migrate_anon_huge_err)
{
	struct thp_range r = thp_range_map(PROT_READ | PROT_WRITE, 2 * pmd_size(), MADV_HUGEPAGE);
	int *ptr;

	memset(r.b->mirror, 0xFF, 2 * r.size);
	FILL_INT(r.b->ptr, r.size / sizeof(int), i);

	ck_assert_int_eq(zdev_set_flags(dev, ZDEV_FLAG_FAIL_ALLOC), 0);
	ASSERT_MIGRATED(dev, r.b, r.npages);
	ASSERT_EACH_INT(r.b->mirror, r.size / sizeof(int), i);

	/* one 4 KiB page back */
	ptr = r.b->ptr;
	ck_assert_int_eq(ptr[2048], 2048);

	/* a fresh range, to start over */
	thp_range_remap(&r, PROT_READ | PROT_WRITE);
	FILL_INT(r.b->ptr, r.size / sizeof(int), i);

	/* this time a device THP */
	ASSERT_MIGRATED(dev, r.b, r.npages);

	/* and the way back cannot have a large system page */
	ck_assert_int_eq(zdev_set_flags(dev, ZDEV_FLAG_FAIL_ALLOC), 0);
	ck_assert_int_eq(migrate_to_sys(dev, r.b, r.npages), 0);
	ptr = r.b->ptr;
	ck_assert_int_eq(ptr[2048], 2048);
	thp_range_free(&r);
}
END_TEST

START_TEST(migrate_anon_huge_zero_err)
{
	struct thp_range r = thp_range_map(PROT_READ, 2 * pmd_size(), MADV_HUGEPAGE);
	int *ptr, val;

	memset(r.b->mirror, 0xFF, 2 * r.size);

	ck_assert_int_eq(zdev_set_flags(dev, ZDEV_FLAG_FAIL_ALLOC), 0);
	ASSERT_MIGRATED(dev, r.b, r.npages);
	ASSERT_EACH_INT(r.b->mirror, r.size / sizeof(int), 0);

	ptr = r.b->ptr;
	ck_assert_int_eq(ptr[2048], 0);

	thp_range_remap(&r, PROT_READ);

	/* a read installs the huge zero page */
	val = *(volatile int *)r.b->ptr;
	ck_assert_int_eq(val, 0);

	ck_assert_int_eq(zdev_set_flags(dev, ZDEV_FLAG_FAIL_ALLOC), 0);
	ASSERT_MIGRATED(dev, r.b, r.npages);

	/* the device memory comes back as zeroes */
	ASSERT_EACH_INT(r.b->ptr, r.size / sizeof(int), 0);
	thp_range_free(&r);
}
END_TEST

/* A hugetlb page shows as one PMD (or PUD) mapping in every snapshot byte. */
START_TEST(compound)
{
	/* a snapshot fills a byte a page */
	struct hmm_buffer *b = hugetlb_buffer_map(1);
	const uint8_t *snapshot;
	uint8_t level = ZDEV_PROT_PMD;
	unsigned long size, npages;

	if (!b)
		return;
	size = b->size;
	npages = size >> page_shift;
	snapshot = b->mirror;
	FILL_INT(b->ptr, size / sizeof(int), i);

	ASSERT_CMD(dev, OP_SNAPSHOT, b, npages);
	if (snapshot[0] == (ZDEV_PROT_WRITE | ZDEV_PROT_PUD))
		level = ZDEV_PROT_PUD;
	ASSERT_EACH_BYTE(snapshot, npages, ZDEV_PROT_WRITE | level);

	/* read-only now */
	ck_assert_int_eq(mprotect(b->ptr, size, PROT_READ), 0);
	ASSERT_CMD(dev, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(snapshot, npages, ZDEV_PROT_READ | level);
	buffer_free(b);
}
END_TEST

/* Writing device-private pages shared with a fork child (copy-on-write)
 * leaves the writer with ordinary writable system pages. */
START_TEST(hmm_cow_in_device)
{
	unsigned long npages = 4, size = npages << page_shift;
	struct hmm_buffer *b = buffer_map(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
	int status = 0;
	pid_t pid;

	FILL_INT(b->ptr, size / sizeof(int), i);
	ASSERT_MIGRATED(dev, b, npages);

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		/* the child only holds its share until it is killed */
		for (;;)
			pause();
	}
	/* the write breaks COW: the page comes back to system memory first */
	FILL_INT(b->ptr, size / sizeof(int), i);

	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	ck_assert_int_eq(WTERMSIG(status), SIGKILL);

	ASSERT_CMD(dev, OP_SNAPSHOT, b, npages);
	ASSERT_EACH_BYTE(b->mirror, npages, ZDEV_PROT_WRITE);
	buffer_free(b);
}
END_TEST

/* One tcase a test, named after it: CK_RUN_CASE=<test> runs that one alone. */
#define ADD_TEST(s, test) hmm_add_test(s, #test, test, hmm_setup, hmm_teardown)


static Suite *hmm_suite(void)
{
	Suite *s = suite_create("hmm");

	ADD_TEST(s, open_close);
	ADD_TEST(s, anon_read);
	ADD_TEST(s, anon_read_prot);
	ADD_TEST(s, anon_write);
	ADD_TEST(s, anon_write_prot);
	ADD_TEST(s, anon_write_child);
	ADD_TEST(s, anon_write_child_shared);
	ADD_TEST(s, anon_write_huge);
	ADD_TEST(s, anon_write_hugetlbfs);
	ADD_TEST(s, file_read);
	ADD_TEST(s, file_write);
	ADD_TEST(s, anon_read_multiple);
	ADD_TEST(s, anon_teardown);
	ADD_TEST(s, migrate);
	ADD_TEST(s, migrate_file_private);
	ADD_TEST(s, migrate_fault);
	ADD_TEST(s, migrate_release);
	ADD_TEST(s, migrate_shared);
	ADD_TEST(s, migrate_multiple);
	ADD_TEST(s, hmm_cow_in_device);
	ADD_TEST(s, migrate_anon_huge_empty);
	ADD_TEST(s, migrate_anon_huge_zero);
	ADD_TEST(s, migrate_anon_huge_free);
	ADD_TEST(s, migrate_anon_huge_fault);
	ADD_TEST(s, migrate_partial_unmap_fault);
	ADD_TEST(s, migrate_remap_fault);
	ADD_TEST(s, migrate_anon_huge_err);
	ADD_TEST(s, migrate_anon_huge_zero_err);
	ADD_TEST(s, compound);
	return s;
}

/*
 * The hugetlb tests need a free huge page. As root on a machine that has
 * none reserved, the program lends itself two for the run (the pool size is
 * the kernel's nr_hugepages) and gives them back before it exits; otherwise
 * those tests skip and say why.
 */
static char nr_hugepages_path[128];
static unsigned long nr_hugepages_before;
static bool hugepages_lent;

static bool write_ulong_file(const char *path, unsigned long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%lu\n", v) > 0;
	return fclose(f) == 0 && ok;
}

static void lend_hugetlb_pages(void)
{
	if (free_default_hugepages() || geteuid() != 0)
		return;
	snprintf(nr_hugepages_path, sizeof(nr_hugepages_path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/nr_hugepages",
		 default_hugepage_size() >> 10);
	nr_hugepages_before = read_ulong_file(nr_hugepages_path);
	hugepages_lent = write_ulong_file(nr_hugepages_path, nr_hugepages_before + 2);
	if (hugepages_lent)
		printf("hugetlb: %lu free pages lent to this run\n", free_default_hugepages());
}

static void give_back_hugetlb_pages(void)
{
	if (hugepages_lent && !write_ulong_file(nr_hugepages_path, nr_hugepages_before))
		fprintf(stderr, "hugetlb: could not give the lent pages back (%s)\n",
			nr_hugepages_path);
}

int main(void)
{
	int ret;

	lend_hugetlb_pages();
	ret = hmm_main(hmm_suite);
	give_back_hugetlb_pages();
	return ret;
}
