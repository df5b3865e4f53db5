/* SPDX-License-Identifier: MIT */
/* Readiness and shutdown, told to zdevd's starter and to systemd. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "zdevd/notify.h"

/* --ready-fd: a newline, then the descriptor is closed. A starter that
 * reads EOF instead knows zdevd exited first. */
static void tell_ready_fd(struct zdevd *d)
{
	ssize_t n;

	if (d->cfg.ready_fd < 0)
		return;
	while ((n = write(d->cfg.ready_fd, "\n", 1)) < 0 && errno == EINTR)
		;
	/* Nobody reading is no reason not to serve. */
	if (n != 1)
		log_warn("--ready-fd %d: %s", d->cfg.ready_fd, n < 0 ? strerror(errno) : "short write");
	close(d->cfg.ready_fd);
	d->cfg.ready_fd = -1;
}

void notify_ready(struct zdevd *d)
{
	int ret;

	tell_ready_fd(d);
	/* Type=notify: systemd holds back the units ordered after zdevd
	 * until this; without NOTIFY_SOCKET it does nothing. */
	ret = sd_notifyf(0, "READY=1\nSTATUS=serving %u devices of %zu MiB on %s",
			 d->cfg.devs.ndevices, d->cfg.devs.memory >> 20, d->cfg.socket_path);
	if (ret < 0)
		log_warn("sd_notify: %s", strerror(-ret));
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping: device pages go back to their owners");
}
