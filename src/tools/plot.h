/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TOOLS_PLOT_H
#define ZDEV_TOOLS_PLOT_H

/*
 * The pictures of a zdevd trace (zdevd --trace): each device's memory in use
 * over time and the CPU fault latency histogram, as one SVG file that a
 * browser shows with nothing else. zdevctl plot and zdev-run --plot draw
 * them; see zdevctl(8).
 */

#include <stddef.h>
#include <stdint.h>

#include "zdevd_limits.h"

/* Fault latency buckets: [2^i, 2^(i+1)) microseconds, the first from 0, the
 * last without a bound above. */
#define PLOT_LAT_BUCKETS 24

struct plot_point {
	uint64_t ts_ns;		/* since the trace began */
	uint64_t bytes;
};

/* What a trace says, as far as the pictures need it. */
struct plot_data {
	unsigned int ndevices;	/* device tracks seen: 0 .. ndevices - 1 */
	struct plot_point *mem[ZDEV_MAX_DEVICES];	/* each device's samples, in order */
	size_t nmem[ZDEV_MAX_DEVICES], capmem[ZDEV_MAX_DEVICES];
	uint64_t lat[PLOT_LAT_BUCKETS];	/* CPU faults by latency */
	uint64_t faults;
	uint64_t end_ns;	/* the last timestamp */
};

/* trace_read.c: reads the trace zdevd wrote at path. 0, or -errno with a
 * message on standard error naming the file and line, prefixed with prog:
 * -EBADMSG for a line that is not one of zdevd's events. Free with
 * plot_data_free(). */
int plot_read_trace(const char *prog, const char *path, struct plot_data *pd);
void plot_data_free(struct plot_data *pd);

/* plot_svg.c: writes the two pictures of pd to out as SVG, title naming
 * what (the trace's name). 0, or -errno with a message on standard error. */
int plot_write_svg(const char *prog, const struct plot_data *pd, const char *what,
		   const char *out);

/* Both: the pictures of the trace at trace, into out. */
int plot_trace(const char *prog, const char *trace, const char *out);

#endif
