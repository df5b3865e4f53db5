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

/* --group's argument, a group name or number: 0, or -EINVAL with a message
 * on stderr. */
int peer_parse_group(const char *s, gid_t *out);

/* Whether the process at the other end of sock, whose credentials are cred
 * (SO_PEERCRED), may be served; a refusal is logged. */
bool peer_admitted(const struct zdevd *d, int sock, const struct ucred *cred);

/* With --group, warns at start when zdevd lacks a capability that serving
 * another user's processes takes. */
void peer_check_capabilities(const struct zdevd *d);

#endif
