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
#include "zdevd/detach.h"
#include "zdevd/options.h"
#include "zdevd/pidfile.h"
#include "zdevd/session.h"

static int make_parent_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int open_socket(struct zdevd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->cfg.socket_path);
	ret = make_parent_dir(sa.sun_path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file nobody listens on is a leftover of a dead zdevd. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	unlink(sa.sun_path);
	/* 0600 from the start: no window where another user could connect. */
	mode_t old = umask(0177);

	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (!ret && listen(fd, 128))
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	d->listen_fd = fd;
	return 0;
}

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
		log_info("no /dev/userfaultfd: clients without CAP_SYS_PTRACE get user-mode-only "
			 "uffds, and system calls on their device pages fail with EFAULT");
}

/* Tells whoever started zdevd that its socket accepts connections and the
 * loop is about to serve them: a newline on the ready descriptor, which is
 * then closed. A starter that reads EOF instead knows zdevd exited first. */
static void notify_ready(struct zdevd *d)
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
	if (!d.cfg.foreground && detach_start())
		return ZDEVD_EXIT_FAILURE;
	if (d.cfg.pidfile[0]) {
		pidfile_fd = pidfile_claim(d.cfg.pidfile);
		if (pidfile_fd < 0)
			return ZDEVD_EXIT_FAILURE;
	}
	pthread_mutex_init(&d.mms_lock, NULL);
	pthread_mutex_init(&d.sessions_lock, NULL);
	pthread_cond_init(&d.sessions_gone, NULL);
	pthread_cond_init(&d.work, NULL);
	probe_uffd(&d);
	if (devset_init(&d.devs, &d.cfg.devs))
		goto out_remove_pidfile;
	ret = open_socket(&d);
	if (ret) {
		fprintf(stderr, "zdevd: %s: %s\n", d.cfg.socket_path,
			ret == -EADDRINUSE ? "a zdevd already serves on it" : strerror(-ret));
		goto out_fini_devs;
	}
	ret = loop_create(&d);
	if (ret) {
		fprintf(stderr, "zdevd: event loop: %s\n", strerror(-ret));
		goto out_close_socket;
	}
	if (go_live(&d, pidfile_fd))
		goto out_destroy_loop;
	log_info("serving %u devices of %zu MiB on %s", d.cfg.devs.ndevices, d.cfg.devs.memory >> 20,
		  d.cfg.socket_path);
	notify_ready(&d);
	ret = loop_run(&d);
	/* Shutdown: no new clients, no request in flight, every page back
	 * with its owner, then the loop's own references, then the pools. */
	close(d.listen_fd);
	unlink(d.cfg.socket_path);
	workers_stop_all(&d);
	clients_evict_all(&d);
	clients_drop_unclaimed(&d);
	loop_destroy(&d);
	if (devset_fini(&d.devs))
		ret = -EBUSY;
	if (pidfile_fd >= 0)
		pidfile_remove(pidfile_fd, d.cfg.pidfile);
	return ret ? ZDEVD_EXIT_FAILURE : 0;

out_destroy_loop:
	loop_destroy(&d);
out_close_socket:
	close(d.listen_fd);
	unlink(d.cfg.socket_path);
out_fini_devs:
	devset_fini(&d.devs);
out_remove_pidfile:
	if (pidfile_fd >= 0)
		pidfile_remove(pidfile_fd, d.cfg.pidfile);
	return ZDEVD_EXIT_FAILURE;
}
