/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_LISTEN_H
#define ZDEV_ZDEVD_LISTEN_H

/*
 * zdevd's listening socket: the one systemd passed (socket activation), or
 * one zdevd creates at its socket path, 0600, or 0660 and of the group of
 * --group.
 */

#include "zdevd/zdevd.h"

/* Sets d->listen_fd, non-blocking: 0, or -errno with a message on stderr. */
int listen_open(struct zdevd *d);
/* Closes the socket; removes its file if zdevd created it. */
void listen_close(struct zdevd *d);

#endif
