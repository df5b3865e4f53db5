/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_EXCLUSIVE_MAP_H
#define ZDEV_EXCLUSIVE_MAP_H

/*
 * Device-exclusive access (the kernel's make_device_exclusive) on zdevd's
 * side: granting, the device's ATOMIC mirror tags, learning of revocations
 * from the client's map, and device atomics.
 */

#include <stdint.h>

#include "proto.h"

struct zmm;

/* Asks the client to apply one XMAP operation: 0 or -errno; for a GRANT,
 * *done is the bytes granted from the start of the range. */
typedef int (*excl_call_fn)(void *ctx, const struct zmsg_xmap *ask, uint64_t *done);

/* EXCLUSIVE: *cpages = pages of the range exclusive to dev now, counted from
 * the start (on failure too: pages before the failing one stay exclusive).
 * 0, -EOPNOTSUPP at shared or file memory, -EFAULT at a page not mapped
 * writable, or another -errno. dir: where the client keeps its map. */
int excl_make_exclusive(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			uint64_t dir, excl_call_fn call, void *ctx, uint64_t *cpages);

/* CHECK_EXCLUSIVE: -EPERM while dev still holds a page of the range, else 0. */
int excl_check_exclusive(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			 uint64_t dir);

/* ATOMIC_ADD on the 8-byte counter at addr, which becomes exclusive to dev
 * first: *old gets its value before. 0, or -errno as excl_make_exclusive. */
int excl_atomic_add(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t delta,
		    uint64_t dir, excl_call_fn call, void *ctx, uint64_t *old);

/*
 * Before a device access (READ, WRITE: type; MIGRATE_TO_DEV) of the range:
 * returns 1 when it served the access itself (a READ of pages all exclusive
 * to dev: the device reads its atomic mapping), 0 when the access goes on as
 * usual (exclusive pages of the range restored to the CPU first), or -errno.
 */
int excl_before_access(struct zmm *mm, unsigned int dev, int type, uint64_t addr,
		       uint64_t npages, uint64_t buf, excl_call_fn call, void *ctx,
		       uint64_t *cpages, uint64_t *faults);

/* After a SNAPSHOT into the client's buf: exclusive pages read as NONE. 0,
 * or the -errno of reading or writing buf. */
int excl_after_snapshot(struct zmm *mm, uint64_t addr, uint64_t npages, uint64_t buf);

/* mremap moved [from, from + len) to `to` (event loop): exclusive pages,
 * PROT_NONE at their new address, are marked for excl_moved. */
void excl_on_remap(struct zmm *mm, uint64_t from, uint64_t to, uint64_t len);
/* XMOVED: the protection to give back to a moved exclusive page, or -ENOENT. */
int excl_moved(struct zmm *mm, uint64_t addr, unsigned int *prot);

/* Brings the revoke counters of every device up to date (for STATS); best
 * effort. */
void excl_sync_all(struct zmm *mm);

#endif
