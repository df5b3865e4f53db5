/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_BENCH_TOUCH_H
#define ZDEV_BENCH_TOUCH_H

/* What the latency benchmarks share: the order pages are touched in, the
 * timed touches, and a zdev round of them. */

#include <stdbool.h>
#include <stddef.h>

#include "zdev.h"

/* v[0, n) = 0 .. n-1, shuffled with seed when random. */
void page_order(size_t *v, size_t n, unsigned int seed, bool random);

/* Reads one byte of each page of buf in the given order; lat[i] gets the
 * nanoseconds the i-th read took. */
void touch_pages(volatile char *buf, const size_t *order, size_t n, double *lat);

/* Sorts v and returns its p-quantile. */
double percentile(double *v, size_t n, double p);

/* One round on zdev: npages of managed memory written, handed to the device
 * by give (zdev_migrate_to_device, zdev_make_exclusive, ...), then touched
 * in order. 0 or -errno. */
typedef int (*give_fn)(struct zdev *dev, void *addr, size_t npages, struct zdev_result *res);
int touch_round_zdev(struct zdev *dev, give_fn give, size_t npages, const size_t *order,
		     double *lat);

#endif
