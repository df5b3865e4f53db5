/* SPDX-License-Identifier: MIT */
/*
 * exclusive_revoke: a CPU read of an exclusive page until the access
 * completes (the revocation), every page of a range once, against a raw
 * in-process mprotect(PROT_NONE) + SIGSEGV handler + mprotect back in the
 * same run and the same order. Random order, then in address order.
 * exclusive_grant: pages a second made exclusive in one call over 1 GiB,
 * against populating it writable and mprotecting it PROT_NONE in-process.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon-cpu.h"
#include "figure.h"
#include "page.h"
#include "touch.h"
#include "zdev.h"
#include "zdevd-harness.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define NPAGES 2048
#define ROUNDS 5
#define GRANT_BYTES (1ul << 30)

static unsigned long vma_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long n = 0;
	int c;

	if (!f)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* ---- the baseline: the same protection dance without zdev ---- */

static void raw_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	mprotect((void *)((uintptr_t)si->si_addr & ~(PG_SIZE - 1)), PG_SIZE, PROT_READ | PROT_WRITE);
}

static int raw_round(const size_t *order, double *lat)
{
	struct sigaction act = { .sa_sigaction = raw_handler, .sa_flags = SA_SIGINFO }, saved;
	char *buf = mmap(NULL, NPAGES * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);

	if (buf == MAP_FAILED)
		return -errno;
	memset(buf, 0x5a, NPAGES * PG_SIZE);
	mprotect(buf, NPAGES * PG_SIZE, PROT_NONE);
	/* libzdev's handler (if in) steps aside for the round. */
	sigemptyset(&act.sa_mask);
	sigaction(SIGSEGV, &act, &saved);
	touch_pages(buf, order, NPAGES, lat);
	sigaction(SIGSEGV, &saved, NULL);
	munmap(buf, NPAGES * PG_SIZE);
	return 0;
}

static int revoke_figure(struct zdev *dev, const char *name, bool random)
{
	static double zlat[ROUNDS * NPAGES], blat[ROUNDS * NPAGES];
	size_t order[NPAGES];
	int ret = 0;

	for (int r = 0; r < ROUNDS && !ret; r++) {
		page_order(order, NPAGES, 1000 + r, random);
		ret = touch_round_zdev(dev, zdev_make_exclusive, NPAGES, order, zlat + r * NPAGES);
		if (!ret)
			ret = raw_round(order, blat + r * NPAGES);
	}
	if (ret) {
		fprintf(stderr, "exclusive-bench: %s: %s\n", name, strerror(-ret));
		return ret;
	}
	figure(name, median(zlat, ROUNDS * NPAGES) / 1e3, "us",
	       median(blat, ROUNDS * NPAGES) / 1e3, "us");
	return 0;
}

/* ---- grants ---- */

static int grant_figure(struct zdev *dev)
{
	struct zdev_result res;
	char *buf, *raw;
	unsigned long before, after;
	uint64_t t0, t1, t2, t3;
	int ret;

	ret = zdev_alloc(dev, GRANT_BYTES, (void **)&buf);
	if (ret)
		return ret;
	memset(buf, 1, GRANT_BYTES);
	before = vma_count();
	t0 = now_ns();
	ret = zdev_make_exclusive(dev, buf, GRANT_BYTES / PG_SIZE, &res);
	t1 = now_ns();
	after = vma_count();
	zdev_free(dev, buf, GRANT_BYTES);
	if (ret)
		return ret;

	raw = mmap(NULL, GRANT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	memset(raw, 1, GRANT_BYTES);
	t2 = now_ns();
	madvise(raw, GRANT_BYTES, MADV_POPULATE_WRITE);
	mprotect(raw, GRANT_BYTES, PROT_NONE);
	t3 = now_ns();
	munmap(raw, GRANT_BYTES);
	figure("exclusive_grant", (double)(GRANT_BYTES / PG_SIZE) / ((double)(t1 - t0) / 1e9),
	       "pages/s", (double)(GRANT_BYTES / PG_SIZE) / ((double)(t3 - t2) / 1e9), "pages/s");
	printf("exclusive_grant: %lu pages, VMAs %lu before, %lu after\n", GRANT_BYTES / PG_SIZE,
	       before, after);
	return 0;
}

int main(void)
{
	struct zdevd_instance z;
	struct zdev *dev;
	double cpu0, cpu1;
	int ret;

	zdevd_start_plain(&z, NULL);
	ret = zdev_open(NULL, 0, &dev);
	if (ret) {
		fprintf(stderr, "exclusive-bench: zdev_open: %s\n", strerror(-ret));
		zdevd_stop(&z);
		return 1;
	}
	cpu0 = process_cpu_seconds(z.pid);
	ret = revoke_figure(dev, "exclusive_revoke", true);
	if (!ret)
		ret = revoke_figure(dev, "exclusive_revoke_seq", false);
	cpu1 = process_cpu_seconds(z.pid);
	if (!ret)
		printf("zdevd cpu: %.3f s for %d revocations (and their grants)\n", cpu1 - cpu0,
		       2 * ROUNDS * NPAGES);
	if (!ret) {
		cpu0 = process_cpu_seconds(z.pid);
		ret = grant_figure(dev);
		cpu1 = process_cpu_seconds(z.pid);
		if (ret)
			fprintf(stderr, "exclusive-bench: exclusive_grant: %s\n", strerror(-ret));
		else
			printf("zdevd cpu: %.3f s for the 1 GiB grant\n", cpu1 - cpu0);
	}
	zdev_close(dev);
	zdevd_stop(&z);
	return ret ? 1 : 0;
}
