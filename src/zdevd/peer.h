/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_PEER_H
#define ZDEV_ZDEVD_PEER_H

/*
 * Who may use zdevd: processes of zdevd's own user; with --group, also
 * root's and those of the group's members, by their primary or a
 * supplementary group.
 */

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "zdevd/zdevd.h"

/* The group called name, from the group database: 0, -ENOENT when there is
 * none, or another -errno. */
int peer_group_by_name(const char *name, gid_t *out);

/* Whether the process at the other end of sock, whose credentials are cred
 * (SO_PEERCRED), may be served; a refusal is logged. */
bool peer_admitted(const struct zdevd *d, int sock, const struct ucred *cred);

/* With --group, warns at start when zdevd lacks a capability that serving
 * another user's processes takes. */
void peer_check_capabilities(const struct zdevd *d);

#endif
