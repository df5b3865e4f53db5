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

#endif
