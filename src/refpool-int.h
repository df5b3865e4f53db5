/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_REFPOOL_INT_H
#define ZDEV_REFPOOL_INT_H

/* The pool's insides, shared by refpool*.c, memtype*.c and white-box tests. */

#include <pthread.h>
#include <stdatomic.h>

#include "refpool.h"
#include "spinlock.h"

#define ZDEV_CACHELINE 64

/*
 * A per-CPU slot: a short LIFO of free pages (any chunk) that alloc and put use
 * without touching shared cache lines. Pages in a slot are on "the free list"
 * in the sense of the contract: count 0, owned by no one.
 */
#define SLOT_BATCH 32		/* pages moved between a slot and the chunks at once */
#define SLOT_HIGH (2 * SLOT_BATCH)

struct refpool_slot {
	struct spinlock lock;
	uint32_t head;
	uint32_t nfree;
} __attribute__((aligned(ZDEV_CACHELINE)));

/*
 * The chunk reference is a percpu_ref: while the chunk lives, each slot keeps
 * its own signed count of pages handed out minus pages freed (changed under
 * the slot lock only); teardown folds the slot counts into `live` once and from
 * then on puts count there.
 */
struct refpool_pcpu_count {
	_Atomic int64_t pages;
} __attribute__((aligned(ZDEV_CACHELINE)));

enum refpool_dbg_state {
	DBG_NEVER_USED = 0,
	DBG_FREE,
	DBG_IN_USE,
};

struct refpool_chunk {
	/* read-mostly: read on every alloc and put */
	uint32_t index;
	uint32_t first_pfn;
	atomic_bool dying;
	int memfd;
	struct refpool_pcpu_count *pcpu;	/* one per slot */
	struct refpool_chunk *retired_next;	/* teardown: waiting for the grace period */

	/*
	 * The chunk's free lists and, once dying, its single live counter.
	 * Free pages are either single pages on `head`, or whole aligned
	 * blocks (device THPs) on `block_head`, linked through the `next` of
	 * their first page: the driver's free_pages and free_folios. A new
	 * chunk holds blocks only; single pages come from splitting one.
	 */
	pthread_mutex_t lock __attribute__((aligned(ZDEV_CACHELINE)));
	pthread_cond_t idle;
	uint32_t head;
	uint32_t nfree;
	uint32_t block_head;
	uint32_t nblocks;
	int64_t live;
};

#define REFPOOL_NO_BLOCK UINT32_MAX

/*
 * What the pool knows of one block's owner, in a pool-wide array indexed by
 * pfn / REFPOOL_BLOCK_PAGES. `owner` is set before any page of the block is
 * counted and cleared after all of them are free again, so a put that holds a
 * page of the block reads it without a lock; the rest belongs to the owner's
 * lock while the block is owned.
 */
struct refpool_block {
	_Atomic(struct refpool_owner *) owner;	/* NULL: unowned */
	uint32_t head;		/* the owner's free pages of the block, through next */
	uint32_t nfree;
	uint32_t prev;		/* the owner's blocks with free pages */
	uint32_t next;
};

struct refpool_owner {
	struct refpool *pool;
	void *arg;
	_Atomic uint32_t refs;		/* the creator's, and one per block owned */
	pthread_mutex_t lock;
	uint32_t partial;		/* first block with free pages, or REFPOOL_NO_BLOCK */
};

struct refpool_memtype {
	const char *name;
	enum refpool_memtype_id id;
	/* The type's part of the 1->0 transition, before the page is listed. */
	void (*free_page)(struct refpool *pool, struct refpool_page *page);
};

struct refpool {
	char name[32];
	const struct refpool_memtype *type;
	const struct refpool_ops *ops;
	void *arg;
	unsigned int flags;
	int node;
	uint32_t chunk_pages;
	uint32_t max_chunks;
	uint32_t nslots;

	/* Reservations covering the limit: pfn -> metadata and memory is an
	 * index, the way the kernel's vmemmap makes pfn_to_page() arithmetic. */
	struct refpool_page *pages;
	uint8_t *mem;
	_Atomic uint8_t *dbg;		/* enum refpool_dbg_state per page, debug mode only */

	_Atomic(struct refpool_chunk *) *chunks;	/* max_chunks, NULL when absent */
	struct refpool_block *blocks;			/* one per block of the limit */
	struct refpool_slot *slots;

	pthread_mutex_t grow_lock;	/* chunk creation and the kill */
	atomic_bool dying;
	_Atomic uint64_t pages_peak;	/* refpool_stats.pages_peak */

	_Atomic uint64_t violations;
	pthread_mutex_t violation_lock;
	bool have_first;
	struct refpool_violation first;
};

static inline uint32_t pool_pfn(const struct refpool *pool, const struct refpool_page *page)
{
	return (uint32_t)(page - pool->pages);
}

static inline struct refpool_chunk *pool_chunk_of(struct refpool *pool, uint32_t pfn)
{
	/* relaxed: a caller holding a page of the chunk, or holding the slot
	 * lock the page is listed under, is ordered after the chunk's
	 * publication by the acquire that gave it the page. */
	return atomic_load_explicit(&pool->chunks[pfn / pool->chunk_pages], memory_order_relaxed);
}

static inline bool pool_debug(const struct refpool *pool)
{
	return pool->flags & REFPOOL_DEBUG;
}

/* refpool_debug.c */
void refpool_report(struct refpool *pool, enum refpool_bug bug, uint32_t pfn, uint32_t count,
		    const char *op);
void refpool_dbg_set(struct refpool *pool, uint32_t pfn, enum refpool_dbg_state state);
void refpool_dbg_audit_chunk(struct refpool *pool, struct refpool_chunk *c);

/* memtype_private.c */
extern const struct refpool_memtype refpool_memtype_private;
/* memtype_coherent.c */
extern const struct refpool_memtype refpool_memtype_coherent;

#endif
