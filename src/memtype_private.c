/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "refpool-int.h"

/*
 * DEVICE_PRIVATE: the CPU cannot address the memory, so nothing maps it when
 * it is freed; the device's page_free accounts for it and the owner word is
 * cleared so the next owner starts clean.
 */
static void private_free_page(struct refpool *pool, struct refpool_page *page)
{
	if (pool->ops->page_free)
		pool->ops->page_free(pool, page, pool->arg);
	page->owner = 0;
}

const struct refpool_memtype refpool_memtype_private = {
	.name = "private",
	.id = REFPOOL_MEMTYPE_PRIVATE,
	.free_page = private_free_page,
};
