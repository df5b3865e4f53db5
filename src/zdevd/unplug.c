/* SPDX-License-Identifier: MIT */
/*
 * Unplugging a device under load. The order is the kernel's for a driver
 * that goes away while processes use its memory:
 *
 *  1. The device's plug_lock is taken for writing: requests on it under way
 *     end first (they hold it for reading), later ones wait and then get
 *     -ENODEV, and warming lets go of it.
 *  2. Every process's pages on the device come home with their data, as
 *     memunmap_pages() migrates device-private pages back; its mirror
 *     entries and exclusive holds are dropped (the driver's page table goes
 *     with the driver).
 *  3. Other paths may hold a page of the device for a moment still: a CPU
 *     fault or another device's access bringing a page back (busy in the
 *     table, so step 2 leaves it), a fork event copying a parent's entries
 *     into a child not listed yet. Step 2 is repeated until the pool has no
 *     page in use, and then once more, which lets the stores go (emptied:
 *     no page's data is in them now), and waits out whoever held the last
 *     page under its process's lock. A store whose process is not listed
 *     (gone, its session not yet) is waited for too: none may outlive the
 *     pool.
 *  4. The pool is torn down (refpool_destroy(): dying, then unpublished, an
 *     RCU grace period, then the metadata unmapped).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "devset.h"
#include "log.h"
#include "migrate.h"
#include "store.h"
#include "zdevd/clients.h"
#include "zdevd/unplug.h"
#include "zmm.h"

/* How long pages held by other paths may take to come back, in rounds of
 * one millisecond: they are held for one copy each, not for a client. */
#define SETTLE_ROUNDS 5000

bool unplug_allowed(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

struct forget_ctx {
	struct zmm *mm;
	unsigned int dev;
};

/* The device's share of one entry: its mirror and exclusive bits. */
static bool forget_entry(uint64_t vpn, uint64_t *e, void *arg)
{
	const struct forget_ctx *ctx = arg;
	const unsigned int d = ctx->dev;

	(void)vpn;
	if (*e & E_ATOMIC(d)) {
		/* Its hold is revoked: the device's side goes now, the CPU's
		 * PROT_NONE at the CPU's next touch, as ever. */
		atomic_fetch_add_explicit(&ctx->mm->cnt[d].exclusive_revokes, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&ctx->mm->ds->dev[d].totals.exclusive_revokes, 1,
					  memory_order_relaxed);
	}
	*e &= ~(E_MIRROR(d) | E_MIRROR_W(d) | E_ATOMIC(d));
	return true;
}

/* The process's store on the device goes, its memory emptied first: every
 * page of the device is home, so what it holds is no one's data now, and
 * the copy of its fd the process keeps for a rescue would keep that memory
 * for as long as the process lives. Caller holds mm->lock. */
static void drop_store_locked(struct zmm *mm, unsigned int dev)
{
	struct store *store = mm->stores.store[dev];

	if (!store)
		return;
	if (fallocate(store->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)(mm->ds->dev[dev].dev_pages * PG_SIZE)))
		log_dbg("pid %d: device %u: its store keeps its memory: %s", (int)mm->pid, dev,
			strerror(errno));
	store_drop_locked(&mm->stores, dev, store);
}

/* Step 2 for one process: *moved grows by the pages it brought home. With
 * stores, once no page of the device is in use: its store goes too. */
static void let_go(struct zmm *mm, unsigned int dev, bool stores, uint64_t *moved)
{
	struct forget_ctx ctx = { mm, dev };
	uint64_t n = 0;

	if (migrate_evict(mm, (int)dev, &n))
		log_warn("pid %d: device %u: a page could not come home yet", (int)mm->pid, dev);
	*moved += n;
	pthread_mutex_lock(&mm->lock);
	ptable_walk(&mm->pt, 0, UINT64_MAX >> PG_SHIFT, forget_entry, &ctx);
	if (stores)
		drop_store_locked(mm, dev);
	pthread_mutex_unlock(&mm->lock);
}

/* Step 2 for every process: 0 or -ENOMEM. */
static int let_go_all(struct zdevd *d, unsigned int dev, bool stores, uint64_t *moved)
{
	struct zmm **all;
	size_t n;

	all = clients_every(d, true, &n);
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		let_go(all[i], dev, stores, moved);
		zmm_put(all[i]);
	}
	free(all);
	return 0;
}

/* Pages of the pool in use, and stores of the device left. */
static uint64_t still_held(struct device *dev, unsigned int *stores)
{
	struct refpool_stats st;

	refpool_get_stats(dev->pool, &st);
	*stores = atomic_load_explicit(&dev->live_stores, memory_order_relaxed);
	return st.pages_used;
}

/* Steps 2 and 3: 0 once no page of the pool is in use and no store of the
 * device is left, else -EBUSY. */
static int bring_home(struct zdevd *d, unsigned int dev, uint64_t *moved)
{
	const struct timespec ms = { 0, 1000000 };
	struct device *device = &d->devs.dev[dev];
	struct store *warm = store_take_warm(device);
	unsigned int stores;
	uint64_t used;
	int ret;

	if (warm)
		store_put(warm);
	for (int round = 0; round < SETTLE_ROUNDS; round++) {
		ret = let_go_all(d, dev, false, moved);
		/* No page in use, and none can be again: the stores go, and
		 * this pass also waits out whoever held the last page under
		 * its process's lock. */
		if (!ret && !still_held(device, &stores))
			ret = let_go_all(d, dev, true, moved);
		if (!ret && !still_held(device, &stores) && !stores)
			return 0;
		nanosleep(&ms, NULL);
	}
	used = still_held(device, &stores);
	log_err("device %u: %llu pages in use and %u stores left after every process's came home",
		dev, (unsigned long long)used, stores);
	return -EBUSY;
}

int unplug_device(struct zdevd *d, unsigned int dev, uint64_t *moved)
{
	struct device *device = &d->devs.dev[dev];
	int ret;

	*moved = 0;
	pthread_rwlock_wrlock(&device->plug_lock);
	if (device->unplugged) {
		ret = -EALREADY;
		goto out_unlock;
	}
	ret = bring_home(d, dev, moved);
	if (!ret)
		ret = devset_unplug_locked(&d->devs, dev);
	if (!ret)
		log_info("device %u unplugged: %llu pages came home", dev,
			 (unsigned long long)*moved);
out_unlock:
	pthread_rwlock_unlock(&device->plug_lock);
	return ret;
}

int plug_device(struct zdevd *d, unsigned int dev)
{
	struct device *device = &d->devs.dev[dev];
	void (*changed)(struct device *);
	int ret;

	pthread_rwlock_wrlock(&device->plug_lock);
	ret = device->unplugged ? devset_plug_locked(&d->devs, dev) : -EALREADY;
	pthread_rwlock_unlock(&device->plug_lock);
	if (ret) {
		if (ret != -EALREADY)
			log_err("device %u: cannot plug it: %s", dev, strerror(-ret));
		return ret;
	}
	log_info("device %u plugged", dev);
	/* acquire: pairs with warm_start()'s release. A fresh device is
	 * warmed as the first was. */
	changed = atomic_load_explicit(&d->devs.store_changed, memory_order_acquire);
	if (changed)
		changed(device);
	return 0;
}
