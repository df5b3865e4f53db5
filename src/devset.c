/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devset.h"
#include "lathist.h"
#include "log.h"
#include "numa_place.h"
#include "page.h"
#include "store.h"

static void evict_on_teardown(struct refpool *pool, struct refpool_page *page, void *arg)
{
	(void)arg;
	/* Every client's pages were brought back before the pool went down
	 * (at shutdown or an unplug); a page still in use here has no owner
	 * left to bring it back to. */
	log_warn("device page %u still in use at teardown", refpool_page_to_pfn(pool, page));
}

static const struct refpool_ops device_ops = {
	.evict = evict_on_teardown,
	.adopt_block = store_adopt_block,
	.prefers_block = store_prefers_block,
	.owner_gone = store_owner_gone,
};

/* The device's pool and its store state, of cfg; what the device is (its
 * index, node and memory type) is set already, and others may read it. */
static int device_make_pool(struct device *dev, const struct devset_config *cfg)
{
	char name[16];
	struct refpool_config pc = {
		.name = name, .type = dev->memtype,
		.chunk_bytes = cfg->chunk, .limit_bytes = cfg->memory,
		.node = dev->node, .flags = cfg->pool_debug ? REFPOOL_DEBUG : 0,
		.ops = &device_ops, .arg = dev,
	};
	int ret;

	snprintf(name, sizeof(name), "dev%u", dev->index);
	ret = refpool_create(&pc, &dev->pool);
	if (ret) {
		log_err("device %u: %s (--memory and --chunk must be multiples of 2M)", dev->index,
			strerror(-ret));
		return ret;
	}
	ret = store_device_init(dev, cfg->memory / PG_SIZE);
	if (ret) {
		refpool_destroy(dev->pool);
		dev->pool = NULL;
	}
	return ret;
}

static int device_init(struct devset *ds, unsigned int index, const struct devset_config *cfg)
{
	struct device *dev = &ds->dev[index];

	dev->ds = ds;
	dev->index = index;
	dev->node = ZDEV_NODE_LOCAL;
	dev->memtype = cfg->memtype[index] ? cfg->memtype[index] : REFPOOL_MEMTYPE_PRIVATE;
	dev->model.cfg = cfg->model[index];
	return device_make_pool(dev, cfg);
}

static void plug_lock_init(struct device *dev)
{
	pthread_rwlockattr_t attr;

	/* Writers first: an unplug waits for the requests under way, not for
	 * every request that keeps arriving after it. Nothing takes the lock
	 * for reading twice, which this kind forbids. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&dev->plug_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

int devset_init(struct devset *ds, const struct devset_config *cfg)
{
	int ret;

	ds->cfg = *cfg;
	ds->started_ns = lathist_now_ns();
	for (unsigned int i = 0; i < ZDEV_MAX_DEVICES; i++)
		plug_lock_init(&ds->dev[i]);
	ds->client_memory = cfg->client_memory;
	ds->client_registered = cfg->client_registered;
	for (ds->ndevices = 0; ds->ndevices < cfg->ndevices; ds->ndevices++) {
		ret = device_init(ds, ds->ndevices, cfg);
		if (ret) {
			devset_fini(ds);
			return ret;
		}
	}
	return 0;
}

int devset_fini(struct devset *ds)
{
	int ret = 0;

	for (unsigned int i = 0; i < ds->ndevices; i++) {
		struct refpool_stats st;

		if (ds->dev[i].unplugged)
			continue;
		refpool_get_stats(ds->dev[i].pool, &st);
		if (st.pages_used) {
			/* Owned by no client we still know: a teardown would wait
			 * for them forever. Say so and leave the memory to exit. */
			log_err("device %u: %llu pages still in use at shutdown", i,
				(unsigned long long)st.pages_used);
			ret = -EBUSY;
			continue;
		}
		refpool_destroy(ds->dev[i].pool);
		store_device_fini(&ds->dev[i]);
	}
	ds->ndevices = 0;
	return ret;
}

int device_enter(struct device *dev)
{
	pthread_rwlock_rdlock(&dev->plug_lock);
	if (!dev->unplugged)
		return 0;
	pthread_rwlock_unlock(&dev->plug_lock);
	return -ENODEV;
}

bool device_try_enter(struct device *dev)
{
	if (pthread_rwlock_tryrdlock(&dev->plug_lock))
		return false;
	if (!dev->unplugged)
		return true;
	pthread_rwlock_unlock(&dev->plug_lock);
	return false;
}

void device_leave(struct device *dev)
{
	pthread_rwlock_unlock(&dev->plug_lock);
}

int devset_unplug_locked(struct devset *ds, unsigned int index)
{
	struct device *dev = &ds->dev[index];
	struct refpool_stats st;
	struct store *warm;

	warm = store_take_warm(dev);
	if (warm)
		store_put(warm);
	refpool_get_stats(dev->pool, &st);
	/* The teardown would wait for them for ever: evict_on_teardown cannot
	 * bring a page home, only zdevd's clients' tables can; and a store
	 * left would outlive its pool. */
	if (st.pages_used || atomic_load_explicit(&dev->live_stores, memory_order_relaxed))
		return -EBUSY;
	/* The kernel's memunmap_pages(): every chunk dies, then, after an RCU
	 * grace period, its metadata is unmapped. */
	refpool_destroy(dev->pool);
	dev->pool = NULL;
	store_device_fini(dev);
	dev->unplugged = true;
	return 0;
}

int devset_plug_locked(struct devset *ds, unsigned int index)
{
	int ret = device_make_pool(&ds->dev[index], &ds->cfg);

	if (!ret)
		ds->dev[index].unplugged = false;
	return ret;
}
