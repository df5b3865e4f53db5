/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PARALLEL_H
#define ZDEV_PARALLEL_H

#include <stddef.h>

/* Pages a thread copies at least: 4 MiB, or a thread is not worth starting. */
#define PARALLEL_MIN_PAGES 1024

/*
 * Runs fn over [0, n) split in parts, one on each online CPU (the calling
 * thread takes the first), when n is at least min_part per part; otherwise
 * in the calling thread. A migration's client waits for it, so its CPU is
 * free to copy too. Returns the first non-zero result of a part.
 */
typedef int (*parallel_fn)(void *ctx, size_t lo, size_t hi);
int parallel_run(parallel_fn fn, void *ctx, size_t n, size_t min_part);

#endif
