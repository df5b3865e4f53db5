/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_REFPOOL_H
#define ZDEV_REFPOOL_H

/*
 * The device page pool: the emulated dev_pagemap chunks of one device, their
 * page metadata, free lists and refcount lifecycle.
 *
 *  - A free page has refcount 0 and is on a free list; nothing else.
 *  - refpool_alloc() is the only 0->1 transition. It takes a chunk reference
 *    for the page and hands the page out with refcount 1, owned by the caller.
 *  - The put that reaches 0 runs the memory type's free hook, threads the page
 *    onto a free list and only then drops the chunk reference.
 *  - refpool_get_unless_zero() is the speculative reference of a lockless
 *    lookup; the caller revalidates its lookup afterwards.
 *  - refpool_kill() is the emulated memunmap_pages(): no allocation succeeds
 *    once it starts, every page in use is evicted through ops->evict, it waits
 *    for the chunk counters to drain and for an RCU grace period, and only then
 *    unmaps metadata.
 *
 * Page frame numbers (pfns) index the pool's pages; they are dense, start at 0
 * and stay valid for lookups until the chunk that holds them is torn down.
 *
 * Owners (so that a client's device pages can live in memory only its pages
 * ever occupy, mapped over a block's pfn range by the device):
 *
 *  - A block (REFPOOL_BLOCK_PAGES aligned pages) is unowned, or owned by one
 *    owner and then holds that owner's pages only. Unowned pages and blocks
 *    behave as if owners did not exist.
 *  - A block becomes an owner's only whole and free, through ops->adopt_block,
 *    before any of its pages is handed out; refpool_alloc_owned() never takes
 *    an unowned single page.
 *  - The lifecycle above holds for owned pages unchanged (get, put and the
 *    debug checks do not care whether a page is owned), except that the put
 *    that reaches 0 lists the page on its owner's free list for its block.
 *    When that makes all of the block free, the block is released:
 *    ops->release_block, then it goes back whole to its chunk's free blocks,
 *    and only then is the freed page's chunk reference dropped, so the
 *    teardown never finds a page of a drained chunk off its lists.
 *  - An owned block always has a page in use: the teardown's evictions
 *    release every owned block.
 *  - An owner lives while its creator's reference or a block of it does;
 *    ops->owner_gone says when both are gone. Every owner must be gone or
 *    put before refpool_destroy().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page.h"

#define REFPOOL_PAGE_SHIFT PG_SHIFT
#define REFPOOL_PAGE_SIZE (1ul << REFPOOL_PAGE_SHIFT)
#define REFPOOL_NO_PFN UINT32_MAX

/* Checks every transition and reports violations through ops->violation. */
#define REFPOOL_DEBUG (1u << 0)

enum refpool_memtype_id {
	REFPOOL_MEMTYPE_PRIVATE = 1,	/* not CPU-addressable: the kernel's DEVICE_PRIVATE */
	REFPOOL_MEMTYPE_COHERENT,	/* CPU-addressable: the kernel's DEVICE_COHERENT */
};

/* 16 bytes: a quarter of the kernel's struct page. */
struct refpool_page {
	_Atomic uint32_t refcount;
	uint32_t next;		/* pfn of the next free page, while on a free list */
	uint64_t owner;		/* the device's word for a page in use (zone_device_data) */
};

enum refpool_bug {
	REFPOOL_BUG_DOUBLE_PUT = 1,	/* put after the put that freed the page */
	REFPOOL_BUG_PUT_FREE,		/* put on a page that was never handed out */
	REFPOOL_BUG_GET_FREE,		/* plain get on a free page */
	REFPOOL_BUG_ALLOC_DYING,	/* allocation from a chunk being torn down */
	REFPOOL_BUG_COUNTED_FREE,	/* a page on a free list with a non-zero count */
	REFPOOL_BUG_LOST_PAGE,		/* a free page missing from the free lists at teardown */
};

struct refpool_violation {
	enum refpool_bug bug;
	uint32_t pfn;
	uint32_t count;		/* the refcount the operation found */
	const char *op;		/* the pool operation that found it */
};

struct refpool;

struct refpool_ops {
	/* The device's page_free, run on the 1->0 transition before the page is
	 * back on a free list. Optional. */
	void (*page_free)(struct refpool *pool, struct refpool_page *page, void *arg);
	/* Teardown: bring the page's data back to its owner and drop the owner's
	 * references, now or later; the pool holds its own reference across the
	 * call. Required. */
	void (*evict)(struct refpool *pool, struct refpool_page *page, void *arg);
	/* Debug mode: called for every violation. Optional; the default logs. */
	void (*violation)(struct refpool *pool, const struct refpool_violation *v, void *arg);
	/*
	 * Owners (all optional, called with no pool lock held). adopt_block:
	 * the whole free block at first_pfn becomes owner_arg's owner's, before
	 * any of its pages is handed out; a non-zero -errno fails the
	 * allocation that wanted it and the block stays free and unowned.
	 * release_block: the last page of the owned block was freed; the block
	 * stops being the owner's, and is free for anyone after the call.
	 * owner_gone: the owner holds no block and its creator put it, so
	 * owner_arg may go. prefers_block: whether the free block at first_pfn
	 * is one the owner should adopt before others (its memory is the
	 * owner's already); it runs under the pool's locks, so it only reads.
	 */
	int (*adopt_block)(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg);
	void (*release_block)(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg);
	void (*owner_gone)(struct refpool *pool, void *owner_arg, void *arg);
	bool (*prefers_block)(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg);
};

struct refpool_config {
	const char *name;		/* for logs and memfd names */
	enum refpool_memtype_id type;
	size_t chunk_bytes;		/* a multiple of the page size, at most 2^31 pages */
	size_t limit_bytes;		/* rounded down to whole chunks, at least one */
	int node;			/* NUMA node, or ZDEV_NODE_LOCAL (-1) */
	unsigned int flags;		/* REFPOOL_DEBUG */
	const struct refpool_ops *ops;
	void *arg;			/* passed to every op */
};

struct refpool_stats {
	uint64_t pages_total;		/* pages in live chunks */
	uint64_t pages_used;		/* pages handed out and not yet freed */
	/* The most pages_used was seen to be: counted after every block or
	 * batch allocation and every stats read. A single-page allocation, the
	 * fast path, counts at the next of those. */
	uint64_t pages_peak;
	uint64_t limit_pages;
	uint64_t meta_bytes;		/* page metadata and chunk records of live chunks */
	uint32_t chunks;
	uint64_t violations;
};

int refpool_create(const struct refpool_config *cfg, struct refpool **out);

/* Tears down every chunk (see above). Returns 0, or -EALREADY on a second call. */
int refpool_kill(struct refpool *pool);

/* Kills the pool if it still lives, then frees it. No call may be running. */
void refpool_destroy(struct refpool *pool);

/* The 0->1 transition. -ENOMEM when the limit is reached and every page is in
 * use, -ENODEV once the pool is being killed, other -errno from chunk creation. */
int refpool_alloc(struct refpool *pool, struct refpool_page **out);

/*
 * A device THP: REFPOOL_BLOCK_PAGES pages, contiguous and aligned to the
 * block size, each handed out with count 1 (zone_device_folio_init of order
 * 9; every page keeps its own count, so a block splits by being put page by
 * page). -ENOMEM when no whole free block exists and no chunk can be made for
 * one: the caller falls back to single pages, as the driver does.
 */
#define REFPOOL_BLOCK_ORDER 9
#define REFPOOL_BLOCK_PAGES (1u << REFPOOL_BLOCK_ORDER)
/* A block backs one window of a client: a device THP. */
_Static_assert(REFPOOL_BLOCK_PAGES == WIN_PAGES, "a pool block is one window");
int refpool_alloc_block(struct refpool *pool, struct refpool_page **first);

/* One put on each page of the block at first. If every page is freed by it,
 * the block goes back whole to the free blocks; pages freed alone (the block
 * was split) go back as single pages. */
void refpool_put_block(struct refpool *pool, struct refpool_page *first);

/* Makes chunks until the pool has room for npages (never past its limit):
 * 0, -ENOMEM if the limit is lower or memory ran out, -ENODEV once the pool
 * is being killed. */
int refpool_reserve(struct refpool *pool, uint64_t npages);

/* Whether the block at first is free: in a live chunk, owned by no one, no
 * page counted. A snapshot: a caller that acts on it orders itself against
 * the block's adoption (ops->adopt_block) on its own. */
bool refpool_block_free(struct refpool *pool, uint32_t first);

struct refpool_owner;

/* A new owner with the creator's reference; owner_arg goes to the owner ops.
 * -ENODEV once the pool is being killed, -ENOMEM. */
int refpool_owner_create(struct refpool *pool, void *owner_arg, struct refpool_owner **out);

/* Drops the creator's reference: the owner may no longer allocate, and goes
 * (ops->owner_gone) once its last block is released. NULL is ignored. */
void refpool_owner_put(struct refpool_owner *owner);

/*
 * refpool_alloc() and refpool_alloc_block() from owner's blocks only: a free
 * page of a block owner has, else a whole free block adopted for it (from the
 * chunks' free blocks or a new chunk). stats.pages_used counts the pages from
 * when the block is taken, adoption included. -ENOMEM when no whole free block
 * exists or can be made (free single pages do not count), -ENODEV once the
 * pool is being killed, -EINVAL for another pool's owner, an error of
 * ops->adopt_block.
 */
int refpool_alloc_owned(struct refpool *pool, struct refpool_owner *owner,
			struct refpool_page **out);
/* Up to n owned pages into out under one lock per block's worth: how many
 * (the rest could not be had), or -errno if none. */
int refpool_alloc_owned_many(struct refpool *pool, struct refpool_owner *owner, uint32_t n,
			     struct refpool_page **out);
int refpool_alloc_block_owned(struct refpool *pool, struct refpool_owner *owner,
			      struct refpool_page **first);

/* One put on each of the n pages from first (consecutive pfns): what owned
 * blocks get back is listed once per block. */
void refpool_put_run(struct refpool *pool, struct refpool_page *first, uint32_t n);

/* Another reference on a page the caller already holds one on (fork sharing). */
void refpool_get(struct refpool *pool, struct refpool_page *page);

/* A speculative reference: fails on a free page. Call inside an RCU read-side
 * section (liburcu memb flavour) when the page came from refpool_pfn_to_page(). */
bool refpool_get_unless_zero(struct refpool *pool, struct refpool_page *page);

void refpool_put(struct refpool *pool, struct refpool_page *page);

/* The page of pfn, or NULL if no live chunk holds it. The pointer stays safe
 * to dereference until the caller's RCU read-side section ends. */
struct refpool_page *refpool_pfn_to_page(struct refpool *pool, uint32_t pfn);

uint32_t refpool_page_to_pfn(const struct refpool *pool, const struct refpool_page *page);

/* The device memory of a page (REFPOOL_PAGE_SIZE bytes), mapped in this process. */
void *refpool_page_mem(const struct refpool *pool, const struct refpool_page *page);

void refpool_get_stats(struct refpool *pool, struct refpool_stats *st);

/* The first violation the debug mode saw, if any. */
bool refpool_first_violation(struct refpool *pool, struct refpool_violation *v);

const char *refpool_bug_name(enum refpool_bug bug);

#endif
