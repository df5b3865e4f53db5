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
#include "trace.h"
#include "warm.h"
#include "zdevd/clients.h"
#include "zdevd/detach.h"
#include "zdevd/fault_delay.h"
#include "zdevd/listen.h"
#include "zdevd/notify.h"
#include "zdevd/options.h"
#include "zdevd/peer.h"
#include "zdevd/pidfile.h"
#include "zdevd/probe.h"
#include "zdevd/session.h"

/*
 * zdevd goes live: out of the terminal's session when it detaches, its pid
 * in the pidfile, then (detached) its output off the terminal and the
 * waiting starter released. 0, or -errno after a message on stderr, which
 * is still the starter's.
 */
static int go_live(struct zdevd *d, int pidfile_fd)
{
	int ret;

	if (!d->cfg.foreground) {
		ret = detach_leave_session();
		if (ret)
			return ret;
	}
	if (pidfile_fd >= 0) {
		ret = pidfile_write(pidfile_fd, d->cfg.pidfile, getpid());
		if (ret)
			return ret;
	}
	return d->cfg.foreground ? 0 : detach_finish();
}

/*
 * Everything that can fail at start runs before zdevd detaches (the
 * starter waits for it, see detach.h): the pidfile, the pools, the socket,
 * the event loop, whose ring also belongs to the process that made it.
 */
int main(int argc, char **argv)
{
	struct zdevd d = { .listen_fd = -1 };
	int pidfile_fd = -1, ret;

	if (options_parse(argc, argv, &d.cfg))
		return ZDEVD_EXIT_USAGE;
	if (d.cfg.verbose)
		log_set_level(LOGL_DEBUG);
	signal(SIGPIPE, SIG_IGN);
	/* zdevd has no configuration file to read again, and syslog or
	 * standard error need no reopening: SIGHUP means nothing to it. */
	signal(SIGHUP, SIG_IGN);
	/* Before the fork: a passed socket is only for the pid systemd
	 * started. */
	if (listen_take_passed(&d) < 0)
		return ZDEVD_EXIT_FAILURE;
	if (!d.cfg.foreground && detach_start())
		return ZDEVD_EXIT_FAILURE;
	if (d.cfg.pidfile[0]) {
		pidfile_fd = pidfile_claim(d.cfg.pidfile);
		if (pidfile_fd < 0)
			return ZDEVD_EXIT_FAILURE;
	}
	pthread_mutex_init(&d.mms_lock, NULL);
	probe_uffd(&d);
	peer_check_capabilities(&d);
	if (devset_init(&d.devs, &d.cfg.devs))
		goto out_remove_pidfile;
	if (listen_open(&d))
		goto out_fini_devs;
	ret = loop_create(&d);
	if (ret) {
		fprintf(stderr, "zdevd: event loop: %s\n", strerror(-ret));
		goto out_close_socket;
	}
	if (d.cfg.trace[0]) {
		ret = trace_open(d.cfg.trace, &d.devs);
		if (ret) {
			fprintf(stderr, "zdevd: --trace: %s: %s\n", d.cfg.trace, strerror(-ret));
			goto out_destroy_loop;
		}
	}
	ret = fault_delay_start(&d);
	if (ret) {
		fprintf(stderr, "zdevd: device model: %s\n", strerror(-ret));
		goto out_close_trace;
	}
	ret = workers_init(&d);
	if (ret) {
		fprintf(stderr, "zdevd: workers: %s\n", strerror(-ret));
		goto out_stop_delay;
	}
	if (go_live(&d, pidfile_fd))
		goto out_stop_workers;
	ret = trace_start();
	if (ret)
		log_warn("trace: no writer thread (%s): events are written at exit", strerror(-ret));
	log_info("serving %u devices of %zu MiB on %s", d.cfg.devs.ndevices, d.cfg.devs.memory >> 20,
		  d.cfg.socket_path);
	for (unsigned int i = 0; i < d.devs.ndevices; i++)
		if (d.devs.dev[i].memtype == REFPOOL_MEMTYPE_COHERENT)
			log_info("device %u: coherent memory", i);
	notify_ready(&d);
	/* After the socket is up: the first client never waits for it. */
	ret = warm_start(&d.devs, d.cfg.devs.warm < d.cfg.devs.memory ? d.cfg.devs.warm
									 : d.cfg.devs.memory);
	if (ret)
		log_warn("no warm device memory: %s", strerror(-ret));
	ret = loop_run(&d);
	/* Shutdown: held faults go first, then no new clients, no request in
	 * flight, every page back with its owner, then the loop's own
	 * references, then the pools. */
	fault_delay_stop(&d);
	notify_stopping();
	listen_close(&d);
	workers_stop_all(&d);
	clients_evict_all(&d);
	clients_drop_unclaimed(&d);
	trace_close();
	loop_destroy(&d);
	warm_stop(&d.devs);
	fault_delay_free(&d);
	if (devset_fini(&d.devs))
		ret = -EBUSY;
	if (pidfile_fd >= 0)
		pidfile_remove(pidfile_fd, d.cfg.pidfile);
	return ret ? ZDEVD_EXIT_FAILURE : 0;

out_stop_workers:
	workers_stop_all(&d);
out_stop_delay:
	fault_delay_stop(&d);
	fault_delay_free(&d);
out_close_trace:
	trace_close();
out_destroy_loop:
	loop_destroy(&d);
out_close_socket:
	listen_close(&d);
out_fini_devs:
	devset_fini(&d.devs);
out_remove_pidfile:
	if (pidfile_fd >= 0)
		pidfile_remove(pidfile_fd, d.cfg.pidfile);
	return ZDEVD_EXIT_FAILURE;
}
