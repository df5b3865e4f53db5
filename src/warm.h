/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_WARM_H
#define ZDEV_WARM_H

/*
 * Warm device memory: for each private device, a store made ahead for the
 * next new process, with memory mapped and populated under free blocks of
 * the pool while zdevd is idle (warm.c).
 */

#include "device.h"

/* Starts the thread that keeps up to ds's configured warm bytes of each
 * private device ready (once per zdevd): 0 or -errno. */
int warm_start(struct devset *ds, size_t warm_bytes);
/* Stops it and drops the warm stores: before the pools go. */
void warm_stop(struct devset *ds);

/* A migration on dev begins, or ends: warming waits until the device has
 * had none for a moment. */
void warm_device_busy(struct device *dev);
void warm_device_done(struct device *dev);

#endif
