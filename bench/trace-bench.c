/* SPDX-License-Identifier: MIT */
/*
 * trace_overhead: the fault p50 of fault-bench (a CPU read of a
 * device-private page until the access completes, every page once in
 * random order) against a zdevd writing a trace (--trace), with the same
 * against a zdevd without one as the baseline, in the same run. The two
 * zdevds take turns, so that a change in the machine's load meanwhile
 * falls on both. Also prints the p99 and the trace's size per fault.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon-cpu.h"
#include "figure.h"
#include "touch.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define NPAGES 4096
#define TURNS 4		/* each zdevd, alternately */
#define ROUNDS 2	/* rounds of NPAGES faults a turn */

/* One turn: a zdevd (with extra args), ROUNDS rounds of faults into lat.
 * Its CPU time is added to *cpu. 0 or -errno. */
static int turn(const char *const *extra, unsigned int seed, double *lat, double *cpu)
{
	size_t *order = malloc(NPAGES * sizeof(*order));
	struct zdevd_instance z;
	struct zdev *dev;
	double cpu0;
	int ret;

	if (!order)
		return -1;
	zdevd_start_plain(&z, extra);
	ret = zdev_open(NULL, 0, &dev);
	if (ret) {
		fprintf(stderr, "trace-bench: zdev_open: %s\n", strerror(-ret));
		goto out_stop;
	}
	cpu0 = process_cpu_seconds(z.pid);
	for (int r = 0; r < ROUNDS && !ret; r++) {
		page_order(order, NPAGES, seed + (unsigned int)r, true);
		ret = touch_round_zdev(dev, zdev_migrate_to_device, NPAGES, order,
				       lat + (size_t)r * NPAGES);
	}
	*cpu += process_cpu_seconds(z.pid) - cpu0;
	zdev_close(dev);
out_stop:
	zdevd_stop(&z);
	free(order);
	return ret;
}

int main(void)
{
	static double off[TURNS * ROUNDS * NPAGES], on[TURNS * ROUNDS * NPAGES];
	char path[] = "/tmp/zdev-trace-bench-XXXXXX";
	const char *traced[] = { "--trace", path, NULL };
	double cpu_off = 0, cpu_on = 0;
	struct stat st = { 0 };
	int fd, ret = 0;

	fd = mkstemp(path);
	if (fd < 0) {
		perror("trace-bench: mkstemp");
		return 1;
	}
	close(fd);
	for (int t = 0; t < TURNS && !ret; t++) {
		const size_t at = (size_t)t * ROUNDS * NPAGES;

		ret = turn(NULL, 1000 + (unsigned int)t, off + at, &cpu_off);
		if (!ret)
			ret = turn(traced, 1000 + (unsigned int)t, on + at, &cpu_on);
	}
	stat(path, &st);
	unlink(path);
	if (ret) {
		fprintf(stderr, "trace-bench: a round failed\n");
		return 1;
	}
	{
		const size_t n = TURNS * ROUNDS * NPAGES;
		const double on50 = percentile(on, n, 0.50) / 1e3, off50 = percentile(off, n, 0.50) / 1e3;
		const double on99 = percentile(on, n, 0.99) / 1e3, off99 = percentile(off, n, 0.99) / 1e3;

		printf("fault p50: %.2f us traced, %.2f us untraced; p99: %.2f us, %.2f us\n", on50,
		       off50, on99, off99);
		figure("trace_overhead", on50, "us", off50, "us");
		figure("trace_overhead_p99", on99, "us", off99, "us");
		printf("trace: %.0f bytes per fault (last turn's file, %d faults)\n",
		       (double)st.st_size / (ROUNDS * NPAGES), ROUNDS * NPAGES);
		printf("zdevd cpu: %.3f s traced, %.3f s untraced, for %zu faults each\n", cpu_on,
		       cpu_off, n);
	}
	return 0;
}
