/* SPDX-License-Identifier: MIT */
/* zdev-run: the summary on standard error and the --stats-json object. */
#include "config.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "tools/zdev-run.h"

#define PREFIX "zdev-run: "

static void fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

static void fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, len, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/*
 * The histogram as one bar per power of two, from the fastest bucket used
 * to the slowest, each as high as its count against the largest: block
 * characters where the terminal takes UTF-8, else ASCII.
 */
static void print_hist(const struct run_stats *s)
{
	static const char *const blocks[] = { " ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };
	static const char *const ascii[] = { " ", ".", ":", "-", "=", "+", "*", "#", "@" };
	const char *const *glyph = ascii;
	const char *codeset;
	uint64_t peak = 0;
	int lo = -1, hi = -1;
	char from[32], to[32];

	for (int i = 0; i < RUN_STATS_HIST_BUCKETS; i++) {
		if (!s->fault_hist[i])
			continue;
		if (lo < 0)
			lo = i;
		hi = i;
		if (s->fault_hist[i] > peak)
			peak = s->fault_hist[i];
	}
	if (lo < 0)
		return;
	if (setlocale(LC_CTYPE, "") && (codeset = nl_langinfo(CODESET)) && !strcmp(codeset, "UTF-8"))
		glyph = blocks;
	fmt_ns(from, sizeof(from), 1ull << lo);
	fmt_ns(to, sizeof(to), 1ull << (hi + 1));
	fprintf(stderr, PREFIX "fault latency histogram, one column per power of two: %s |", from);
	for (int i = lo; i <= hi; i++) {
		double height = (double)s->fault_hist[i] * 8 / (double)peak;
		int level = (int)height;

		if (level < height)
			level++;
		fputs(glyph[level > 8 ? 8 : level], stderr);
	}
	fprintf(stderr, "| %s\n", to);
}

static void print_outcome(const struct run_stats *s, const struct run_result *r)
{
	fprintf(stderr, PREFIX "%s: %zu process%s, exit status %d, policy %s", r->program,
		s->processes, s->processes == 1 ? "" : "es", r->exit_status, r->policy);
	if (r->fell_back)
		fputs(" (in effect none: no kernel-mode faults)", stderr);
	if (r->seed_set && !strcmp(r->policy, "stress"))
		fprintf(stderr, ", seed %llu (--seed %llu repeats it)", (unsigned long long)r->seed,
			(unsigned long long)r->seed);
	fputc('\n', stderr);
	if (s->skipped)
		fprintf(stderr, PREFIX "%u malformed statistics file%s left out\n", s->skipped,
			s->skipped == 1 ? "" : "s");
}

/* The counters the summary and the JSON give: zdevd's totals where the
 * processes' files counted less (run_result.totals), else the files'. */
static const struct run_stats *counters(const struct run_stats *s, const struct run_result *r)
{
	return r->totals ? &r->totals->counts : s;
}

static uint64_t percentile_ns(const struct run_stats *s, const struct run_result *r,
			      unsigned int percent)
{
	if (r->totals)
		return percent == 50 ? r->totals->fault_p50_ns : r->totals->fault_p99_ns;
	return run_stats_percentile_ns(s, percent);
}

static void print_counters(const struct run_stats *s, const struct run_result *r)
{
	const struct run_stats *c = counters(s, r);
	char to_dev[32], to_sys[32], peak[32], p50[32], p99[32], max[32];

	fmt_bytes(to_dev, sizeof(to_dev), run_stats_bytes(c->pages_to_device));
	fmt_bytes(to_sys, sizeof(to_sys), run_stats_bytes(c->pages_to_system));
	fmt_bytes(peak, sizeof(peak), run_stats_bytes(c->peak_device_pages));
	fmt_ns(p50, sizeof(p50), percentile_ns(s, r, 50));
	fmt_ns(p99, sizeof(p99), percentile_ns(s, r, 99));
	fmt_ns(max, sizeof(max), c->fault_max_ns);
	fprintf(stderr,
		PREFIX "CPU faults served: %llu, device faults: %llu\n"
		PREFIX "pages to the device: %llu (%s), back to system memory: %llu (%s)\n"
		PREFIX "exclusive access: %llu grants, %llu revokes\n"
		PREFIX "fault latency: p50 %s, p99 %s, max %s\n",
		(unsigned long long)c->cpu_faults, (unsigned long long)c->device_faults,
		(unsigned long long)c->pages_to_device, to_dev,
		(unsigned long long)c->pages_to_system, to_sys,
		(unsigned long long)c->exclusive_grants, (unsigned long long)c->exclusive_revokes,
		p50, p99, max);
	if (r->totals)
		fprintf(stderr, PREFIX "(zdevd's count: the program moved memory through "
				"libzdev where the shim could not count it)\n");
	else
		print_hist(s);
	fprintf(stderr, PREFIX "peak device memory: at most %s (each %s's peak, summed)\n", peak,
		r->totals ? "device" : "process");
}

void run_report_print(const struct run_stats *s, const struct run_result *r)
{
	print_outcome(s, r);
	if (s->files || r->totals)
		print_counters(s, r);
	else
		fprintf(stderr, PREFIX "no process wrote statistics: the shim was not loaded "
				"(a statically linked or set-user-ID program?) or found no zdevd\n");
	if (r->zdevd && r->zdevd->stopped)
		fprintf(stderr, PREFIX "zdevd CPU time: %.3f s user, %.3f s system\n",
			seconds(r->zdevd->ru.ru_utime), seconds(r->zdevd->ru.ru_stime));
}

static void json_counters(FILE *f, const struct run_stats *s, const struct run_result *r)
{
	const struct run_stats *c = counters(s, r);

	fprintf(f,
		"\"cpu_faults\":%llu,\"device_faults\":%llu,"
		"\"pages_to_device\":%llu,\"bytes_to_device\":%llu,"
		"\"pages_to_system\":%llu,\"bytes_to_system\":%llu,"
		"\"exclusive_grants\":%llu,\"exclusive_revokes\":%llu,\"peak_device_bytes\":%llu,"
		"\"fault_latency_us\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},\"fault_hist\":[",
		(unsigned long long)c->cpu_faults, (unsigned long long)c->device_faults,
		(unsigned long long)c->pages_to_device,
		(unsigned long long)run_stats_bytes(c->pages_to_device),
		(unsigned long long)c->pages_to_system,
		(unsigned long long)run_stats_bytes(c->pages_to_system),
		(unsigned long long)c->exclusive_grants, (unsigned long long)c->exclusive_revokes,
		(unsigned long long)run_stats_bytes(c->peak_device_pages),
		percentile_ns(s, r, 50) / 1e3, percentile_ns(s, r, 99) / 1e3, c->fault_max_ns / 1e3);
	for (int i = 0; i < RUN_STATS_HIST_BUCKETS; i++)
		fprintf(f, "%s%llu", i ? "," : "", (unsigned long long)s->fault_hist[i]);
	fputs("],", f);
}

int run_report_json(const char *path, const struct run_stats *s, const struct run_result *r)
{
	FILE *f = fopen(path, "w");
	int ret = 0;

	if (!f) {
		ret = -errno;
		log_err("--stats-json %s: %s", path, strerror(-ret));
		return ret;
	}
	/* The policy is one of zdev-run's own names: nothing to escape. */
	fprintf(f, "{\"processes\":%zu,\"exit_status\":%d,\"policy\":\"%s\","
		"\"policy_in_effect\":\"%s\",\"seed\":", s->processes, r->exit_status, r->policy,
		r->fell_back ? "none" : r->policy);
	if (r->seed_set)
		fprintf(f, "%llu,", (unsigned long long)r->seed);
	else
		fputs("null,", f);
	json_counters(f, s, r);
	fprintf(f, "\"counted_by\":\"%s\",", r->totals ? "zdevd" : "processes");
	fprintf(f, "\"stats_files\":%u,\"stats_files_skipped\":%u,\"zdevd_cpu_seconds\":", s->files,
		s->skipped);
	if (r->zdevd && r->zdevd->stopped)
		fprintf(f, "{\"user\":%.3f,\"system\":%.3f}}\n", seconds(r->zdevd->ru.ru_utime),
			seconds(r->zdevd->ru.ru_stime));
	else
		fputs("null}\n", f);
	if (ferror(f))
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	if (ret)
		log_err("--stats-json %s: %s", path, strerror(-ret));
	return ret;
}
