/* SPDX-License-Identifier: MIT */
/*
 * Private file mappings: their copy-on-write pages migrate, as the kernel
 * migrates them, and the file's own pages stay. zdev makes such a mapping
 * anonymous in place first; these tests check that only the copied-on-write
 * pages move, that the rest keeps the file's data, that the mapping stays
 * one mapping (mremap of the whole works), that a mapping without such pages
 * is left a file mapping, and that writes racing the change are not lost.
 */
#define _GNU_SOURCE
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "page.h"
#include "zdev.h"
#include "zdevd-check.h"
#include "zdevd-harness.h"

#define NPAGES 64
#define WORDS (PG_SIZE / 8)

static struct zdevd_instance zd;

static uint64_t word(unsigned int tag, size_t page, size_t i)
{
	return (uint64_t)tag << 48 | page << 16 | i;
}

/* A file of NPAGES pages of tag 1, mapped private and writable. */
static uint64_t *map_file(int *fd_out)
{
	static uint64_t page[WORDS];
	uint64_t *p;
	int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);

	ck_assert_int_ge(fd, 0);
	for (size_t pg = 0; pg < NPAGES; pg++) {
		for (size_t i = 0; i < WORDS; i++)
			page[i] = word(1, pg, i);
		ck_assert_int_eq(pwrite(fd, page, PG_SIZE, (off_t)(pg * PG_SIZE)), (ssize_t)PG_SIZE);
	}
	p = mmap(NULL, NPAGES * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	*fd_out = fd;
	return p;
}

static void write_page(uint64_t *p, size_t pg, unsigned int tag)
{
	for (size_t i = 0; i < WORDS; i++)
		p[pg * WORDS + i] = word(tag, pg, i);
}

static bool page_is(const uint64_t *p, size_t pg, unsigned int tag)
{
	for (size_t i = 0; i < WORDS; i++)
		if (p[pg * WORDS + i] != word(tag, pg, i))
			return false;
	return true;
}

/* Whether /proc/self/maps names a file for the mapping at addr. */
static bool maps_shows_file(const void *addr)
{
	char line[512];
	bool file = false;
	FILE *f = fopen("/proc/self/maps", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s <= (uintptr_t)addr &&
		    (uintptr_t)addr < e) {
			file = strchr(line, '/') != NULL;
			break;
		}
	}
	fclose(f);
	return file;
}

START_TEST(only_cow_pages_migrate)
{
	uint8_t snap[NPAGES];
	struct zdev_result res = { 0 };
	struct zdev *dev;
	uint64_t *p, *moved;
	int fd;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	p = map_file(&fd);
	for (size_t pg = 0; pg < NPAGES; pg += 2)
		write_page(p, pg, 2);
	/* Odd pages are the file's own (one read, one never touched). */
	ck_assert(page_is(p, 1, 1));

	ck_assert_int_eq(zdev_migrate_to_device(dev, p, NPAGES, &res), -ENOENT);
	ck_assert_uint_eq(res.cpages, NPAGES / 2);
	ck_assert_int_eq(zdev_snapshot(dev, p, NPAGES, snap, &res), 0);
	for (size_t pg = 0; pg < NPAGES; pg++)
		ck_assert_msg(pg % 2 ? !(snap[pg] & ZDEV_PROT_DEV_PRIVATE_LOCAL)
				     : snap[pg] == (ZDEV_PROT_DEV_PRIVATE_LOCAL | ZDEV_PROT_WRITE),
			      "page %zu: snapshot 0x%02x", pg, snap[pg]);

	/* Still one mapping: it moves whole, device pages with it. */
	moved = mremap(p, NPAGES * PG_SIZE, NPAGES * PG_SIZE, MREMAP_MAYMOVE);
	ck_assert_ptr_ne(moved, MAP_FAILED);
	for (size_t pg = 0; pg < NPAGES; pg++)
		ck_assert_msg(page_is(moved, pg, pg % 2 ? 1 : 2), "page %zu lost its data", pg);
	munmap(moved, NPAGES * PG_SIZE);
	close(fd);
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

START_TEST(mapping_without_cow_pages_stays)
{
	struct zdev_result res = { 0 };
	struct zdev *dev;
	uint64_t *p;
	int fd;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	p = map_file(&fd);
	ck_assert(page_is(p, 0, 1));
	ck_assert_int_eq(zdev_migrate_to_device(dev, p, NPAGES, &res), -ENOENT);
	ck_assert_uint_eq(res.cpages, 0);
	ck_assert(maps_shows_file(p));
	/* A change to the file still shows through the untouched pages. */
	ck_assert_int_eq(pwrite(fd, &(uint64_t){ 42 }, 8, 3 * PG_SIZE), 8);
	ck_assert_uint_eq(p[3 * WORDS], 42);
	munmap(p, NPAGES * PG_SIZE);
	close(fd);
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

struct writer {
	uint64_t *p;
	atomic_bool stop;
	uint64_t last[NPAGES];
};

/* Writes a counter into the first word of each odd page, round and round. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t n = 0;

	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		for (size_t pg = 1; pg < NPAGES; pg += 2) {
			w->p[pg * WORDS] = ++n;
			w->last[pg] = n;
		}
	}
	return NULL;
}

START_TEST(writes_racing_the_change_are_kept)
{
	struct zdev *dev;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	/* The change is short: many rounds, so that writes meet it. */
	for (int round = 0; round < 20; round++) {
		struct zdev_result res = { 0 };
		struct writer w = { 0 };
		pthread_t t;
		int fd;

		w.p = map_file(&fd);
		for (size_t pg = 0; pg < NPAGES; pg += 2)
			write_page(w.p, pg, 2);
		ck_assert_int_eq(pthread_create(&t, NULL, writer_main, &w), 0);
		usleep(500);
		/* The writer's pages are copied-on-write by now: all of
		 * them migrate, and the writer keeps faulting them back. */
		ck_assert_int_le(zdev_migrate_to_device(dev, w.p, NPAGES, &res), 0);
		ck_assert(!maps_shows_file(w.p));
		usleep(500);
		atomic_store(&w.stop, true);
		pthread_join(t, NULL);
		/* (A writer the scheduler kept waiting wrote nothing yet.) */
		for (size_t pg = 1; pg < NPAGES; pg += 2) {
			uint64_t want = w.last[pg] ? w.last[pg] : word(1, pg, 0);

			ck_assert_msg(w.p[pg * WORDS] == want, "round %d page %zu: %#llx, want %#llx",
				      round, pg, (unsigned long long)w.p[pg * WORDS],
				      (unsigned long long)want);
		}
		for (size_t pg = 0; pg < NPAGES; pg += 2)
			ck_assert_msg(page_is(w.p, pg, 2), "round %d page %zu lost its data", round, pg);
		munmap(w.p, NPAGES * PG_SIZE);
		close(fd);
	}
	ck_assert_int_eq(zdev_close(dev), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("file-private");

	check_add_case(s, "only_cow_pages_migrate", only_cow_pages_migrate, NULL, NULL, 60);
	check_add_case(s, "mapping_without_cow_pages_stays", mapping_without_cow_pages_stays, NULL,
		       NULL, 60);
	check_add_case(s, "writes_racing_the_change_are_kept", writes_racing_the_change_are_kept,
		       NULL, NULL, 60);
	return run_suite_with_zdevd(&zd, NULL, s);
}
