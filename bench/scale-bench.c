/* SPDX-License-Identifier: MIT */
/*
 * Scale: 4 GiB of device memory in use (a million device pages) across four
 * processes, then zdevd torn down with all of it in use; 100 000 exclusive
 * pages in one process; single pages moved out of a 16 GiB range.
 *
 *   zdevd_rss_per_device_gib	zdevd's own memory (RssAnon: the device's
 *				memory itself is shared memory, not counted)
 *				per GiB of device memory in use; reference:
 *				the kernel's struct page for 1 GiB of
 *				ZONE_DEVICE memory, 64 bytes a 4 KiB page
 *   scale_migrate_4g		four processes moving 1 GiB each at once;
 *				baseline: four memcpys of 1 GiB one after
 *				another in this process
 *
 * Also printed: the teardown's time, the exclusive grant and revocation
 * costs with the process's VMA counts, and a single-page migration's median
 * in the 16 GiB range.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "figure.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define GIB (1ull << 30)
#define CLIENTS 4
#define EXCLUSIVE_PAGES 100000ull
#define SPARSE_RANGE (16ull << 30)
#define SPARSE_STEP (2ull << 20)

static double gbps(uint64_t bytes, uint64_t ns)
{
	return (double)bytes / (double)ns;
}

/* A field of /proc/PID/status in KiB, or -1. */
static double status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	double kib = -1;
	size_t len = strlen(field);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, len) && line[len] == ':')
			kib = strtod(line + len + 1, NULL);
	fclose(f);
	return kib;
}

static unsigned int vma_count(void)
{
	char line[512];
	unsigned int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- four processes, 4 GiB ---- */

/* Fills 1 GiB, waits for go, moves it to the device, says so, waits for go
 * again (zdevd is gone by then: every page came home) and checks it. */
static int client_main(unsigned int k, int done_fd, int go_fd)
{
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	char c;

	buf = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || zdev_open(NULL, 0, &dev))
		return 2;
	for (size_t i = 0; i < GIB / sizeof(*buf); i++)
		buf[i] = i ^ ((uint64_t)k << 56);
	if (write(done_fd, "f", 1) != 1 || read(go_fd, &c, 1) != 1)
		return 3;
	if (zdev_migrate_to_device(dev, buf, GIB / PG_SIZE, &res) || res.cpages != GIB / PG_SIZE)
		return 4;
	if (write(done_fd, "m", 1) != 1 || read(go_fd, &c, 1) != 1)
		return 5;
	for (size_t i = 0; i < GIB / sizeof(*buf); i++)
		if (buf[i] != (i ^ ((uint64_t)k << 56)))
			return 6;
	return 0;
}

static int four_gib(void)
{
	static const char *const args[] = { "--devices", "1", "--memory", "4G", "--warm", "0",
					    NULL };
	int done[CLIENTS][2], go[CLIENTS][2], status, ret = 0;
	double idle_anon, anon, rss, base = 0;
	struct zdevd_pool_status st;
	struct zdevd_instance z;
	uint64_t t0, moved_ns, teardown_ns;
	pid_t pid[CLIENTS];
	char *src, *dst, c;

	src = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	dst = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED)
		return -ENOMEM;
	memset(src, 1, GIB);
	memset(dst, 2, GIB);
	for (int i = 0; i < CLIENTS; i++) {
		t0 = now_ns();
		memcpy(dst, src, GIB);
		base += (double)(now_ns() - t0);
	}
	munmap(src, GIB);
	munmap(dst, GIB);

	zdevd_start_plain(&z, args);
	idle_anon = status_kib(z.pid, "RssAnon");
	for (unsigned int k = 0; k < CLIENTS; k++) {
		if (pipe(done[k]) || pipe(go[k]))
			return -errno;
		pid[k] = fork();
		if (pid[k] < 0)
			return -errno;
		if (pid[k] == 0)
			_exit(client_main(k, done[k][1], go[k][0]));
	}
	for (unsigned int k = 0; k < CLIENTS; k++)
		if (read(done[k][0], &c, 1) != 1)
			ret = -EIO;
	t0 = now_ns();
	for (unsigned int k = 0; k < CLIENTS && !ret; k++)
		if (write(go[k][1], "g", 1) != 1)
			ret = -EIO;
	for (unsigned int k = 0; k < CLIENTS && !ret; k++)
		if (read(done[k][0], &c, 1) != 1)
			ret = -EIO;
	moved_ns = now_ns() - t0;
	anon = status_kib(z.pid, "RssAnon");
	rss = status_kib(z.pid, "VmRSS");
	if (!ret && zdevd_pool_status(&z, 0, &st) == 0)
		printf("device pages in use: %llu of %llu\n", st.used, st.limit);
	t0 = now_ns();
	status = zdevd_stop(&z);
	teardown_ns = now_ns() - t0;
	if (status)
		ret = -EIO;
	for (unsigned int k = 0; k < CLIENTS; k++) {
		if (write(go[k][1], "g", 1) != 1 || waitpid(pid[k], &status, 0) != pid[k] ||
		    !WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "scale-bench: client %u lost data or failed (%#x)\n", k,
				status);
			ret = -EIO;
		}
	}
	if (ret)
		return ret;
	figure("zdevd_rss_per_device_gib", anon / 1024 / CLIENTS, "MiB", 16.0, "MiB");
	figure("scale_migrate_4g", gbps(CLIENTS * GIB, moved_ns), "GB/s",
	       gbps(CLIENTS * GIB, (uint64_t)base), "GB/s");
	printf("zdevd with 4 GiB in use: RssAnon %.1f MiB (%.1f idle), VmRSS %.0f MiB\n",
	       anon / 1024, idle_anon / 1024, rss / 1024);
	printf("teardown with 4 GiB in use (every page home, checked): %.2f s, %.2f GB/s\n",
	       (double)teardown_ns / 1e9, gbps(CLIENTS * GIB, teardown_ns));
	return 0;
}

/* ---- 100 000 exclusive pages ---- */

static int exclusive_many(struct zdev *dev)
{
	const size_t bytes = EXCLUSIVE_PAGES * PG_SIZE;
	struct zdev_result res;
	unsigned int before, granted, revoked;
	uint64_t t0, grant_ns, revoke_ns;
	char *buf;
	int ret;

	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	if (buf == MAP_FAILED)
		return -ENOMEM;
	before = vma_count();
	t0 = now_ns();
	ret = zdev_make_exclusive(dev, buf, EXCLUSIVE_PAGES, &res);
	grant_ns = now_ns() - t0;
	if (ret || res.cpages != EXCLUSIVE_PAGES)
		return ret ?: -EIO;
	granted = vma_count();
	t0 = now_ns();
	for (size_t p = 0; p < EXCLUSIVE_PAGES; p += 2)
		buf[p * PG_SIZE] = 1;
	revoke_ns = now_ns() - t0;
	revoked = vma_count();
	printf("100000 exclusive pages: granted in %.1f ms (%.2f us a page); every other one "
	       "revoked by a CPU write: %.1f us each; VMAs %u before, %u granted, %u revoked\n",
	       (double)grant_ns / 1e6, (double)grant_ns / 1e3 / EXCLUSIVE_PAGES,
	       (double)revoke_ns / 1e3 / (EXCLUSIVE_PAGES / 2), before, granted, revoked);
	munmap(buf, bytes);
	return 0;
}

/* ---- a 16 GiB range ---- */

static int sparse_range(struct zdev *dev)
{
	const size_t n = SPARSE_RANGE / SPARSE_STEP;
	uint64_t *ns = calloc(n, sizeof(*ns));
	struct zdev_result res;
	unsigned int before, after;
	uint64_t t0, back_ns;
	char *range;
	int ret = 0;

	range = mmap(NULL, SPARSE_RANGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (range == MAP_FAILED || !ns)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		range[i * SPARSE_STEP] = (char)(i | 1);
	before = vma_count();
	for (size_t i = 0; i < n && !ret; i++) {
		t0 = now_ns();
		ret = zdev_migrate_to_device(dev, range + i * SPARSE_STEP, 1, &res);
		ns[i] = now_ns() - t0;
	}
	after = vma_count();
	t0 = now_ns();
	for (size_t i = 0; i < n && !ret; i++)
		if (range[i * SPARSE_STEP] != (char)(i | 1))
			ret = -EIO;
	back_ns = now_ns() - t0;
	if (!ret) {
		qsort(ns, n, sizeof(*ns), cmp_u64);
		printf("16 GiB range, %zu single pages to the device: p50 %.1f us, p99 %.1f us, "
		       "slowest %.1f ms; back by CPU faults %.1f us each; VMAs %u before, %u after\n",
		       n, (double)ns[n / 2] / 1e3, (double)ns[n * 99 / 100] / 1e3,
		       (double)ns[n - 1] / 1e6, (double)back_ns / 1e3 / n, before, after);
	}
	free(ns);
	munmap(range, SPARSE_RANGE);
	return ret;
}

int main(void)
{
	const char *why = zdevd_unavailable();
	struct zdevd_instance z;
	struct zdev *dev;
	int ret;

	if (why) {
		printf("scale-bench: skipped: %s\n", why);
		return 0;
	}
	ret = four_gib();
	if (!ret) {
		zdevd_start_plain(&z, NULL);
		ret = zdev_open(NULL, 0, &dev);
		if (!ret) {
			ret = exclusive_many(dev) ?: sparse_range(dev);
			zdev_close(dev);
		}
		if (zdevd_stop(&z))
			ret = ret ?: -EIO;
	}
	if (ret) {
		fprintf(stderr, "scale-bench: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}
