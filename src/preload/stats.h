/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_STATS_H
#define ZDEV_PRELOAD_STATS_H

/*
 * What happened to the process, at its exit (or exec): to stderr or the
 * file ZDEV_STATS names, in text or JSON, and one file in ZDEV_STATS_DIR
 * for zdev-run to sum (its format is in zdev-run(1), FILES). Never stdout.
 */

#include "preload/env.h"

struct zdev;

/* dev NULL: no device, every count is 0. */
void stats_write(const struct env *e, struct zdev *dev);

#endif
