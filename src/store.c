/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lathist.h"
#include "log.h"
#include "numa_place.h"
#include "page.h"
#include "rescue_layout.h"
#include "store.h"

#define BLOCK_BYTES ((size_t)REFPOOL_BLOCK_PAGES * PG_SIZE)

int store_device_init(struct device *dev, uint64_t dev_pages)
{
	dev->dev_pages = dev_pages;
	dev->nblocks = dev_pages / REFPOOL_BLOCK_PAGES;
	dev->block_store = calloc(dev->nblocks, sizeof(*dev->block_store));
	if (!dev->block_store)
		return -ENOMEM;
	dev->block_unfilled = calloc(dev->nblocks, sizeof(*dev->block_unfilled));
	if (!dev->block_unfilled) {
		free(dev->block_store);
		dev->block_store = NULL;
		return -ENOMEM;
	}
	pthread_mutex_init(&dev->warm_lock, NULL);
	dev->warm_store = NULL;
	atomic_init(&dev->warm_blocks, 0);
	atomic_init(&dev->last_busy_ns, 0);
	atomic_init(&dev->migrating, 0);
	return 0;
}

void store_device_fini(struct device *dev)
{
	if (!dev->block_store)
		return;
	pthread_mutex_destroy(&dev->warm_lock);
	free(dev->block_unfilled);
	dev->block_unfilled = NULL;
	free(dev->block_store);
	dev->block_store = NULL;
}

/* Relaxed: the flag only decides whether a populate call is worth making;
 * the pages of a block are allocated, hence adopted, before any copy into
 * them starts, and a populated page stays so while the block is its
 * store's. */
bool store_block_unfilled(struct device *dev, uint32_t first_pfn)
{
	return atomic_load_explicit(&dev->block_unfilled[first_pfn / REFPOOL_BLOCK_PAGES],
				    memory_order_relaxed);
}

void store_block_filled(struct device *dev, uint32_t first_pfn)
{
	atomic_store_explicit(&dev->block_unfilled[first_pfn / REFPOOL_BLOCK_PAGES], false,
			      memory_order_relaxed);
}

/*
 * Puts store's memory at the block's own offset under the free block at
 * first_pfn. What was there (a former owner's stale pages, or the chunk's own
 * memory) is punched out first: MADV_REMOVE on a shared mapping frees it in
 * the file it came from, and the former owner, who may still hold that file,
 * finds zeros there, never another's data. Caller holds dev->warm_lock.
 */
int store_map_block_locked(struct device *dev, struct store *store, uint32_t first_pfn)
{
	_Atomic uint64_t *slot = &dev->block_store[first_pfn / REFPOOL_BLOCK_PAGES];
	void *addr = refpool_page_mem(dev->pool, refpool_pfn_to_page(dev->pool, first_pfn));
	int ret;

	/* A block of the warm store counts as warm once it is filled
	 * (warm.c); one still being filled was not counted yet. */
	if (dev->warm_store &&
	    atomic_load_explicit(slot, memory_order_relaxed) == dev->warm_store->id &&
	    !store_block_unfilled(dev, first_pfn))
		atomic_fetch_sub_explicit(&dev->warm_blocks, 1, memory_order_relaxed);
	madvise(addr, BLOCK_BYTES, MADV_REMOVE);
	if (mmap(addr, BLOCK_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, store->fd,
		 (off_t)first_pfn * (off_t)PG_SIZE) == MAP_FAILED) {
		ret = -errno;
		/* MAP_FIXED may have taken the old mapping down already:
		 * nothing known is under the block now. */
		atomic_store_explicit(slot, 0, memory_order_relaxed);
		log_err("device %u: cannot map a store under block %u: %s", dev->index,
			 first_pfn / REFPOOL_BLOCK_PAGES, strerror(-ret));
		return ret;
	}
	/* shmem keeps its policy per file range: bind the store's range, as
	 * the chunk's own memory was. */
	numa_place_bind(addr, BLOCK_BYTES, dev->node);
	atomic_store_explicit(&dev->block_unfilled[first_pfn / REFPOOL_BLOCK_PAGES], true,
			      memory_order_relaxed);
	atomic_store_explicit(slot, store->id, memory_order_relaxed);
	return 0;
}

/* A free block becomes the store's. One whose mapping is the store's
 * already (it last held the store's pages, or was warmed for it) keeps it. */
int store_adopt_block(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg)
{
	struct device *dev = arg;
	struct store *store = owner_arg;
	int ret = 0;

	(void)pool;
	atomic_store_explicit(&dev->last_busy_ns, lathist_now_ns(), memory_order_relaxed);
	pthread_mutex_lock(&dev->warm_lock);
	if (atomic_load_explicit(&dev->block_store[first_pfn / REFPOOL_BLOCK_PAGES],
				 memory_order_relaxed) != store->id)
		ret = store_map_block_locked(dev, store, first_pfn);
	pthread_mutex_unlock(&dev->warm_lock);
	return ret;
}

bool store_prefers_block(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg)
{
	const struct device *dev = arg;
	const struct store *store = owner_arg;

	(void)pool;
	/* relaxed: a hint; adoption checks the slot again under warm_lock. */
	return atomic_load_explicit(&dev->block_store[first_pfn / REFPOOL_BLOCK_PAGES],
				    memory_order_relaxed) == store->id;
}

static void store_changed(struct device *dev)
{
	void (*changed)(struct device *) =
		atomic_load_explicit(&dev->ds->store_changed, memory_order_acquire);

	if (changed)
		changed(dev);
}

struct store *store_take_warm(struct device *dev)
{
	struct store *store;

	pthread_mutex_lock(&dev->warm_lock);
	store = dev->warm_store;
	dev->warm_store = NULL;
	atomic_store_explicit(&dev->warm_blocks, 0, memory_order_relaxed);
	pthread_mutex_unlock(&dev->warm_lock);
	if (store)
		store_changed(dev);
	return store;
}

void store_owner_gone(struct refpool *pool, void *owner_arg, void *arg)
{
	struct device *dev = arg;
	struct store *store = owner_arg;

	(void)pool;
	/* Blocks it was last mapped under keep the file alive until another
	 * store takes them; they are no living store's any more, which lets
	 * warm.c take them. */
	pthread_mutex_lock(&dev->warm_lock);
	for (uint64_t b = 0; b < dev->nblocks; b++)
		if (atomic_load_explicit(&dev->block_store[b], memory_order_relaxed) == store->id)
			atomic_store_explicit(&dev->block_store[b], 0, memory_order_relaxed);
	pthread_mutex_unlock(&dev->warm_lock);
	close(store->fd);
	free(store);
	store_changed(dev);
}

int store_table_create(struct stores *ss, struct devset *ds)
{
	size_t len = (size_t)ds->ndevices * ds->dev[0].dev_pages * sizeof(struct rescue_entry);
	void *p;
	int fd, ret;

	fd = memfd_create("zdev-rescue", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Sparse: only the pages of entries ever written take memory. */
	if (ftruncate(fd, (off_t)len)) {
		ret = -errno;
		goto err_close_fd;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		goto err_close_fd;
	}
	ss->ds = ds;
	ss->table_fd = fd;
	ss->table = p;
	ss->table_len = len;
	return 0;

err_close_fd:
	close(fd);
	return ret;
}

void store_table_destroy(struct stores *ss)
{
	if (ss->table)
		munmap(ss->table, ss->table_len);
	if (ss->table_fd >= 0)
		close(ss->table_fd);
	ss->table = NULL;
	ss->table_fd = -1;
}

int store_create(struct devset *ds, unsigned int dev, struct store **out)
{
	struct device *device = &ds->dev[dev];
	struct store *store;
	char name[32];
	int ret;

	store = calloc(1, sizeof(*store));
	if (!store)
		return -ENOMEM;
	snprintf(name, sizeof(name), "zdev-store-dev%u", dev);
	store->fd = memfd_create(name, MFD_CLOEXEC);
	if (store->fd < 0) {
		ret = -errno;
		goto err_free_store;
	}
	if (ftruncate(store->fd, (off_t)(device->dev_pages * PG_SIZE))) {
		ret = -errno;
		goto err_close_fd;
	}
	store->id = atomic_fetch_add_explicit(&ds->next_store_id, 1, memory_order_relaxed) + 1;
	ret = refpool_owner_create(device->pool, store, &store->owner);
	if (ret)
		goto err_close_fd;
	atomic_init(&store->refs, 1);
	*out = store;
	return 0;

err_close_fd:
	close(store->fd);
err_free_store:
	free(store);
	return ret;
}

int store_get_locked(struct stores *ss, unsigned int dev, struct store **out)
{
	struct store *store = ss->store[dev];
	int ret;

	if (store) {
		atomic_fetch_add_explicit(&store->refs, 1, memory_order_relaxed);
		*out = store;
		return 0;
	}
	/* A new store, the warm one if there is one: the caller hands it to
	 * the client first. */
	store = store_take_warm(&ss->ds->dev[dev]);
	if (!store) {
		ret = store_create(ss->ds, dev, &store);
		if (ret)
			return ret;
	}
	atomic_fetch_add_explicit(&store->refs, 1, memory_order_relaxed);	/* the caller's */
	ss->store[dev] = store;
	*out = store;
	return 1;
}

void store_put(struct store *store)
{
	/* The owner frees the store once its last block is released. */
	if (atomic_fetch_sub_explicit(&store->refs, 1, memory_order_acq_rel) == 1)
		refpool_owner_put(store->owner);
}

void store_drop_locked(struct stores *ss, unsigned int dev, struct store *store)
{
	if (ss->store[dev] != store)
		return;
	ss->store[dev] = NULL;
	store_put(store);
}

void store_put_all(struct stores *ss)
{
	for (unsigned int i = 0; i < ZDEV_MAX_DEVICES; i++) {
		if (!ss->store[i])
			continue;
		store_put(ss->store[i]);
		ss->store[i] = NULL;
	}
}

static struct rescue_entry *entry_of(struct stores *ss, unsigned int dev, uint32_t pfn)
{
	return &ss->table[(uint64_t)dev * ss->ds->dev[dev].dev_pages + pfn];
}

void store_note(struct stores *ss, unsigned int dev, uint32_t pfn, uint64_t vpn)
{
	struct device *device = &ss->ds->dev[dev];
	struct rescue_entry *e;

	if (!ss->table)
		return;
	e = entry_of(ss, dev, pfn);
	e->store = atomic_load_explicit(&device->block_store[pfn / REFPOOL_BLOCK_PAGES],
					memory_order_relaxed);
	/* release: a reader that sees the address sees its store too, even
	 * a libzdev reading the table after zdevd died between the two. */
	atomic_store_explicit(&e->vaddr, (vpn << PG_SHIFT) | RESCUE_VALID,
			      memory_order_release);
}

void store_forget(struct stores *ss, unsigned int dev, uint32_t pfn)
{
	if (!ss->table)
		return;
	atomic_store_explicit(&entry_of(ss, dev, pfn)->vaddr, 0, memory_order_release);
}
