/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_RESCUE_H
#define ZDEV_ZDEVD_RESCUE_H

/*
 * zdevd's side of crash survival (rescue_layout.h): every process's stores
 * and rescue table, and the pool hooks that put a store's memory under the
 * blocks its owner's pages occupy.
 */

#include <stdint.h>

#include "refpool.h"

struct zmm;
struct zdev_device;

/* One process's store on one device: its pages' memory, a pool owner. */
struct zstore {
	int fd;
	uint64_t id;
	struct refpool_owner *owner;
	/* the mm's claim and each allocation's in flight; the last drops the
	 * owner's creator reference (the owner lasts while it holds blocks) */
	_Atomic int refs;
};

/* The per-device part: which store is mapped under each block. */
int rescue_device_init(struct zdev_device *dev, uint64_t dev_pages);
void rescue_device_fini(struct zdev_device *dev);

/* The pool hooks (refpool_ops). */
int rescue_adopt_block(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg);
void rescue_owner_gone(struct refpool *pool, void *owner_arg, void *arg);

/* The process's rescue table, made with the mm. */
int rescue_table_create(struct zmm *mm);
void rescue_table_destroy(struct zmm *mm);

/* The process's store on dev, with a reference: 0, or 1 if it was made now
 * (the client has to be given it before any page goes there), or -errno.
 * Caller holds mm->lock. */
int rescue_store_get_locked(struct zmm *mm, unsigned int dev, struct zstore **out);
void rescue_store_put(struct zstore *store);
/* Drops the process's claim on its stores (they last while their pages do):
 * at its end, and at a fork, after which the child holds them (its shared
 * pages are there) and the process's later pages go to new ones the child
 * never sees. */
void rescue_stores_put(struct zmm *mm);

/* The process maps device page pfn of dev at vpn now (its data is in the
 * store already), or no longer. */
void rescue_note(struct zmm *mm, unsigned int dev, uint32_t pfn, uint64_t vpn);
void rescue_forget(struct zmm *mm, unsigned int dev, uint32_t pfn);

#endif
