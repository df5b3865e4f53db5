/* SPDX-License-Identifier: MIT */
/*
 * The device model (zdevd --link, --fault-latency) against the host's own
 * costs in the same run.
 *
 * model_link_16gbps: 1 GiB to a device behind a modelled 16 GB/s link and
 * back, the median of ROUNDS; its baseline is the model's time (1 GiB at
 * 16 GB/s, 67.1 ms), and the host's own time for the same migration (a
 * device without a model) is printed beside it. Where the host's own is
 * slower than the model, the model adds nothing and the figure says so;
 * model_link_4gbps is then the same over a 4 GB/s link, which is slower
 * than the host, to show how close to the model a migration ends.
 *
 * model_fault_<N>us: the p50 of a CPU read of a device-private page (every
 * page of NPAGES once, in random order, as fault-bench does) on a device
 * with a fault latency of N µs, against N; the host's own p50 (a device
 * without a model) is printed beside them. A model faster than the host's
 * own fault cannot make it faster.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "figure.h"
#include "page.h"
#include "touch.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define GIB (1ul << 30)
#define ROUNDS 5
#define NPAGES 4096
#define FAULT_ROUNDS 2

/* --- migrations --- */

static const char *const link_args[] = {
	"--devices", "3", "--memory", "1G", "--link", "1=16", "--link", "2=4", NULL,
};

/* The median ms of ROUNDS 1 GiB migrations of buf to device dev (to) and
 * back (back). 0 or -errno. */
static int time_migrations(unsigned int dev, double *to, double *back)
{
	double t_to[ROUNDS], t_back[ROUNDS];
	struct zdev_result res;
	struct zdev *d;
	char *buf;
	int ret;

	ret = zdev_open(NULL, dev, &d);
	if (ret)
		return ret;
	ret = zdev_alloc(d, GIB, (void **)&buf);
	if (ret)
		goto out_close;
	memset(buf, 7, GIB);
	for (int r = 0; r < ROUNDS && !ret; r++) {
		uint64_t t0 = now_ns();

		ret = zdev_migrate_to_device(d, buf, GIB / PG_SIZE, &res);
		t_to[r] = (double)(now_ns() - t0) / 1e6;
		t0 = now_ns();
		if (!ret)
			ret = zdev_migrate_to_system(d, buf, GIB / PG_SIZE, &res);
		t_back[r] = (double)(now_ns() - t0) / 1e6;
	}
	if (!ret && (buf[0] != 7 || buf[GIB - 1] != 7))
		ret = -EIO;
	*to = median(t_to, ROUNDS);
	*back = median(t_back, ROUNDS);
	zdev_free(d, buf, GIB);
out_close:
	zdev_close(d);
	return ret;
}

static void link_figure(const char *name, double gbps, double ms, double host_ms)
{
	const double model_ms = (double)GIB / gbps / 1e6;

	figure(name, ms, "ms", model_ms, "ms");
	printf("  %s: host's own %.1f ms; 1 GiB at %g GB/s is %.1f ms%s\n", name, host_ms, gbps,
	       model_ms,
	       host_ms > model_ms ? ": the host is slower than the model, which cannot make it "
				    "faster" : "");
}

static int bench_links(void)
{
	double host_to, host_back, to16, back16, to4, back4;
	struct zdevd_instance z;
	int ret;

	zdevd_start_plain(&z, link_args);
	/* Device 0's rounds first: the host's own time, which also made the
	 * memory the other devices' migrations reuse. */
	ret = time_migrations(0, &host_to, &host_back);
	if (!ret)
		ret = time_migrations(1, &to16, &back16);
	if (!ret)
		ret = time_migrations(2, &to4, &back4);
	zdevd_stop(&z);
	if (ret)
		return ret;
	link_figure("model_link_16gbps_to_device", 16, to16, host_to);
	link_figure("model_link_16gbps_to_system", 16, back16, host_back);
	link_figure("model_link_4gbps_to_device", 4, to4, host_to);
	link_figure("model_link_4gbps_to_system", 4, back4, host_back);
	return 0;
}

/* --- faults --- */

static const unsigned int fault_us[] = { 0, 20, 50, 100 };
#define NFAULT (sizeof(fault_us) / sizeof(fault_us[0]))

static const char *const fault_args[] = {
	"--devices", "4", "--memory", "64M", "--fault-latency", "1=20", "--fault-latency", "2=50",
	"--fault-latency", "3=100", NULL,
};

static int fault_p50(unsigned int dev, const size_t *order, double *lat, double *p50)
{
	struct zdev *d;
	int ret;

	ret = zdev_open(NULL, dev, &d);
	if (ret)
		return ret;
	for (int r = 0; r < FAULT_ROUNDS && !ret; r++)
		ret = touch_round_zdev(d, zdev_migrate_to_device, NPAGES, order, lat + r * NPAGES);
	zdev_close(d);
	*p50 = percentile(lat, FAULT_ROUNDS * NPAGES, 0.50) / 1e3;
	return ret;
}

static int bench_faults(void)
{
	static double lat[FAULT_ROUNDS * NPAGES];
	struct zdevd_instance z;
	double p50[NFAULT];
	size_t *order = malloc(NPAGES * sizeof(*order));
	int ret = 0;

	if (!order)
		return -ENOMEM;
	page_order(order, NPAGES, 2000, true);
	zdevd_start_plain(&z, fault_args);
	for (unsigned int i = 0; i < NFAULT && !ret; i++)
		ret = fault_p50(i, order, lat, &p50[i]);
	zdevd_stop(&z);
	free(order);
	if (ret)
		return ret;
	for (unsigned int i = 1; i < NFAULT; i++) {
		char name[32];

		snprintf(name, sizeof(name), "model_fault_%uus", fault_us[i]);
		figure(name, p50[i], "us", fault_us[i], "us");
		printf("  %s: p50 %.1f us, host's own p50 %.1f us%s\n", name, p50[i], p50[0],
		       p50[0] > fault_us[i] ? ": the host is slower than the model, which cannot "
					      "make it faster" : "");
	}
	return 0;
}

/* model-bench [links|faults]: both parts, or the one named. */
int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "";
	int ret = 0;

	if (strcmp(only, "faults"))
		ret = bench_links();
	if (!ret && strcmp(only, "links"))
		ret = bench_faults();
	if (ret) {
		fprintf(stderr, "model-bench: %s\n", strerror(-ret));
		return 1;
	}
	return 0;
}
