/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_DEVSET_H
#define ZDEV_DEVSET_H

/* The devices' life: their pools are made at zdevd's start and destroyed at
 * its end (the types are in device.h). */

#include "device.h"

/* Creates every device's pool: 0, or -errno (the devices made so far are
 * destroyed again). */
int devset_init(struct devset *ds, const struct devset_config *cfg);
/* Destroys the pools, once every client's pages are back: 0, or -EBUSY when
 * a pool still had pages in use (it is left to the process's exit). */
int devset_fini(struct devset *ds);

/* A use of dev's pool begins: 0 with dev->plug_lock held for reading, or
 * -ENODEV (nothing held) while the device is unplugged. An unplug or a plug
 * under way is waited for. */
int device_enter(struct device *dev);
/* The same without waiting: false when the device is unplugged or an unplug
 * or a plug holds it. */
bool device_try_enter(struct device *dev);
void device_leave(struct device *dev);

/* With dev->plug_lock held for writing, and no page of the pool in use any
 * more and no store but the warm one (zdevd brought them home and let its
 * processes' stores go): the warm store goes, the pool is torn down
 * (refpool_destroy(): its metadata goes after an RCU grace period) and the
 * device is unplugged. 0, or -EBUSY (the pool stays) while a page or a
 * store is left. */
int devset_unplug_locked(struct devset *ds, unsigned int index);
/* With dev->plug_lock held for writing: a fresh, empty pool of the device's
 * configuration. 0, or the -errno of making it (the device stays unplugged). */
int devset_plug_locked(struct devset *ds, unsigned int index);

#endif
