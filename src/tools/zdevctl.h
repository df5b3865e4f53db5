/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TOOLS_ZDEVCTL_H
#define ZDEV_TOOLS_ZDEVCTL_H

/* zdevctl: what it asks zdevd, and how it shows the answer. See zdevctl(8). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Raised when a key of the JSON output changes meaning or goes away; new
 * keys may come without it. */
#define ZDEVCTL_JSON_SCHEMA 1

/* What zdevd said, from one connection. */
struct zdevctl_view {
	const char *socket;
	struct zmsg_status_ok st;
	struct zmsg_device_status_ok dev[ZDEV_MAX_DEVICES];
	struct zmsg_client *clients;	/* by pid; NULL when not asked */
	size_t nclients;
};

/* zdevctl-query.c: asks the zdevd listening on path for the daemon's and
 * each device's status and, with clients, every client process: 0, or the
 * -errno of the connect, of the exchange (-ECONNRESET: zdevd hung up), or
 * -EMSGSIZE / -EPROTO / -EBADMSG for an answer zdevctl cannot read (another
 * protocol version). Free with zdevctl_view_free(). */
int zdevctl_query(const char *path, bool clients, struct zdevctl_view *v);
void zdevctl_view_free(struct zdevctl_view *v);
/* Asks the zdevd on path to unplug (or plug) device: 0 with zdevd's answer
 * in *status (0 or -errno) and, for an unplug, the pages that came home in
 * *moved; or the -errno of the exchange, as zdevctl_query(). */
int zdevctl_plug(const char *path, bool unplug, unsigned int device, int *status,
		 uint64_t *moved);

/* zdevctl-text.c and zdevctl-json.c: the two commands, for people and for
 * tools. */
void zdevctl_status_text(const struct zdevctl_view *v);
void zdevctl_stats_text(const struct zdevctl_view *v);
void zdevctl_status_json(const struct zdevctl_view *v);
void zdevctl_stats_json(const struct zdevctl_view *v);

/* A p50 or p99 of the fault latency histogram (lathist.h) lies in a
 * power-of-two bucket [*lo, *hi) ns (*hi UINT64_MAX: no bound above); 0, 0
 * when none was recorded. */
void zdevctl_latency_bucket(uint64_t ns, uint64_t *lo, uint64_t *hi);

#endif
