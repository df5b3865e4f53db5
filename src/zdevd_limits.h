/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_LIMITS_H
#define ZDEV_ZDEVD_LIMITS_H

/* What zdevd's options accept, and their defaults; zdev-run checks the
 * options it passes on by the same rules. zdevd(8) lists them. */

#include "proto.h"
#include "units.h"

/* Device memory comes in whole PMDs, so that the device can hold THPs. */
#define ZDEVD_BLOCK (2 * UNITS_MIB)
/* The pool numbers a device's pages in 32 bits; 2^31 pages is 8 TiB. */
#define ZDEVD_MEMORY_MAX (8 * UNITS_TIB)

#define ZDEVD_DEVICES_DEFAULT 2
#define ZDEVD_MEMORY_DEFAULT UNITS_GIB
#define ZDEVD_CHUNK_DEFAULT (256 * UNITS_MIB)
#define ZDEVD_CLIENT_REGISTERED_DEFAULT UNITS_TIB
#define ZDEVD_CLIENT_HANDLES_DEFAULT 256
#define ZDEVD_CLIENT_HANDLES_MAX (1u << 20)
/* Replies a client may leave unread before zdevd stops reading its
 * requests. libzdev leaves at most one; the most stays within what a
 * connection's socket holds by default (net.core.wmem_default), so that
 * zdevd never waits for room to send a reply. */
#define ZDEVD_CLIENT_PENDING_DEFAULT 64
#define ZDEVD_CLIENT_PENDING_MAX 256

#define ZDEVD_MEMORY_RULE \
	{ .min = ZDEVD_BLOCK, .max = ZDEVD_MEMORY_MAX, .multiple = ZDEVD_BLOCK }
/* --chunk: at most --memory too, which options.c checks once both are known */
#define ZDEVD_CHUNK_RULE ZDEVD_MEMORY_RULE
/* a client's device memory is counted in pages; 0: no limit of its own */
#define ZDEVD_CLIENT_MEMORY_RULE \
	{ .min = 4 * UNITS_KIB, .max = ZDEVD_MEMORY_MAX, .multiple = 4 * UNITS_KIB, .zero_ok = true }
/* --warm: whole blocks; 0: none. Its default is each device's memory. */
#define ZDEVD_WARM_RULE \
	{ .min = ZDEVD_BLOCK, .max = ZDEVD_MEMORY_MAX, .multiple = ZDEVD_BLOCK, .zero_ok = true }
#define ZDEVD_WARM_ALL ((size_t)ZDEVD_MEMORY_MAX)
/* registered bytes: any number; 0: no limit */
#define ZDEVD_CLIENT_REGISTERED_RULE { .min = 1, .zero_ok = true }

#endif
