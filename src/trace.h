/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TRACE_H
#define ZDEV_TRACE_H

/*
 * zdevd's timeline trace (zdevd --trace FILE): what it served and moved, as
 * Chrome Trace Event JSON that Perfetto and chrome://tracing open, one event
 * a line (zdevd(8), TRACE).
 *
 * The sites record fixed-size events into a buffer under a small lock; a
 * thread of the trace's own formats them into the file, and samples each
 * device's memory in use as it does. Nothing is formatted or written on the
 * path of a fault. While tracing is off a site costs one test of trace_on.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "trace_format.h"

struct devset;

/* Set once by trace_open(), before any other thread of zdevd starts, and
 * never changed after: read without a lock. */
extern bool trace_on;

static inline bool tracing(void)
{
	return __builtin_expect(trace_on, 0);
}

/* The events, and their names in the file (trace.c). */
enum trace_kind {
	TRACE_CPU_FAULT,	/* X: a CPU touch of a device page served */
	TRACE_REVOKE_FAULT,	/* X: the same on a page held exclusive: a revocation */
	TRACE_REVOKE,		/* i: the client took exclusive pages back (count) */
	TRACE_GRANT,		/* i: pages made exclusive (count) */
	TRACE_GRANT_HELD,	/* X: pages moved to the device held exclusive */
	TRACE_TO_DEVICE,	/* X: migration to the device */
	TRACE_TO_SYSTEM,	/* X: migration back */
	TRACE_EVICT,		/* X: every page of a device (or all) back */
	TRACE_ACCESS_BACK,	/* i: a device access brought another device's page back */
	TRACE_CONNECT,		/* i: a client process's uffd is served from now on */
	TRACE_EXIT,		/* i: a client process is gone */
	TRACE_KINDS
};

/*
 * Opens path for the trace (truncated, mode 0644 less the umask) and writes
 * its head: the tracks of zdevd and of each device of devs. The writer
 * thread starts with trace_start(), after zdevd detached. 0, or -errno.
 */
int trace_open(const char *path, struct devset *devs);
/* Starts the writer: 0 or -errno. */
int trace_start(void);
/* Writes what is left, the last samples and the end of the JSON array, and
 * closes the file; events recorded after it are dropped. */
void trace_close(void);

/* A CPU fault (TRACE_CPU_FAULT or TRACE_REVOKE_FAULT) of thread tid of
 * process pid at addr, served from t0 to t1 (CLOCK_MONOTONIC ns), which
 * brought pages pages of device dev back. */
void trace_fault(enum trace_kind kind, pid_t pid, pid_t tid, unsigned int dev, uint64_t addr,
		 uint64_t pages, uint64_t t0, uint64_t t1);
/* Something with a duration on device dev for process pid (migrations,
 * evictions; dev < 0: every device): pages moved, count as the statistics
 * count it. */
void trace_span(enum trace_kind kind, pid_t pid, int dev, uint64_t addr, uint64_t pages,
		uint64_t count, uint64_t t0, uint64_t t1);
/* Something without one (grants, revocations, clients). */
void trace_mark(enum trace_kind kind, pid_t pid, int dev, uint64_t addr, uint64_t pages,
		uint64_t count);

#endif
