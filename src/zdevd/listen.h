/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_LISTEN_H
#define ZDEV_ZDEVD_LISTEN_H

/*
 * zdevd's listening socket: the one systemd passed (socket activation), or
 * one zdevd creates at its socket path, 0600, or 0660 and of the group of
 * --group.
 */

#include "zdevd/zdevd.h"

/*
 * Takes the socket systemd passed (LISTEN_FDS) as d->listen_fd,
 * non-blocking: 1 when one was passed, 0 when none was, or -errno with a
 * message on stderr. sd_listen_fds() hands the sockets only to the process
 * LISTEN_PID names, so this runs before zdevd forks to detach.
 */
int listen_take_passed(struct zdevd *d);
/* Unless a socket was passed, creates one at the socket path as
 * d->listen_fd, non-blocking: 0, or -errno with a message on stderr. */
int listen_open(struct zdevd *d);
/* Closes the socket; removes its file if zdevd created it. */
void listen_close(struct zdevd *d);

#endif
