/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_STATUS_H
#define ZDEV_ZDEVD_STATUS_H

/*
 * What zdevctl asks, on a connection that need not have said HELLO: the
 * whole daemon (STATUS), one device (DEVICE_STATUS), and the client
 * processes a page at a time (CLIENTS).
 */

#include <stdint.h>

#include "proto.h"
#include "zdevd/zdevd.h"

/* What every client of this zdevd gets, whatever its own privileges:
 * ZFEAT_KERNEL_FAULTS and ZFEAT_FORK_EVENTS. */
uint32_t status_features(const struct zdevd *d);

/* Each fills in the answer to req, a message zmsg_init() made. */
void status_fill(struct zdevd *d, union zmsg *m);
void status_fill_device(struct zdevd *d, const struct zmsg_req *req, union zmsg *m);
void status_fill_clients(struct zdevd *d, const struct zmsg_req *req, union zmsg *m);

#endif
