/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_NOTIFY_H
#define ZDEV_ZDEVD_NOTIFY_H

/*
 * Telling whoever started zdevd how it is: --ready-fd's starter, and the
 * service manager through sd_notify() when zdevd runs under systemd (a
 * no-op otherwise).
 */

#include "zdevd/zdevd.h"

/* The socket accepts connections and the loop is about to serve them. */
void notify_ready(struct zdevd *d);
/* zdevd stops: no new client from now on, device pages going home. */
void notify_stopping(void);

#endif
