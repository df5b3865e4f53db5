/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TOOLS_ZDEV_RUN_H
#define ZDEV_TOOLS_ZDEV_RUN_H

/* zdev-run: runs a program with the shim preloaded against a zdevd, its own
 * or a running one, and sums up what the program's processes saw. See
 * zdev-run(1). */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "tools/run_stats.h"

/* zdev-run's own failures; 126 and 127 as a shell says of a program it
 * could not execute, or could not find. */
#define RUN_EXIT_FAIL		125
#define RUN_EXIT_NOEXEC		126
#define RUN_EXIT_NOTFOUND	127

/* The socket's name in the directory zdev-run makes, and the stats
 * directory's. */
/* The devices of zdev-run's own zdevd: the kernel's test driver's four. */
#define RUN_DEVICES_DEFAULT	4
/* Memory its zdevd keeps warm on each private device (zdevd --warm): none,
 * since a zdevd that lives as long as one program would warm memory at every
 * start and free it at every exit, which costs a short program more than its
 * first migrations gain. */
#define RUN_WARM_DEFAULT	"0"
#define RUN_SOCKET_NAME		"zdevd.sock"
#define RUN_STATS_NAME		"stats"
/* The trace --plot draws, when --trace names no file of the user's. */
#define RUN_TRACE_NAME		"trace.json"
/* In it, the shim's mark that a process's policy fell back to none. */
#define RUN_POLICY_NONE_MARK	"policy-none"

/* The signal that asked zdev-run to finish while no program ran, or 0:
 * zdevd is not waited for then. Set from signal handlers. */
extern volatile sig_atomic_t run_hurry;

/* ---- zdev-run-paths.c ---- */

/* The zdevd to start: $ZDEVD, else the one beside zdev-run (in a build tree
 * too), else the installed one, else the first on PATH. 0 with its path in
 * buf, or -ENOENT with a message on standard error. */
int run_find_zdevd(char *buf, size_t len);

/* The shim: $ZDEV_PRELOAD, else the build tree's .libs/libzdev-preload.so
 * beside zdev-run, else the installed one. 0 with its absolute path in buf,
 * or -errno with a message on standard error. */
int run_find_shim(char *buf, size_t len);

/* Makes a private directory (mode 0700) under $XDG_RUNTIME_DIR or /tmp, short
 * enough for a socket in it, with the stats directory inside. 0 with its
 * path in buf, or -errno with a message on standard error. */
int run_make_dir(char *buf, size_t len);

/* Whether a process of the program left the shim's mark in stats_dir: it
 * had no kernel-mode faults, and its policy moved nothing. */
bool run_policy_fell_back(const char *stats_dir);

/* Removes what run_make_dir() made and what was left in it: the socket and
 * the files of the stats directory. Warns of what it could not remove. */
void run_remove_dir(const char *dir);

/* ---- zdev-run-zdevd.c ---- */

/* The private zdevd. */
struct run_zdevd {
	pid_t pid;			/* running, or 0 */
	char socket[108];
	bool stopped;			/* it ran and is gone: ru is its usage */
	struct rusage ru;
	const char *trace;		/* its --trace FILE, or NULL */
};

/* 0 if a zdevd accepts connections on socket, else the -errno of the
 * connect. */
int run_zdevd_check(const char *socket);

/* zdevd's arguments at most: zdev-run's own (with --trace), and the
 * model's (--link and --fault-latency, RUN_MODEL_ARGS_MAX words). */
#define RUN_MODEL_ARGS_MAX 32
#define RUN_ZDEVD_ARGS_MAX (20 + RUN_MODEL_ARGS_MAX)

/* Starts zdevd (the binary exe) on a socket in dir with ndevices devices of
 * memory each (memory_type: its --memory-type, or NULL) and warm of each
 * private device's memory warm, extra (NULL-terminated, may be NULL) as
 * further arguments, and z->trace (if not NULL) as its --trace, and waits
 * until it accepts connections. 0, or -errno with a message on standard
 * error: -EPERM when this user may not create a
 * userfaultfd (zdevd would serve nothing), -ENOSYS when the kernel has none,
 * -ECHILD when zdevd exited, -ETIMEDOUT when it did not become ready in time
 * and -EINTR when run_hurry was set meanwhile (it is killed then). */
int run_zdevd_start(struct run_zdevd *z, const char *exe, const char *dir, unsigned int ndevices,
		    const char *memory, const char *memory_type, const char *warm,
		    const char *const *extra);

/* What the private zdevd counted of every process it served, the
 * program's own calls to libzdev included: the counters, fault_max_ns and
 * peak_device_pages (each device's peak, summed) of counts, whose
 * histogram stays empty, and zdevd's own percentiles. */
struct run_zdevd_totals {
	struct run_stats counts;
	uint64_t fault_p50_ns;
	uint64_t fault_p99_ns;
};

/* Asks the running private zdevd for its totals. 0, or -errno (-ENOENT
 * without a private zdevd). */
int run_zdevd_totals(const struct run_zdevd *z, struct run_zdevd_totals *t);

/* Stops the private zdevd: SIGTERM, then SIGKILL if it has not exited in
 * time (at once if run_hurry is set). Warns if it had exited already or
 * exited with a failure. */
void run_zdevd_stop(struct run_zdevd *z);

/* ---- zdev-run-report.c ---- */

/* What the summary and the JSON say besides the merged statistics. */
struct run_result {
	int exit_status;		/* zdev-run's: the program's, or 128 + signal */
	const char *program;
	const char *policy;
	bool fell_back;			/* the shim ran none instead (run_policy_fell_back) */
	bool seed_set;
	uint64_t seed;
	const struct run_zdevd *zdevd;	/* the private zdevd, or NULL */
	/* The private zdevd's totals, when they count more than the
	 * processes' statistics files (the shim counts only what passed
	 * through a handle of its own), or NULL. */
	const struct run_zdevd_totals *totals;
};

/* The summary, a few lines on standard error. */
void run_report_print(const struct run_stats *s, const struct run_result *r);

/* Writes one JSON object to path. 0, or -errno with a message on standard
 * error. */
int run_report_json(const char *path, const struct run_stats *s, const struct run_result *r);

#endif
