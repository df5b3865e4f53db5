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
	/* Every client's pages were brought back before the pools went down;
	 * a page still in use here has no owner left to bring it back to. */
	log_warn("device page %u still in use at shutdown", refpool_page_to_pfn(pool, page));
}

static const struct refpool_ops device_ops = {
	.evict = evict_on_teardown,
	.adopt_block = store_adopt_block,
	.prefers_block = store_prefers_block,
	.owner_gone = store_owner_gone,
};

static int device_init(struct devset *ds, unsigned int index, const struct devset_config *cfg)
{
	struct device *dev = &ds->dev[index];
	char name[16];
	struct refpool_config pc = {
		.name = name,
		.type = cfg->memtype[index] ? cfg->memtype[index] : REFPOOL_MEMTYPE_PRIVATE,
		.chunk_bytes = cfg->chunk, .limit_bytes = cfg->memory,
		.node = ZDEV_NODE_LOCAL, .flags = cfg->pool_debug ? REFPOOL_DEBUG : 0,
		.ops = &device_ops, .arg = dev,
	};
	int ret;

	snprintf(name, sizeof(name), "dev%u", index);
	dev->ds = ds;
	dev->index = index;
	dev->node = pc.node;
	dev->memtype = pc.type;
	ret = refpool_create(&pc, &dev->pool);
	if (ret) {
		log_err("device %u: %s (--memory and --chunk must be multiples of 2M)", index,
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

int devset_init(struct devset *ds, const struct devset_config *cfg)
{
	int ret;

	ds->started_ns = lathist_now_ns();
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
