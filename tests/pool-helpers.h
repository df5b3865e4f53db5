/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TEST_POOL_HELPERS_H
#define ZDEV_TEST_POOL_HELPERS_H

#include <stdatomic.h>

#include "refpool-int.h"

#define MIB (1ul << 20)
#define CHUNK_2M (2 * MIB)
#define PAGES_2M (CHUNK_2M / REFPOOL_PAGE_SIZE)

/* What a test pool saw through its ops. */
struct pool_probe {
	_Atomic unsigned long frees;		/* page_free calls */
	_Atomic unsigned long evictions;	/* evict calls */
	_Atomic unsigned long violations;
	struct refpool_violation last;		/* guarded by the pool's reports being serial in tests */
	_Atomic unsigned long adopts;		/* adopt_block calls that succeeded */
	_Atomic unsigned long releases;		/* release_block calls */
	_Atomic unsigned long owners_gone;	/* owner_gone calls */
	/* optional hooks a test adds */
	void (*on_free)(struct refpool *pool, struct refpool_page *page, void *ctx);
	void (*on_evict)(struct refpool *pool, struct refpool_page *page, void *ctx);
	int (*on_adopt)(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx);
	void (*on_release)(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx);
	void (*on_owner_gone)(struct refpool *pool, void *owner_arg, void *ctx);
	bool (*on_prefers)(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx);
	void *ctx;
};

/* A debug-mode PRIVATE pool on node 0 with chunk and limit in bytes. */
struct refpool *make_pool(struct pool_probe *probe, size_t chunk, size_t limit);

/* Keeps the calling thread on one CPU, so it always uses the same slot. */
void pin_self(int cpu);

/* Fills the page's device memory with a pattern derived from seed. */
void fill_page(struct refpool *pool, struct refpool_page *page, uint64_t seed);
/* True when the page's memory still holds that pattern. */
int page_holds(struct refpool *pool, struct refpool_page *page, uint64_t seed);

#endif
