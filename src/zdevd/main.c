/* SPDX-License-Identifier: MIT */
/* zdevd: serves emulated device memory to client processes. See zdevd(8). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devset.h"
#include "log.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdevd/clients.h"
#include "zdevd/listen.h"
#include "zdevd/notify.h"
#include "zdevd/options.h"
#include "zdevd/peer.h"
#include "zdevd/session.h"

static void probe_uffd(struct zdevd *d)
{
	const uint64_t wanted = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
				UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
				UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED;
	struct uffd_caps caps;
	int fd;

	if (uffd_probe(&caps)) {
		log_warn("userfaultfd is not available to zdevd: clients cannot be served");
		return;
	}
	d->devs.uffd_features = caps.features & wanted;
	if (!caps.event_fork) {
		d->devs.uffd_features &= ~(uint64_t)UFFD_FEATURE_EVENT_FORK;
		log_info("no fork events (they need CAP_SYS_PTRACE): clients bring their device pages home before they fork");
	}
	fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	d->devnode_ok = fd >= 0;
	if (fd >= 0)
		close(fd);
	else
		log_info("no /dev/userfaultfd: clients get user-mode-only uffds");
}

int main(int argc, char **argv)
{
	struct zdevd d = { .listen_fd = -1 };
	int ret;

	if (options_parse(argc, argv, &d.cfg))
		return 2;
	if (d.cfg.verbose)
		log_set_level(LOGL_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&d.mms_lock, NULL);
	pthread_mutex_init(&d.sessions_lock, NULL);
	pthread_cond_init(&d.sessions_gone, NULL);
	pthread_cond_init(&d.work, NULL);
	probe_uffd(&d);
	peer_check_capabilities(&d);
	if (devset_init(&d.devs, &d.cfg.devs))
		return 1;
	if (listen_open(&d))
		return 1;
	if (!d.cfg.foreground && daemon(0, 1)) {
		fprintf(stderr, "zdevd: daemon: %s\n", strerror(errno));
		return 1;
	}
	ret = loop_create(&d);
	if (ret) {
		fprintf(stderr, "zdevd: event loop: %s\n", strerror(-ret));
		return 1;
	}
	log_info("serving %u devices of %zu MiB on %s", d.cfg.devs.ndevices, d.cfg.devs.memory >> 20,
		  d.cfg.socket_path);
	notify_ready(&d);
	ret = loop_run(&d);
	/* Shutdown: no new clients, no request in flight, every page back
	 * with its owner, then the loop's own references, then the pools. */
	notify_stopping();
	listen_close(&d);
	workers_stop_all(&d);
	clients_evict_all(&d);
	clients_drop_unclaimed(&d);
	loop_destroy(&d);
	if (devset_fini(&d.devs))
		ret = -EBUSY;
	return ret ? 1 : 0;
}
