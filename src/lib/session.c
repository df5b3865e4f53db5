/* SPDX-License-Identifier: MIT */
/*
 * Device handles on the process's connection, and the new session a call
 * starts after zdevd was lost (session.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "lib/client.h"
#include "lib/moved.h"
#include "lib/rescue.h"
#include "lib/session.h"
#include "lib/xmap.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void link_handle(struct client *c, struct session_handle *h)
{
	h->prev = NULL;
	h->next = c->handles;
	if (c->handles)
		c->handles->prev = h;
	c->handles = h;
	h->listed = true;
}

static void unlink_handle(struct client *c, struct session_handle *h)
{
	if (!h->listed)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else
		c->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->listed = false;
}

/* OPEN of h in c's session (caller holds c->lock): 0 or -errno, -ENOTCONN
 * as client_call says it. */
static int open_in_session(struct client *c, struct session_handle *h)
{
	union zmsg req, rep;
	int ret;

	/* A zdevd started with fewer devices than the last. */
	if (h->device >= c->ndevices)
		return -ENODEV;
	zmsg_init(&req, ZMSG_OPEN, 0);
	req.req.device = h->device;
	ret = client_call(c, &req, &rep, -1);
	if (ret < 0)
		return ret;
	if (ret != ZMSG_REPLY)
		return -EPROTO;
	if (rep.reply.status)
		return rep.reply.status;
	h->session = c->session;
	if (!h->listed)
		link_handle(c, h);
	return 0;
}

/*
 * A new session in place of the one that is over (caller holds c->lock): 0,
 * or -ENODEV. Every page the last one had on a device is home first (the
 * rescue), or the new zdevd would register ranges our old uffd still holds,
 * and find pages missing that only the old stores had.
 */
static int renew(struct client *c)
{
	int ret;

	if (now_ns() < c->next_try_ns)
		return -ENODEV;
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
	c->broken = true;
	ret = rescue_settle(RESCUE_SETTLE_MS);
	if (!ret)
		ret = client_connect(c, false);
	if (ret) {
		c->next_try_ns = now_ns() + SESSION_RETRY_MS * 1000000ull;
		return -ENODEV;
	}
	c->next_try_ns = 0;
	/* The old zdevd's exclusive access ended with it, as a device's does
	 * when its driver goes: the CPU gets every page back now, so that
	 * the new zdevd never meets a hold it did not grant. Nothing can be
	 * granted or pinned meanwhile: that takes c->lock. */
	xmap_revoke_all();
	/* The line the SIGSEGV handler asks on was the old zdevd's. Without
	 * one (a failure here), only exclusive pages that mremap moves would
	 * not revoke, until the next exclusive request opens it. */
	if (moved_close())
		moved_open(c->path);
	/* A handle whose OPEN fails here tries again at its next call. */
	for (struct session_handle *h = c->handles; h && !c->broken; h = h->next)
		open_in_session(c, h);
	return c->broken ? -ENODEV : 0;
}

int session_lock(struct client *c, struct session_handle *h)
{
	int ret = 0;

	/* Checked before the lock, which a thread of the parent may have
	 * held at the fork. */
	if (c->pid != getpid())
		return -EBADF;
	pthread_mutex_lock(&c->lock);
	/* A broken connection found by this very call (-ENOTCONN: zdevd
	 * never saw the OPEN) gets one new session at once. */
	for (int tries = 0; tries < 2; tries++) {
		ret = 0;
		if (c->broken || rescue_daemon_lost())
			ret = renew(c);
		if (!ret && h && h->session != c->session)
			ret = open_in_session(c, h);
		if (ret != -ENOTCONN)
			break;
	}
	if (ret) {
		pthread_mutex_unlock(&c->lock);
		return ret == -ENOTCONN ? -ENODEV : ret;
	}
	return 0;
}

void session_unlock(struct client *c)
{
	pthread_mutex_unlock(&c->lock);
}

int session_call(struct client *c, struct session_handle *h, union zmsg *req, union zmsg *rep)
{
	int ret;

	for (int tries = 0; tries < 2; tries++) {
		ret = session_lock(c, h);
		if (ret)
			return ret;
		ret = client_call(c, req, rep, -1);
		session_unlock(c);
		/* zdevd never saw it: the new session's may. */
		if (ret != -ENOTCONN)
			return ret;
	}
	return -ENODEV;
}

int session_close(struct client *c, struct session_handle *h)
{
	union zmsg req, rep;
	int ret = 0;

	if (c->pid != getpid())
		return -EBADF;
	pthread_mutex_lock(&c->lock);
	if (!c->broken && !rescue_daemon_lost() && h->session == c->session) {
		zmsg_init(&req, ZMSG_CLOSE, 0);
		req.req.device = h->device;
		ret = client_call(c, &req, &rep, -1);
		if (ret >= 0)
			ret = ret == ZMSG_REPLY ? rep.reply.status : -EPROTO;
		/* Without zdevd the rescue brings the pages home. */
		if (ret == -ENODEV || ret == -ENOTCONN)
			ret = 0;
	}
	unlink_handle(c, h);
	pthread_mutex_unlock(&c->lock);
	return ret;
}
