/* SPDX-License-Identifier: MIT */
/* zdevd's listening socket: passed by systemd, or created here. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "zdevd/listen.h"

/* The socket's directory, if missing: 0700, or with --group 0750 and of the
 * group, so that its members can reach the socket. An existing directory is
 * left as it is. */
static int make_parent_dir(const struct zdevd *d, const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, d->cfg.have_group ? 0750 : 0700))
		return errno == EEXIST ? 0 : -errno;
	/* Created 0750 under our own group: the group's members come in only
	 * once it is theirs. */
	if (d->cfg.have_group && chown(dir, (uid_t)-1, d->cfg.group))
		return -errno;
	return 0;
}

/*
 * --group: the socket file becomes the group's, then 0660. In this order
 * the file is never open to anyone but zdevd's user and the group: 0600
 * from bind() on, then the group's while still 0600, and only then open to
 * the group. Neither call follows a symbolic link put in its place.
 */
static int open_to_group(const struct zdevd *d, const char *path)
{
	if (fchownat(AT_FDCWD, path, (uid_t)-1, d->cfg.group, AT_SYMLINK_NOFOLLOW))
		return -errno;
	if (fchmodat(AT_FDCWD, path, 0660, AT_SYMLINK_NOFOLLOW))
		return -errno;
	return 0;
}

static int create_socket(struct zdevd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_umask;
	int fd, ret;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->cfg.socket_path);
	ret = make_parent_dir(d, sa.sun_path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file nobody listens on is a leftover of a dead zdevd. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		ret = -EADDRINUSE;
		goto out_close;
	}
	unlink(sa.sun_path);
	/* 0600 from the start: no window where another user could connect. */
	old_umask = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old_umask);
	if (ret)
		goto out_close;
	if (d->cfg.have_group) {
		ret = open_to_group(d, sa.sun_path);
		if (ret)
			goto out_unlink;
	}
	if (listen(fd, 128)) {
		ret = -errno;
		goto out_unlink;
	}
	d->listen_fd = fd;
	d->listen_created = true;
	return 0;

out_unlink:
	unlink(sa.sun_path);
out_close:
	close(fd);
	return ret;
}

/* The path of a passed socket, for the log and zdevd's status. */
static void name_passed_socket(struct zdevd *d, int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) || len <= offsetof(struct sockaddr_un, sun_path))
		return;
	/* An abstract or unnamed socket has no path to show. */
	if (sa.sun_path[0] == '\0') {
		snprintf(d->cfg.socket_path, sizeof(d->cfg.socket_path), "(passed socket)");
		return;
	}
	snprintf(d->cfg.socket_path, sizeof(d->cfg.socket_path), "%.*s",
		 (int)(len - offsetof(struct sockaddr_un, sun_path)), sa.sun_path);
}

/*
 * Socket activation: systemd (or systemd-socket-activate) created and bound
 * the socket, set its owner and mode, and started zdevd with it, so zdevd
 * neither creates nor removes it.
 */
int listen_take_passed(struct zdevd *d)
{
	/* Unsets LISTEN_FDS and LISTEN_PID: they are for zdevd alone. */
	int n = sd_listen_fds(1), fd = SD_LISTEN_FDS_START, flags, ret;

	if (n < 0) {
		fprintf(stderr, "zdevd: LISTEN_FDS: %s\n", strerror(-n));
		return n;
	}
	if (n == 0)
		return 0;
	if (n > 1) {
		fprintf(stderr, "zdevd: %d sockets passed, one expected\n", n);
		return -EINVAL;
	}
	ret = sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0);
	if (ret <= 0) {
		fprintf(stderr, "zdevd: the passed socket is not a listening AF_UNIX SOCK_SEQPACKET socket\n");
		return ret < 0 ? ret : -ENOTSOCK;
	}
	/* The loop accepts until EAGAIN: a blocking socket would hang it. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC)) {
		ret = -errno;
		fprintf(stderr, "zdevd: the passed socket: %s\n", strerror(-ret));
		return ret;
	}
	name_passed_socket(d, fd);
	d->listen_fd = fd;
	d->listen_created = false;
	return 1;
}

int listen_open(struct zdevd *d)
{
	int ret;

	if (d->listen_fd >= 0)
		return 0;
	ret = create_socket(d);
	if (ret)
		fprintf(stderr, "zdevd: %s: %s\n", d->cfg.socket_path,
			ret == -EADDRINUSE ? "a zdevd already serves on it" : strerror(-ret));
	return ret;
}

void listen_close(struct zdevd *d)
{
	if (d->listen_fd < 0)
		return;
	close(d->listen_fd);
	d->listen_fd = -1;
	if (d->listen_created)
		unlink(d->cfg.socket_path);
}
