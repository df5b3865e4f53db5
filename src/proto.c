/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

static const struct {
	const char *name;
	uint16_t size;
} msg_types[ZMSG_TYPE_END] = {
	[ZMSG_HELLO] = { "hello", sizeof(struct zmsg_hello) },
	[ZMSG_HELLO_OK] = { "hello-ok", sizeof(struct zmsg_hello_ok) },
	[ZMSG_UFFD] = { "uffd", sizeof(struct zmsg_req) },
	[ZMSG_OPEN] = { "open", sizeof(struct zmsg_req) },
	[ZMSG_CLOSE] = { "close", sizeof(struct zmsg_req) },
	[ZMSG_MIGRATE_TO_DEV] = { "migrate-to-device", sizeof(struct zmsg_req) },
	[ZMSG_ZAP] = { "zap", sizeof(struct zmsg_zap) },
	[ZMSG_ZAPPED] = { "zapped", sizeof(struct zmsg_zap) },
	[ZMSG_MIGRATE_TO_SYS] = { "migrate-to-system", sizeof(struct zmsg_req) },
	[ZMSG_READ] = { "read", sizeof(struct zmsg_req) },
	[ZMSG_WRITE] = { "write", sizeof(struct zmsg_req) },
	[ZMSG_SNAPSHOT] = { "snapshot", sizeof(struct zmsg_req) },
	[ZMSG_RELEASE] = { "release", sizeof(struct zmsg_req) },
	[ZMSG_SET_FLAGS] = { "set-flags", sizeof(struct zmsg_req) },
	[ZMSG_STATS] = { "stats", sizeof(struct zmsg_req) },
	[ZMSG_STATS_OK] = { "stats-ok", sizeof(struct zmsg_stats_ok) },
	[ZMSG_STATUS] = { "status", sizeof(struct zmsg_req) },
	[ZMSG_STATUS_OK] = { "status-ok", sizeof(struct zmsg_status_ok) },
	[ZMSG_REPLY] = { "reply", sizeof(struct zmsg_reply) },
	[ZMSG_EXCLUSIVE] = { "exclusive", sizeof(struct zmsg_req) },
	[ZMSG_CHECK_EXCLUSIVE] = { "check-exclusive", sizeof(struct zmsg_req) },
	[ZMSG_ATOMIC_ADD] = { "atomic-add", sizeof(struct zmsg_req) },
	[ZMSG_XMAP] = { "xmap", sizeof(struct zmsg_xmap) },
	[ZMSG_XMAP_DONE] = { "xmap-done", sizeof(struct zmsg_xmap) },
	[ZMSG_XMOVED] = { "xmoved", sizeof(struct zmsg_req) },
	[ZMSG_RESCUE] = { "rescue", sizeof(struct zmsg_req) },
	[ZMSG_ANONYMIZE] = { "anonymize", sizeof(struct zmsg_zap) },
	[ZMSG_ANONYMIZED] = { "anonymized", sizeof(struct zmsg_zap) },
	[ZMSG_STORE] = { "store", sizeof(struct zmsg_store) },
	[ZMSG_STORED] = { "stored", sizeof(struct zmsg_store) },
	[ZMSG_EXCLUSIVE_HELD] = { "exclusive-held", sizeof(struct zmsg_req) },
	[ZMSG_FORK_PREPARE] = { "fork-prepare", sizeof(struct zmsg_req) },
	[ZMSG_DEVICE_STATUS] = { "device-status", sizeof(struct zmsg_req) },
	[ZMSG_DEVICE_STATUS_OK] = { "device-status-ok", sizeof(struct zmsg_device_status_ok) },
	[ZMSG_CLIENTS] = { "clients", sizeof(struct zmsg_req) },
	[ZMSG_CLIENTS_OK] = { "clients-ok", sizeof(struct zmsg_clients_ok) },
	[ZMSG_UNPLUG] = { "unplug", sizeof(struct zmsg_req) },
	[ZMSG_PLUG] = { "plug", sizeof(struct zmsg_req) },
};

void zmsg_init(union zmsg *m, enum zmsg_type type, uint64_t seq)
{
	memset(m, 0, msg_types[type].size);
	m->hdr.magic = ZDEV_PROTO_MAGIC;
	m->hdr.type = (uint16_t)type;
	m->hdr.size = msg_types[type].size;
	m->hdr.seq = seq;
}

int zmsg_check(const void *buf, size_t len)
{
	struct zmsg_hdr h;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != ZDEV_PROTO_MAGIC)
		return -EPROTO;
	if (h.type == 0 || h.type >= ZMSG_TYPE_END)
		return -EPROTO;
	if (h.size != len || len != msg_types[h.type].size)
		return -EMSGSIZE;
	return h.type;
}

const char *zmsg_type_name(int type)
{
	if (type <= 0 || type >= ZMSG_TYPE_END)
		return "unknown";
	return msg_types[type].name;
}

int zmsg_send(int sock, const union zmsg *m, int fd)
{
	int ret = zmsg_send_bytes(sock, m, m->hdr.size, fd, 0);

	return ret < 0 ? ret : ret == (int)m->hdr.size ? 0 : -EMSGSIZE;
}

int zmsg_send_bytes(int sock, const void *buf, size_t len, int fd, int flags)
{
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = control;
		mh.msg_controllen = sizeof(control);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

int zmsg_recv(int sock, union zmsg *m, int *fd)
{
	return zmsg_recv_flags(sock, m, fd, 0);
}

int zmsg_recv_flags(int sock, union zmsg *m, int *fd, int flags)
{
	char control[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control, .msg_controllen = sizeof(control),
	};
	struct cmsghdr *c;
	ssize_t n;
	int ret;

	if (fd)
		*fd = -1;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The fds of an empty datagram are received too, and closed below:
	 * it reads as the end of the connection. */
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t nfds;
		int fds[4];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
		for (size_t i = 0; i < nfds; i++) {
			/* One fd is all a message may carry: keep the first. */
			if (fd && *fd < 0)
				*fd = fds[i];
			else
				close(fds[i]);
		}
	}
	if (n == 0)
		ret = -ECONNRESET;
	else if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		ret = -EMSGSIZE;
	else
		ret = zmsg_check(m, (size_t)n);
	/* A bad message's fd is nobody's: the caller sees only the error. */
	if (ret < 0 && fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	return ret;
}

int proto_default_socket(char *buf, size_t len)
{
	const char *env = getenv("ZDEV_SOCKET");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		n = snprintf(buf, len, "%s/zdev/zdevd.sock", env);
	else
		n = snprintf(buf, len, "/run/zdev/zdevd.sock");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int zmsg_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

int zmsg_ask(int sock, enum zmsg_type type, enum zmsg_type answer, uint32_t device, uint64_t arg,
	     uint64_t seq, union zmsg *m)
{
	int ret;

	zmsg_init(m, type, seq);
	m->req.device = device;
	m->req.arg = arg;
	ret = zmsg_send(sock, m, -1);
	if (!ret)
		ret = zmsg_recv(sock, m, NULL);
	if (ret < 0)
		return ret;
	if (ret != (int)answer || m->hdr.seq != seq)
		return -EPROTO;
	return 0;
}
