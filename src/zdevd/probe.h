/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_PROBE_H
#define ZDEV_ZDEVD_PROBE_H

/*
 * What the running kernel's userfaultfd lets zdevd give its clients: the
 * uffd features it asks of every client's uffd, and whether /dev/userfaultfd
 * can be handed out. Without a userfaultfd at all, it says so and leaves
 * both off: clients are then refused at their uffd.
 */

#include "zdevd/zdevd.h"

void probe_uffd(struct zdevd *d);

#endif
