/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "refpool-int.h"

/*
 * DEVICE_COHERENT: the CPU maps the memory with ordinary page table entries.
 * In zdev the data of a coherent page stays in the client's own page, and
 * the pool page only stands for the device memory it occupies (the device's
 * limit, refcounts, totals), so a freed page has nothing to unmap either:
 * the device's page_free accounts for it and the owner word is cleared.
 */
static void coherent_free_page(struct refpool *pool, struct refpool_page *page)
{
	if (pool->ops->page_free)
		pool->ops->page_free(pool, page, pool->arg);
	page->owner = 0;
}

const struct refpool_memtype refpool_memtype_coherent = {
	.name = "coherent",
	.id = REFPOOL_MEMTYPE_COHERENT,
	.free_page = coherent_free_page,
};
