/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LATHIST_H
#define ZDEV_LATHIST_H

/*
 * A latency histogram in powers of two: bucket i holds the latencies in
 * [2^i, 2^(i+1)) ns (the last one also everything above), with the largest
 * seen. Recording is lock-free, from any thread.
 */

#include <stdatomic.h>
#include <stdint.h>

#define LATHIST_BUCKETS 40

struct lathist {
	_Atomic uint64_t bucket[LATHIST_BUCKETS];
	_Atomic uint64_t max_ns;
};

/* What a histogram held at one time, to read percentiles from. */
struct lathist_snap {
	uint64_t bucket[LATHIST_BUCKETS];
	uint64_t max_ns;
};

uint64_t lathist_now_ns(void);	/* CLOCK_MONOTONIC */
void lathist_record(struct lathist *h, uint64_t ns);
void lathist_read(struct lathist *h, struct lathist_snap *s);
/* The latency below which a fraction p of those recorded lie (the middle of
 * its bucket, never above the largest seen); 0 when none was. */
uint64_t lathist_percentile(const struct lathist_snap *s, double p);

#endif
