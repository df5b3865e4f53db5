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
 *     with the driver), and the process's store on it is let go.
 *  3. Other paths may hold a page of the device for a moment still: a CPU
 *     fault or another device's access bringing a page back (busy in the
 *     table, so step 2 leaves it), a fork event copying a parent's entries
 *     into a child not listed yet. Step 2 is repeated until the pool has no
 *     page in use, and then once more, so that whoever held the last page
 *     has let go of the process's lock too.
 *  4. The pool is torn down (refpool_destroy(): dying, then unpublished, an
 *     RCU grace period, then the metadata unmapped).
 */
#include "config.h"

#include <errno.h>
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

/* Step 2 for one process: *moved grows by the pages it brought home. */
static void let_go(struct zmm *mm, unsigned int dev, uint64_t *moved)
{
	struct forget_ctx ctx = { mm, dev };
	uint64_t n = 0;

	if (migrate_evict(mm, (int)dev, &n))
		log_warn("pid %d: device %u: a page could not come home yet", (int)mm->pid, dev);
	*moved += n;
	pthread_mutex_lock(&mm->lock);
	ptable_walk(&mm->pt, 0, UINT64_MAX >> PG_SHIFT, forget_entry, &ctx);
	if (mm->stores.store[dev])
		store_drop_locked(&mm->stores, dev, mm->stores.store[dev]);
	pthread_mutex_unlock(&mm->lock);
}

/* Every process zdevd knows, listed or a fork child not claimed yet, each
 * with a reference: *n of them in a new array, or NULL. */
static struct zmm **every_mm(struct zdevd *d, size_t *n)
{
	struct zmm **all;
	size_t cap = 0;

	*n = 0;
	pthread_mutex_lock(&d->mms_lock);
	for (struct zmm *mm = d->mms; mm; mm = mm->next)
		cap++;
	for (struct zmm *mm = d->unclaimed; mm; mm = mm->next_unclaimed)
		cap++;
	all = malloc((cap + 1) * sizeof(*all));
	for (struct zmm *mm = d->mms; mm && all; mm = mm->next)
		all[(*n)++] = mm;
	for (struct zmm *mm = d->unclaimed; mm && all; mm = mm->next_unclaimed)
		all[(*n)++] = mm;
	for (size_t i = 0; i < *n; i++)
		zmm_get(all[i]);
	pthread_mutex_unlock(&d->mms_lock);
	return all;
}

/* Step 2 for every process: 0 or -ENOMEM. */
static int let_go_all(struct zdevd *d, unsigned int dev, uint64_t *moved)
{
	struct zmm **all;
	size_t n;

	all = every_mm(d, &n);
	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		let_go(all[i], dev, moved);
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
		ret = let_go_all(d, dev, moved);
		if (!ret && !still_held(device, &stores) && !stores)
			return let_go_all(d, dev, moved);
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
