/* SPDX-License-Identifier: MIT */
/* What the hmm conformance tests share: see hmm-common.h. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"
#include "hmm-common.h"

unsigned long page_size;
unsigned int page_shift;
char variant[160];

static struct zdevd_instance zdevd;

void hmm_init_page_size(void)
{
	page_size = (unsigned long)sysconf(_SC_PAGESIZE);
	page_shift = (unsigned int)ffs((int)page_size) - 1;
}

bool read_fault_maps_zero_page(void)
{
	uint64_t word = 0;
	volatile char *p;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	p = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne((void *)p, MAP_FAILED);
	(void)p[0];
	ck_assert_int_eq(pread(fd, &word, sizeof(word), (off_t)((uintptr_t)p / page_size * sizeof(word))),
			 (ssize_t)sizeof(word));
	munmap((void *)p, page_size);
	close(fd);
	/* Present, yet mapped exclusively by no one: no page of its own, the
	 * shared zero page. pagemap hides frame numbers from an ordinary user,
	 * not these bits (zdevd asks PAGEMAP_SCAN then). */
	return (word & (1ull << 63)) && !(word & (1ull << 56));
}

struct hmm_buffer *buffer_new(unsigned long mirror_size)
{
	struct hmm_buffer *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	b->fd = -1;
	b->mirror = malloc(mirror_size);
	ck_assert_ptr_nonnull(b->mirror);
	return b;
}

void buffer_mmap(struct hmm_buffer *b, unsigned long size, int prot, int flags, int fd)
{
	b->size = size;
	b->ptr = mmap(NULL, size, prot, flags, fd, 0);
	ck_assert_ptr_ne(b->ptr, MAP_FAILED);
}

struct hmm_buffer *buffer_map(unsigned long size, int prot, int flags)
{
	struct hmm_buffer *b = buffer_new(size);

	buffer_mmap(b, size, prot, flags, -1);
	return b;
}

void buffer_free(struct hmm_buffer *b)
{
	if (b->ptr)
		munmap(b->ptr, b->size);
	if (b->fd >= 0)
		close(b->fd);
	free(b->mirror);
	free(b);
}

int dev_cmd(struct zdev *d, enum dev_op op, struct hmm_buffer *b, unsigned long npages)
{
	struct zdev_result res = { 0 };
	int ret = -EINVAL;

	switch (op) {
	case OP_READ:
		ret = zdev_read(d, b->ptr, npages, b->mirror, &res);
		break;
	case OP_WRITE:
		ret = zdev_write(d, b->ptr, npages, b->mirror, &res);
		break;
	case OP_SNAPSHOT:
		ret = zdev_snapshot(d, b->ptr, npages, b->mirror, &res);
		break;
	case OP_MIGRATE_TO_SYS:
		ret = zdev_migrate_to_system(d, b->ptr, npages, &res);
		break;
	}
	if (ret)
		return ret;
	b->cpages = res.cpages;
	b->faults = res.faults;
	return 0;
}

int migrate_to_dev(struct zdev *d, struct hmm_buffer *b, unsigned long npages)
{
	struct zdev_result res = { 0 }, rd = { 0 };
	int ret = zdev_migrate_to_device(d, b->ptr, npages, &res);

	if (ret)
		return ret;
	b->cpages = res.cpages;
	b->faults = res.faults;
	ret = zdev_read(d, b->ptr, npages, b->mirror, &rd);
	ck_assert_msg(ret == 0, "%sreading the migrated range through the device: %d (%s)",
		      variant, ret, strerror(-ret));
	ck_assert_msg(rd.cpages == npages, "%sreading the migrated range: cpages %llu of %lu",
		      variant, (unsigned long long)rd.cpages, npages);
	ck_assert_msg(rd.faults == 0,
		      "%sreading the migrated range needed a fault round: migrated pages are "
		      "missing from the device's table", variant);
	return 0;
}

int migrate_to_sys(struct zdev *d, struct hmm_buffer *b, unsigned long npages)
{
	return dev_cmd(d, OP_MIGRATE_TO_SYS, b, npages);
}

void hmm_add_test(Suite *s, const char *name, const TTest *test, SFun setup, SFun teardown)
{
	check_add_case(s, name, test, setup, teardown, 60);
}

int hmm_main(Suite *(*make_suite)(void))
{
	return run_suite_with_zdevd(&zdevd, NULL, make_suite());
}

/*
 * Pages 2 and up of the mapping at p, as both scenarios have them: page 2
 * read-only, the zero page (read); page 3 written, then read-only; nrw pages
 * from page 4 read-write, the first nwritten of them written. What is
 * written is the value read from the zero page plus 3.
 */
void map_mixed_pages(char *p, unsigned long nrw, unsigned long nwritten)
{
	int *ptr, val;

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

	/* then read-write, written */
	ck_assert_int_eq(mprotect(p + 4 * page_size, nrw * page_size, PROT_READ | PROT_WRITE), 0);
	for (unsigned long k = 0; k < nwritten; k++) {
		ptr = (int *)(p + (4 + k) * page_size);
		*ptr = val;
	}
}

/* Frees the buffer of the npages pages mapped at p but for the hole at page 1. */
void buffer_free_holed(struct hmm_buffer *b, char *p, unsigned long npages)
{
	b->ptr = NULL;
	munmap(p, page_size);
	munmap(p + 2 * page_size, (npages - 2) * page_size);
	buffer_free(b);
}

void wait_child_ok(pid_t pid)
{
	int status = 0;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status), "%schild did not exit (status 0x%x)", variant, status);
	ck_assert_msg(WEXITSTATUS(status) == 0, "%schild failed with exit status %d", variant,
		      WEXITSTATUS(status));
}
