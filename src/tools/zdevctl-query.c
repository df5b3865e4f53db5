/* SPDX-License-Identifier: MIT */
/* zdevctl: the questions to zdevd, on one connection without a HELLO. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/zdevctl.h"

static int ask_clients(int fd, uint64_t *seq, struct zdevctl_view *v)
{
	size_t cap = 0;
	union zmsg m;
	pid_t after = 0;
	int ret;

	do {
		struct zmsg_client *grown;

		ret = zmsg_ask(fd, ZMSG_CLIENTS, ZMSG_CLIENTS_OK, 0, (uint64_t)after, ++*seq, &m);
		if (!ret)
			ret = m.clients_ok.status;
		if (!ret && m.clients_ok.count > ZMSG_CLIENTS_PER_PAGE)
			ret = -EBADMSG;
		if (ret)
			return ret;
		if (v->nclients + m.clients_ok.count > cap) {
			cap = 2 * cap + ZMSG_CLIENTS_PER_PAGE;
			grown = realloc(v->clients, cap * sizeof(*grown));
			if (!grown)
				return -ENOMEM;
			v->clients = grown;
		}
		for (uint32_t i = 0; i < m.clients_ok.count; i++) {
			struct zmsg_client *c = &m.clients_ok.client[i];

			/* Pages come in pid order: a pid out of order would
			 * have the next page start where it started. */
			if (c->pid <= after)
				return -EBADMSG;
			c->comm[sizeof(c->comm) - 1] = '\0';
			v->clients[v->nclients++] = *c;
			after = c->pid;
		}
	} while (m.clients_ok.more && m.clients_ok.count);
	return 0;
}

int zdevctl_query(const char *path, bool clients, struct zdevctl_view *v)
{
	uint64_t seq = 1;
	union zmsg m;
	int fd, ret;

	memset(v, 0, sizeof(*v));
	v->socket = path;
	fd = zmsg_connect(path);
	if (fd < 0)
		return fd;
	ret = zmsg_ask(fd, ZMSG_STATUS, ZMSG_STATUS_OK, 0, 0, seq, &m);
	if (!ret)
		ret = m.status_ok.status;
	if (!ret && m.status_ok.ndevices > ZDEV_MAX_DEVICES)
		ret = -EBADMSG;
	if (ret)
		goto out_close;
	v->st = m.status_ok;
	for (uint32_t i = 0; i < v->st.ndevices && !ret; i++) {
		ret = zmsg_ask(fd, ZMSG_DEVICE_STATUS, ZMSG_DEVICE_STATUS_OK, i, 0, ++seq, &m);
		if (!ret)
			ret = m.device_status_ok.status;
		if (!ret)
			v->dev[i] = m.device_status_ok;
	}
	if (!ret && clients)
		ret = ask_clients(fd, &seq, v);
	if (ret)
		zdevctl_view_free(v);
out_close:
	close(fd);
	return ret;
}

int zdevctl_plug(const char *path, bool unplug, unsigned int device, int *status,
		 uint64_t *moved)
{
	union zmsg m;
	int fd, ret;

	fd = zmsg_connect(path);
	if (fd < 0)
		return fd;
	ret = zmsg_ask(fd, unplug ? ZMSG_UNPLUG : ZMSG_PLUG, ZMSG_REPLY, device, 0, 1, &m);
	close(fd);
	if (ret)
		return ret;
	*status = m.reply.status;
	*moved = m.reply.cpages;
	return 0;
}

void zdevctl_view_free(struct zdevctl_view *v)
{
	free(v->clients);
	v->clients = NULL;
	v->nclients = 0;
}

void zdevctl_latency_bucket(uint64_t ns, uint64_t *lo, uint64_t *hi)
{
	*lo = *hi = 0;
	if (!ns)
		return;
	/* lathist_percentile() gives the middle of bucket [2^i, 2^(i+1)),
	 * or the largest latency seen when that is lower: in the same
	 * bucket either way. */
	*lo = 1ull << (63 - __builtin_clzll(ns));
	/* The last bucket also holds everything above it. */
	*hi = *lo >= 1ull << (LATHIST_BUCKETS - 1) ? UINT64_MAX : *lo << 1;
}
