/* SPDX-License-Identifier: MIT */
/*
 * migrate_to_device, migrate_to_system: 1 GiB each way in one call, done when
 * the call returns, against one single-core memcpy of 1 GiB.
 * first_touch: first touch of never-touched managed memory (in ranges zdevd
 * has registered: one page of every 2 MiB window is on the device, and its
 * touch is a CPU fault like any other) against the same on plain memory.
 * Also prints the VMA count of the 1 GiB range after a full round trip.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon-cpu.h"
#include "figure.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define GIB (1ul << 30)
#define TOUCH_BYTES (256ul << 20)
#define ROUNDS 3

static int count_vmas(const char *start, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && e > (unsigned long)start &&
		    s < (unsigned long)start + len)
			n++;
	}
	fclose(f);
	return n;
}

static double gbps(size_t bytes, uint64_t ns)
{
	return (double)bytes / (double)ns;	/* bytes per ns = GB/s */
}

static double memcpy_gbps(char *src, char *dst)
{
	uint64_t t0 = now_ns();

	memcpy(dst, src, GIB);
	return gbps(GIB, now_ns() - t0);
}

/*
 * Memory freed more than a moment ago may have gone back to the host, and its
 * next first touch pays a host fault (on a virtual machine, the host takes
 * it back lazily). After the 1 GiB migrations have freed and taken so much,
 * the pages zdevd's CPU gets are cold while the plain side reuses what it
 * just freed: touch and free a whole GiB just before each timed first touch,
 * so both sides start from warm memory.
 */
static void warm_up(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	memset(p, 1, len);
	munmap(p, len);
}

/* First touch of len bytes at p, one write a page. */
static double touch_gbps(char *p, size_t len)
{
	uint64_t t0 = now_ns();

	for (size_t off = 0; off < len; off += PG_SIZE)
		p[off] = 1;
	return gbps(len, now_ns() - t0);
}

int main(void)
{
	double to_dev[ROUNDS], to_sys[ROUNDS], base[ROUNDS], touch_z[ROUNDS], touch_b[ROUNDS];
	struct zdev_result res;
	struct zdevd_instance z;
	struct zdev *dev;
	char *buf, *src, *dst;
	double cpu0, cpu1;
	int vmas = -1, ret;

	zdevd_start_plain(&z, NULL);
	ret = zdev_open(NULL, 0, &dev);
	if (ret)
		goto out_err;
	ret = zdev_alloc(dev, GIB, (void **)&buf);
	if (ret)
		goto out_err;
	src = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	dst = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		ret = -ENOMEM;
		goto out_err;
	}
	memset(src, 3, GIB);
	memset(buf, 7, GIB);
	cpu0 = process_cpu_seconds(z.pid);
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t t0 = now_ns();

		ret = zdev_migrate_to_device(dev, buf, GIB / PG_SIZE, &res);
		if (ret)
			goto out_err;
		to_dev[r] = gbps(GIB, now_ns() - t0);
		t0 = now_ns();
		ret = zdev_migrate_to_system(dev, buf, GIB / PG_SIZE, &res);
		if (ret || res.cpages != GIB / PG_SIZE) {
			ret = ret ?: -EIO;
			goto out_err;
		}
		to_sys[r] = gbps(GIB, now_ns() - t0);
		base[r] = memcpy_gbps(src, dst);
	}
	cpu1 = process_cpu_seconds(z.pid);
	vmas = count_vmas(buf, GIB);
	if (buf[12345] != 7 || buf[GIB - 1] != 7) {
		fprintf(stderr, "migrate-bench: data lost\n");
		return 1;
	}

	/* First touch: migrate one page of every 2 MiB window, so zdevd has
	 * registered all of them, then touch the pages never touched. */
	for (int r = 0; r < ROUNDS; r++) {
		char *m, *plain;

		ret = zdev_alloc(dev, TOUCH_BYTES, (void **)&m);
		if (ret)
			goto out_err;
		for (size_t w = 0; w < TOUCH_BYTES; w += 2ul << 20) {
			ret = zdev_migrate_to_device(dev, m + w + (2ul << 20) - PG_SIZE, 1, &res);
			if (ret)
				goto out_err;
		}
		plain = mmap(NULL, TOUCH_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		/* Alternate which goes first, so neither always gets the
		 * memory the other just freed. */
		for (int k = 0; k < 2; k++) {
			warm_up(GIB);
			if ((k == 0) == (r % 2 == 0))
				touch_z[r] = touch_gbps(m, TOUCH_BYTES - PG_SIZE);
			else
				touch_b[r] = touch_gbps(plain, TOUCH_BYTES - PG_SIZE);
		}
		zdev_free(dev, m, TOUCH_BYTES);
		munmap(plain, TOUCH_BYTES);
	}

	figure("migrate_to_device", median(to_dev, ROUNDS), "GB/s", median(base, ROUNDS), "GB/s");
	figure("migrate_to_system", median(to_sys, ROUNDS), "GB/s", median(base, ROUNDS), "GB/s");
	figure("first_touch", median(touch_z, ROUNDS), "GB/s", median(touch_b, ROUNDS), "GB/s");
	printf("VMAs of the 1 GiB range after %d round trips: %d\n", ROUNDS, vmas);
	printf("zdevd cpu: %.3f s for %d GiB moved each way\n", cpu1 - cpu0, ROUNDS);
	zdev_close(dev);
	zdevd_stop(&z);
	return 0;

out_err:
	fprintf(stderr, "migrate-bench: %s\n", strerror(-ret));
	zdevd_stop(&z);
	return 1;
}
