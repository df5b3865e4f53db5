/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_UNPLUG_H
#define ZDEV_ZDEVD_UNPLUG_H

/*
 * A device unplugged and plugged again while zdevd runs (UNPLUG and PLUG,
 * from zdevctl): the kernel's memunmap_pages() of a driver that goes away,
 * and a fresh memremap_pages() when it comes back.
 */

#include <stdbool.h>
#include <sys/types.h>

#include "zdevd/zdevd.h"

/* Whether uid may unplug and plug devices: root, or the user zdevd runs as;
 * not the other members of --group. */
bool unplug_allowed(uid_t uid);

/*
 * Unplugs device dev: requests on it under way end first, and later ones
 * get -ENODEV; every page every process has on it comes home with its data
 * (the device's share of each process's table: mirror entries and
 * exclusive holds, goes too, and its stores); then its pool is torn down.
 * *moved: the pages brought home. 0, -EALREADY when it is unplugged
 * already, -EBUSY when a page could not be brought home (the device stays
 * as it was, its pages that did come home excepted).
 */
int unplug_device(struct zdevd *d, unsigned int dev, uint64_t *moved);
/* A fresh, empty device in dev's place, of its configuration: 0,
 * -EALREADY when it is plugged, or the -errno of making its pool. */
int plug_device(struct zdevd *d, unsigned int dev);

#endif
