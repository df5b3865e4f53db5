/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_STORE_H
#define ZDEV_STORE_H

/*
 * zdevd's side of crash survival (rescue_layout.h): every process's stores
 * and rescue table, and the pool hooks that put a store's memory under the
 * blocks its owner's pages occupy.
 */

#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "refpool.h"

struct rescue_entry;

/* One process's store on one device: its pages' memory, a pool owner. */
struct store {
	int fd;
	uint64_t id;
	struct refpool_owner *owner;
	/* the mm's claim and each allocation's in flight; the last drops the
	 * owner's creator reference (the owner lasts while it holds blocks) */
	_Atomic int refs;
};

/* One process's stores, one for each device it has pages on, and its rescue
 * table; part of its zmm, whose lock guards the stores. */
struct stores {
	struct devset *ds;
	struct store *store[ZDEV_MAX_DEVICES];
	int table_fd;
	struct rescue_entry *table;
	size_t table_len;
};

/* The per-device part: which store is mapped under each block. 0 or
 * -ENOMEM. */
int store_device_init(struct device *dev, uint64_t dev_pages);
void store_device_fini(struct device *dev);

/* Whether some page of the block starting at first_pfn may still have no
 * memory in the store mapped under it; a hint: a page without memory only
 * costs a fault when it is first written. */
bool store_block_unfilled(struct device *dev, uint32_t first_pfn);
/* Every page of that block has its memory now. */
void store_block_filled(struct device *dev, uint32_t first_pfn);

/* A store of its own for a process on dev, not yet any process's, with one
 * reference: 0, or -errno. */
int store_create(struct devset *ds, unsigned int dev, struct store **out);

/* Maps store's memory under the free block at first_pfn, the stale memory
 * of its last store punched out: 0 or the -errno of the mmap. Caller holds
 * dev->warm_lock. */
int store_map_block_locked(struct device *dev, struct store *store, uint32_t first_pfn);

/* The device's warm store (warm.c made it) for a new process, with one
 * reference, or NULL: the blocks warmed for it are the process's from now
 * on. */
struct store *store_take_warm(struct device *dev);

/* The pool hooks (refpool_ops): adopt_block maps the owner's store under
 * the block, 0 or the -errno of the mmap. */
int store_adopt_block(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg);
/* The pool's prefers_block: a free block whose mapping is the store's
 * already (its memory is there, warm or from its own earlier pages). */
bool store_prefers_block(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg);
void store_owner_gone(struct refpool *pool, void *owner_arg, void *arg);

/* The process's rescue table, made with its zmm, sized for every device
 * of ds: 0 or -errno. ss->table_fd must be -1 before. */
int store_table_create(struct stores *ss, struct devset *ds);
void store_table_destroy(struct stores *ss);

/* The process's store on dev, with a reference: 0, or 1 if it was made now
 * (the client has to be given it before any page goes there), or -errno.
 * Caller holds mm->lock. */
int store_get_locked(struct stores *ss, unsigned int dev, struct store **out);
void store_put(struct store *store);
/* A new store the client could not be given is not filled: the process's
 * claim on it goes, if it is still dev's store. Caller holds mm->lock. */
void store_drop_locked(struct stores *ss, unsigned int dev, struct store *store);
/* Drops the process's claim on its stores (they last while their pages do):
 * at its end, and at a fork, after which the child holds them (its shared
 * pages are there) and the process's later pages go to new ones the child
 * never sees. */
void store_put_all(struct stores *ss);

/* The process maps device page pfn of dev at vpn now (its data is in the
 * store already), or no longer. */
void store_note(struct stores *ss, unsigned int dev, uint32_t pfn, uint64_t vpn);
void store_forget(struct stores *ss, unsigned int dev, uint32_t pfn);

#endif
