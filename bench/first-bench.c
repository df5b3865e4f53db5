/* SPDX-License-Identifier: MIT */
/*
 * What a new user meets: a fresh client process, with a zdevd started and
 * idle before it, moves memory it has just filled (plain mmap, not
 * zdev_alloc) to the device and back, once.
 *
 *   migrate_to_device_first	1 GiB in one call; baseline: one memcpy of
 *				1 GiB between pre-touched buffers
 *   migrate_to_system_first	the same 1 GiB back in one call; same baseline
 *   roundtrip_64m_first	64 MiB there and back, in a process of its
 *				own; baseline: two memcpys of 64 MiB
 *
 * Every round is a first: a new zdevd (one device of 1 GiB, all of it warm,
 * as zdevd keeps it by default) and a new process. zdevd is idle before the
 * process starts: it has finished warming its memory, as it would have long
 * before a user's first program; how long that took is printed too. The
 * figures are the medians of the rounds, and the slowest round is printed
 * beside them, since a short program runs exactly one. Also zdevd's CPU time
 * and its resident memory, idle and with 1 GiB on the device, and one round
 * of each with no warm memory (--warm 0), for comparison.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon-cpu.h"
#include "figure.h"
#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define GIB (1ul << 30)
#define SMALL (64ul << 20)
#define ROUNDS 3
#define FAULTS 63
/* The most a zdevd may take to warm its device. */
#define WARM_TIMEOUT_MS 120000

/* What a fresh process measured, sent to the parent through a pipe. */
struct first {
	double to_dev_gbps;
	double to_sys_gbps;
	double rss_kib;		/* zdevd's, with the memory on the device */
	double idle_rss_kib;	/* zdevd's, before the process started */
	double first_fault_us;	/* the process's first CPU fault on a device page */
	double fault_p50_us;	/* the median of its next FAULTS */
	int error;		/* 0, or the errno that stopped it */
};

static double gbps(size_t bytes, uint64_t ns)
{
	return (double)bytes / (double)ns;	/* bytes per ns = GB/s */
}

static double memcpy_gbps(char *dst, const char *src, size_t len)
{
	uint64_t t0 = now_ns();

	memcpy(dst, src, len);
	return gbps(len, now_ns() - t0);
}

static double rss_kib(pid_t pid)
{
	return process_status_kib(pid, "VmRSS");
}

/* Pages of buf moved to the device, then touched one by one: the first CPU
 * fault the process ever took, and the median of the next ones. */
static int measure_faults(struct zdev *dev, char *buf, struct first *m)
{
	double next[FAULTS];
	struct zdev_result res;
	uint64_t t0;
	int ret;

	ret = zdev_migrate_to_device(dev, buf, FAULTS + 1, &res);
	if (ret)
		return ret;
	for (int i = 0; i <= FAULTS; i++) {
		t0 = now_ns();
		(void)*(volatile char *)(buf + (size_t)i * PG_SIZE);
		if (i)
			next[i - 1] = (double)(now_ns() - t0) / 1000;
		else
			m->first_fault_us = (double)(now_ns() - t0) / 1000;
	}
	m->fault_p50_us = median(next, FAULTS);
	return 0;
}

/* In the fresh process: fill len bytes of new memory, then one migration
 * each way, timed, and the data checked; then its first CPU faults. */
static struct first measure_fresh(size_t len, pid_t zdevd)
{
	struct first m = { 0 };
	struct zdev_result res;
	struct zdev *dev;
	uint64_t t0;
	char *buf;
	int ret;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		m.error = errno;
		return m;
	}
	for (size_t i = 0; i < len; i += PG_SIZE)
		memset(buf + i, (int)(i / PG_SIZE % 251) + 1, PG_SIZE);
	ret = zdev_open(NULL, 0, &dev);
	if (ret)
		goto out_unmap;

	t0 = now_ns();
	ret = zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res);
	m.to_dev_gbps = gbps(len, now_ns() - t0);
	if (ret || res.cpages != len / PG_SIZE) {
		ret = ret ?: -EIO;
		goto out_close;
	}
	m.rss_kib = rss_kib(zdevd);
	t0 = now_ns();
	ret = zdev_migrate_to_system(dev, buf, len / PG_SIZE, &res);
	m.to_sys_gbps = gbps(len, now_ns() - t0);
	if (ret || res.cpages != len / PG_SIZE) {
		ret = ret ?: -EIO;
		goto out_close;
	}
	for (size_t i = 0; i < len; i += PG_SIZE)
		if (buf[i] != (char)(i / PG_SIZE % 251 + 1) || buf[i + PG_SIZE - 1] != buf[i]) {
			fprintf(stderr, "first-bench: data lost at offset %zu\n", i);
			ret = -EIO;
			break;
		}
	if (!ret)
		ret = measure_faults(dev, buf, &m);
out_close:
	zdev_close(dev);
out_unmap:
	munmap(buf, len);
	m.error = -ret;
	return m;
}

/* A new zdevd keeping warm bytes warm, idle once they are, and a new
 * process measuring len bytes: 0 or -errno; *cpu: zdevd's CPU seconds over
 * the round, *warm_ms: how long it took to warm. */
static int round_fresh(size_t len, const char *warm, struct first *m, double *cpu,
		       double *warm_ms)
{
	const char *const args[] = { "--devices", "1", "--memory", "1G", "--warm", warm, NULL };
	struct zdevd_instance z;
	int fds[2], status;
	double idle_rss;
	long waited;
	ssize_t n;
	pid_t pid;

	zdevd_start_plain(&z, args);
	waited = zdevd_wait_warm(&z, 0, strcmp(warm, "0") ? GIB / PG_SIZE : 0, WARM_TIMEOUT_MS);
	if (waited < 0) {
		zdevd_stop(&z);
		return (int)waited;
	}
	*warm_ms = (double)waited;
	idle_rss = rss_kib(z.pid);
	if (pipe(fds)) {
		zdevd_stop(&z);
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		struct first mine = measure_fresh(len, z.pid);

		_exit(write(fds[1], &mine, sizeof(mine)) == sizeof(mine) ? 0 : 1);
	}
	close(fds[1]);
	n = pid > 0 ? read(fds[0], m, sizeof(*m)) : -1;
	close(fds[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	*cpu = process_cpu_seconds(z.pid);
	zdevd_stop(&z);
	if (n != (ssize_t)sizeof(*m))
		return -EIO;
	m->idle_rss_kib = idle_rss;
	return -m->error;
}

static double slowest(const double *v, int n)
{
	double s = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] < s)
			s = v[i];
	return s;
}

static double largest(const double *v, int n)
{
	double l = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] > l)
			l = v[i];
	return l;
}

int main(void)
{
	double to_dev[ROUNDS], to_sys[ROUNDS], trip[ROUNDS], base[ROUNDS], base_small[ROUNDS];
	double cpu_big = 0, cpu_small = 0, rss = 0, idle_rss = 0, warm_ms[ROUNDS];
	double first_fault[ROUNDS], fault_p50[ROUNDS];
	struct first cold_big, cold_small;
	double cpu_cold, ms_cold;
	const char *why = zdevd_unavailable();
	char *src, *dst;
	int ret;

	if (why) {
		printf("first-bench: skipped: %s\n", why);
		return 0;
	}
	src = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	dst = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		perror("first-bench: mmap");
		return 1;
	}
	/* Kept out of the children, so that a fork does not leave them
	 * copy-on-write and the baseline paying for it. */
	madvise(src, GIB, MADV_DONTFORK);
	madvise(dst, GIB, MADV_DONTFORK);
	memset(src, 3, GIB);
	memset(dst, 5, GIB);

	for (int r = 0; r < ROUNDS; r++) {
		struct first big, small;
		double cpu, ms;

		ret = round_fresh(GIB, "1G", &big, &cpu, &warm_ms[r]);
		if (ret)
			goto out_err;
		to_dev[r] = big.to_dev_gbps;
		to_sys[r] = big.to_sys_gbps;
		rss += big.rss_kib / ROUNDS;
		idle_rss += big.idle_rss_kib / ROUNDS;
		cpu_big += cpu / ROUNDS;
		ret = round_fresh(SMALL, "1G", &small, &cpu, &ms);
		if (ret)
			goto out_err;
		/* there and back, as one rate over the bytes moved */
		trip[r] = 1.0 / (1.0 / small.to_dev_gbps + 1.0 / small.to_sys_gbps);
		first_fault[r] = small.first_fault_us;
		fault_p50[r] = small.fault_p50_us;
		cpu_small += cpu / ROUNDS;
		base[r] = memcpy_gbps(dst, src, GIB);
		base_small[r] = 1.0 / (1.0 / memcpy_gbps(dst, src, SMALL) +
				       1.0 / memcpy_gbps(src + SMALL, dst + SMALL, SMALL));
	}

	ret = round_fresh(GIB, "0", &cold_big, &cpu_cold, &ms_cold);
	if (!ret)
		ret = round_fresh(SMALL, "0", &cold_small, &cpu_cold, &ms_cold);
	if (ret)
		goto out_err;

	figure("migrate_to_device_first", median(to_dev, ROUNDS), "GB/s", median(base, ROUNDS), "GB/s");
	figure("migrate_to_system_first", median(to_sys, ROUNDS), "GB/s", median(base, ROUNDS), "GB/s");
	figure("roundtrip_64m_first", median(trip, ROUNDS), "GB/s", median(base_small, ROUNDS), "GB/s");
	printf("slowest round: to device %.3f GB/s, to system %.3f GB/s, 64 MiB round trip %.3f GB/s\n",
	       slowest(to_dev, ROUNDS), slowest(to_sys, ROUNDS), slowest(trip, ROUNDS));
	printf("a fresh process's first CPU fault on a device page: %.1f us (median), slowest %.1f us; "
	       "its next faults: p50 %.1f us\n", median(first_fault, ROUNDS),
	       largest(first_fault, ROUNDS),
	       median(fault_p50, ROUNDS));
	printf("without warm memory (--warm 0), one round: to device %.3f GB/s, to system %.3f GB/s, "
	       "64 MiB round trip %.3f GB/s\n", cold_big.to_dev_gbps, cold_big.to_sys_gbps,
	       1.0 / (1.0 / cold_small.to_dev_gbps + 1.0 / cold_small.to_sys_gbps));
	printf("zdevd warmed 1 GiB in %.2f s (median); cpu a round: %.3f s for 1 GiB each way "
	       "(warming included), %.3f s for 64 MiB\n", median(warm_ms, ROUNDS) / 1000, cpu_big,
	       cpu_small);
	printf("zdevd resident: %.0f MiB idle and warm, %.0f MiB with 1 GiB on the device\n",
	       idle_rss / 1024, rss / 1024);
	return 0;

out_err:
	fprintf(stderr, "first-bench: %s\n", strerror(-ret));
	return 1;
}
