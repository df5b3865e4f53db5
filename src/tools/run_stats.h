/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TOOLS_RUN_STATS_H
#define ZDEV_TOOLS_RUN_STATS_H

/*
 * The statistics the shim leaves for zdev-run: each process image of the
 * program writes, at its exit (or exec), one file named
 * <ZDEV_STATS_DIR>/<pid>.<anything>.json holding one JSON object on one line:
 *
 *   {"pid":4242,"policy":"stress","seed":7,"cpu_faults":12,"device_faults":3,
 *    "pages_to_device":512,"pages_to_system":260,"exclusive_grants":4,
 *    "exclusive_revokes":1,"peak_device_pages":512,"fault_max_ns":91000,
 *    "fault_hist":[0,0,0,0,0,0,0,0,0,0,0,0,0,2,7,3,0,...,0]}
 *
 * Every key but policy (a string) holds an integer in [0, 2^64). fault_hist
 * holds RUN_STATS_HIST_BUCKETS integers, element i counting the CPU faults
 * whose latency was in [2^i, 2^(i+1)) ns. Keys may come in any order; unknown
 * keys are ignored, a missing key counts as 0. zdev-run(1), FILES, is the
 * reference.
 */

#include <stddef.h>
#include <stdint.h>

#define RUN_STATS_HIST_BUCKETS	40
#define RUN_STATS_PAGE_SIZE	4096
/* Larger files are not statistics files. */
#define RUN_STATS_MAX_FILE	65536

/* One file. */
struct run_stats_proc {
	uint64_t pid;
	uint64_t seed;
	char policy[16];
	uint64_t cpu_faults;
	uint64_t device_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	uint64_t peak_device_pages;
	uint64_t fault_max_ns;
	uint64_t fault_hist[RUN_STATS_HIST_BUCKETS];
};

/*
 * Every file of a run merged: counters summed (saturating at UINT64_MAX),
 * histograms added, the largest fault_max_ns (raised to the lower bound of
 * the slowest bucket counted, for files that lack it). Zero it before the first
 * run_stats_add() or run_stats_load_dir(); free it with run_stats_free().
 */
struct run_stats {
	unsigned int files;		/* files merged */
	unsigned int skipped;		/* malformed files left out */
	size_t processes;		/* distinct pids among the files merged */
	uint64_t cpu_faults;
	uint64_t device_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	/* The sum of every file's peak: an upper bound of the run's peak,
	 * since the processes need not have peaked at the same time. */
	uint64_t peak_device_pages;
	uint64_t fault_max_ns;
	uint64_t fault_hist[RUN_STATS_HIST_BUCKETS];
	uint64_t *pids;			/* sorted, for processes */
	size_t pids_cap;
};

/* Parses the len bytes at text as one file's content into *out (every field
 * not in the text is 0). 0; -EINVAL if the text is not one JSON object of
 * this shape (a counter of the wrong type, a negative or fractional one,
 * trailing text); -ERANGE if a counter is 2^64 or more. */
int run_stats_parse(const char *text, size_t len, struct run_stats_proc *out);

/* Merges one file into s. 0, or -ENOMEM (s is then unchanged). */
int run_stats_add(struct run_stats *s, const struct run_stats_proc *p);

/* Merges every file of dir whose name is <pid>.<anything>.json; other names
 * are not looked at. A file that is not a statistics file is counted in
 * s->skipped with one warning on standard error naming it. 0, or -errno
 * if dir cannot be read or memory runs out. */
int run_stats_load_dir(struct run_stats *s, const char *dir);

/* The latency under which percent % of the merged CPU faults fell: the
 * middle of the bucket where the cumulative count reaches that fraction,
 * never above fault_max_ns. 0 when no fault was counted. */
uint64_t run_stats_percentile_ns(const struct run_stats *s, unsigned int percent);

/* pages * RUN_STATS_PAGE_SIZE, or UINT64_MAX if that does not fit. */
uint64_t run_stats_bytes(uint64_t pages);

void run_stats_free(struct run_stats *s);

#endif
