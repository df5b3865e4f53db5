/* SPDX-License-Identifier: MIT */
/*
 * The device page pool. The contract is in refpool.h and docs/lifecycle.md;
 * this file keeps it with three kinds of lists and two kinds of counters:
 *
 *  free lists   per-CPU slots (no shared cache line on the fast path) and one
 *               list per chunk that slots refill from and spill to in batches;
 *  page counts  the refcount in each page's 16-byte record;
 *  chunk refs   a percpu_ref per chunk: slot-local counts while the chunk
 *               lives, one counter under the chunk lock once it is dying;
 *  owners       per block, the owner and its free pages there (pool->blocks),
 *               and per owner the list of its blocks with free pages.
 *
 * Lock order: pool->grow_lock, then slot locks in index order, then chunk
 * locks; an owner's lock, then a slot lock. An owner's lock is never held with
 * the grow lock or a chunk lock, nor across the owner ops. Every change to a
 * slot's list or count, and every read of a chunk's dying flag that decides
 * where a page goes, happens under a slot lock; the teardown marks chunks
 * dying with every slot lock held, so once it lets go, no slot holds a page of
 * a dying chunk and no slot count of one changes.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <urcu/urcu-memb.h>

#include "devmem.h"
#include "log.h"
#include "numa_place.h"
#include "refpool-int.h"
#include "vmres.h"

#define CHUNK_ALIGN (2ul << 20)	/* whole PMDs, for device THPs */

static size_t meta_len(uint32_t npages)
{
	return (size_t)npages * sizeof(struct refpool_page);
}

static struct refpool_slot *my_slot(struct refpool *pool, uint32_t *index)
{
	/* glibc reads the CPU from the rseq area: no system call. A thread
	 * that moves to another CPU after this still gets a correct (locked)
	 * slot, only perhaps not the nearest one. */
	int cpu = sched_getcpu();

	*index = cpu < 0 ? 0 : (uint32_t)cpu % pool->nslots;
	return &pool->slots[*index];
}

static bool chunk_dying(const struct refpool_chunk *c)
{
	/* relaxed: callers hold a slot lock, which orders them against the
	 * teardown's store (made with every slot lock held). */
	return atomic_load_explicit(&c->dying, memory_order_relaxed);
}

static void pcpu_add(struct refpool_chunk *c, uint32_t slot, int64_t delta)
{
	_Atomic int64_t *n = &c->pcpu[slot].pages;

	/* Changed only under the slot lock, so a load and a store suffice; they
	 * are atomic because refpool_get_stats() reads them without it. */
	atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + delta,
			      memory_order_relaxed);
}

/* ---- list primitives: the caller holds the list's lock ---- */

static void list_push(struct refpool *pool, uint32_t *head, uint32_t *nfree, uint32_t pfn)
{
	pool->pages[pfn].next = *head;
	*head = pfn;
	(*nfree)++;
}

static uint32_t list_pop(struct refpool *pool, uint32_t *head, uint32_t *nfree)
{
	uint32_t pfn = *head;

	*head = pool->pages[pfn].next;
	(*nfree)--;
	return pfn;
}

/* Moves every page of slot (locked) to its chunk's list. */
static uint32_t slot_spill(struct refpool *pool, struct refpool_slot *slot, uint32_t max)
{
	struct refpool_chunk *locked = NULL;
	uint32_t moved = 0;

	while (slot->nfree && moved < max) {
		uint32_t pfn = list_pop(pool, &slot->head, &slot->nfree);
		struct refpool_chunk *c = pool_chunk_of(pool, pfn);

		if (c != locked) {
			if (locked)
				pthread_mutex_unlock(&locked->lock);
			pthread_mutex_lock(&c->lock);
			locked = c;
		}
		list_push(pool, &c->head, &c->nfree, pfn);
		moved++;
	}
	if (locked)
		pthread_mutex_unlock(&locked->lock);
	return moved;
}

/* Moves up to max pages from the head of one list to the head of another,
 * keeping their order, so pages still come out in ascending pfn order. */
static uint32_t list_splice_head(struct refpool *pool, uint32_t *from, uint32_t *from_nfree,
				 uint32_t *to, uint32_t *to_nfree, uint32_t max)
{
	uint32_t first = *from, last = *from, n;

	if (!*from_nfree || !max)
		return 0;
	for (n = 1; n < max && n < *from_nfree; n++)
		last = pool->pages[last].next;
	*from = pool->pages[last].next;
	*from_nfree -= n;
	pool->pages[last].next = *to;
	*to = first;
	*to_nfree += n;
	return n;
}

/* Takes a batch from the first live chunk with free pages into slot (locked). */
static uint32_t slot_refill(struct refpool *pool, struct refpool_slot *slot)
{
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		/* acquire: pairs with the release that published the chunk, so
		 * its lock and list are initialised when we take them. */
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_acquire);
		uint32_t n;

		if (!c || chunk_dying(c))
			continue;
		pthread_mutex_lock(&c->lock);
		n = list_splice_head(pool, &c->head, &c->nfree, &slot->head, &slot->nfree,
				     SLOT_BATCH);
		pthread_mutex_unlock(&c->lock);
		if (n)
			return n;
	}
	return 0;
}

/* ---- the transitions ---- */

/* The count of 0->1, for a page the caller took off a free list. */
static bool page_count_first(struct refpool *pool, uint32_t pfn)
{
	struct refpool_page *page = &pool->pages[pfn];
	uint32_t expected = 0;

	page->owner = 0;
	/* release: a speculative reference that sees the count 1 also sees the
	 * record reset above. */
	if (pool_debug(pool)) {
		if (!atomic_compare_exchange_strong_explicit(&page->refcount, &expected, 1,
							     memory_order_release,
							     memory_order_relaxed)) {
			refpool_report(pool, REFPOOL_BUG_COUNTED_FREE, pfn, expected, "alloc");
			return false;
		}
		refpool_dbg_set(pool, pfn, DBG_IN_USE);
	} else {
		atomic_store_explicit(&page->refcount, 1, memory_order_release);
	}
	return true;
}

/* 0->1, with the slot of the chunk reference locked. */
static bool page_take(struct refpool *pool, struct refpool_chunk *c, uint32_t slot, uint32_t pfn)
{
	if (chunk_dying(c)) {
		refpool_report(pool, REFPOOL_BUG_ALLOC_DYING, pfn,
			       atomic_load_explicit(&pool->pages[pfn].refcount,
						    memory_order_relaxed),
			       "alloc");
		return false;
	}
	if (!page_count_first(pool, pfn))
		return false;
	pcpu_add(c, slot, 1);
	return true;
}

static int alloc_from_slot(struct refpool *pool, struct refpool_page **out)
{
	struct refpool_slot *slot;
	uint32_t index;
	int ret = -ENOMEM;

	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	while (slot->nfree || slot_refill(pool, slot)) {
		uint32_t pfn = list_pop(pool, &slot->head, &slot->nfree);
		struct refpool_chunk *c = pool_chunk_of(pool, pfn);

		if (page_take(pool, c, index, pfn)) {
			*out = &pool->pages[pfn];
			ret = 0;
			break;
		}
		/* A bug, already reported. A dying chunk's page goes where the
		 * teardown expects it; a counted page stays off the lists until
		 * whoever counts it puts it. */
		if (chunk_dying(c)) {
			pthread_mutex_lock(&c->lock);
			list_push(pool, &c->head, &c->nfree, pfn);
			pthread_mutex_unlock(&c->lock);
		}
	}
	spin_unlock(&slot->lock);
	return ret;
}

/* Returns what the other CPUs' slots hold to the chunks. */
static uint32_t drain_all_slots(struct refpool *pool)
{
	uint32_t moved = 0;

	for (uint32_t i = 0; i < pool->nslots; i++) {
		struct refpool_slot *slot = &pool->slots[i];

		spin_lock(&slot->lock);
		moved += slot_spill(pool, slot, UINT32_MAX);
		spin_unlock(&slot->lock);
	}
	return moved;
}

static int chunk_create(struct refpool *pool, uint32_t index);

/* Lists the pages of the free block at first as single pages, so that they
 * come out in ascending order. Caller holds c->lock. */
static void block_split(struct refpool *pool, struct refpool_chunk *c, uint32_t first)
{
	for (uint32_t i = REFPOOL_BLOCK_PAGES; i-- > 0;)
		list_push(pool, &c->head, &c->nfree, first + i);
}

enum grow_for { GROW_PAGE, GROW_BLOCK };

/* Whether c has free memory of the kind wanted; a chunk with no single page
 * free but a whole block splits the block when split is set. */
static bool chunk_has_room(struct refpool *pool, struct refpool_chunk *c, enum grow_for want,
			   bool split)
{
	bool room;

	pthread_mutex_lock(&c->lock);
	if (want == GROW_BLOCK) {
		room = c->nblocks;
	} else {
		room = c->nfree;
		if (!room && split && c->nblocks) {
			block_split(pool, c, list_pop(pool, &c->block_head, &c->nblocks));
			room = true;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return room;
}

/*
 * Makes room: 0 if a chunk has free memory of the kind wanted, now or newly
 * created. A single page comes from a free single page, else from a block
 * split for it, else from a new chunk; a block only from a whole free block
 * or a new chunk (single free pages are not gathered back into blocks).
 */
static int pool_grow(struct refpool *pool, enum grow_for want)
{
	int ret = -ENOMEM;
	int64_t empty = -1;

	pthread_mutex_lock(&pool->grow_lock);
	if (atomic_load_explicit(&pool->dying, memory_order_relaxed)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	for (int pass = 0; pass < (want == GROW_PAGE ? 2 : 1); pass++) {
		for (uint32_t i = 0; i < pool->max_chunks; i++) {
			struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
								       memory_order_relaxed);

			if (!c) {
				if (empty < 0)
					empty = i;
				continue;
			}
			if (atomic_load_explicit(&c->dying, memory_order_relaxed))
				continue;
			if (chunk_has_room(pool, c, want, pass == 1)) {
				ret = 0;
				goto out_unlock;
			}
		}
	}
	if (empty >= 0)
		ret = chunk_create(pool, (uint32_t)empty);
out_unlock:
	pthread_mutex_unlock(&pool->grow_lock);
	return ret;
}

/* The pages handed out of chunk c and not freed: exact when the pool is
 * quiet, a snapshot otherwise. The caller holds grow_lock, which the kill
 * takes to unpublish a chunk before freeing it. */
static uint64_t chunk_pages_used(struct refpool *pool, struct refpool_chunk *c)
{
	int64_t used = 0;

	/* relaxed: slot counts are read without their locks, for a report. */
	for (uint32_t s = 0; s < pool->nslots; s++)
		used += atomic_load_explicit(&c->pcpu[s].pages, memory_order_relaxed);
	return used > 0 ? (uint64_t)used : 0;
}

static void peak_raise(struct refpool *pool, uint64_t used)
{
	/* relaxed: a figure for reports, ordered with nothing else. */
	uint64_t peak = atomic_load_explicit(&pool->pages_peak, memory_order_relaxed);

	while (used > peak &&
	       !atomic_compare_exchange_weak_explicit(&pool->pages_peak, &peak, used,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* Counts pages_used into the peak, after an allocation of many pages: a
 * pass over every slot of every chunk, too dear for each single page. */
static void peak_sample(struct refpool *pool)
{
	uint64_t used = 0;

	pthread_mutex_lock(&pool->grow_lock);
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_relaxed);

		if (c)
			used += chunk_pages_used(pool, c);
	}
	pthread_mutex_unlock(&pool->grow_lock);
	peak_raise(pool, used);
}

int refpool_alloc(struct refpool *pool, struct refpool_page **out)
{
	int ret;

	for (;;) {
		if (!alloc_from_slot(pool, out))
			return 0;
		/* relaxed: only a shortcut; the grow lock decides. */
		if (atomic_load_explicit(&pool->dying, memory_order_relaxed))
			return -ENODEV;
		if (drain_all_slots(pool))
			continue;
		ret = pool_grow(pool, GROW_PAGE);
		if (ret)
			return ret;
	}
}

/* Takes a free block off some chunk and counts its pages, or false. */
static bool alloc_block_from_chunks(struct refpool *pool, struct refpool_page **first)
{
	struct refpool_slot *slot;
	uint32_t index;
	bool got = false;

	/* With our slot locked no chunk can start dying under us (the kill
	 * marks chunks with every slot locked), and the chunk references the
	 * pages take are counted in our slot, as for single pages. */
	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	for (uint32_t i = 0; i < pool->max_chunks && !got; i++) {
		/* acquire: pairs with the release that published the chunk. */
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_acquire);
		uint32_t head = REFPOOL_NO_PFN;

		if (!c || chunk_dying(c))
			continue;
		pthread_mutex_lock(&c->lock);
		if (c->nblocks)
			head = list_pop(pool, &c->block_head, &c->nblocks);
		pthread_mutex_unlock(&c->lock);
		if (head == REFPOOL_NO_PFN)
			continue;
		for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++) {
			if (page_take(pool, c, index, head + p))
				continue;
			/* A counted page in a free block: reported; the block
			 * stays off the lists with what it holds, rather than
			 * be handed out twice. Undo the pages taken. */
			for (uint32_t q = 0; q < p; q++) {
				atomic_store_explicit(&pool->pages[head + q].refcount, 0,
						      memory_order_relaxed);
				pcpu_add(c, index, -1);
			}
			head = REFPOOL_NO_PFN;
			break;
		}
		if (head != REFPOOL_NO_PFN) {
			*first = &pool->pages[head];
			got = true;
		}
	}
	spin_unlock(&slot->lock);
	return got;
}

int refpool_alloc_block(struct refpool *pool, struct refpool_page **first)
{
	int ret;

	for (;;) {
		if (alloc_block_from_chunks(pool, first))
			break;
		ret = pool_grow(pool, GROW_BLOCK);
		if (ret)
			return ret;
	}
	peak_sample(pool);
	return 0;
}

/* ---- owners ---- */

int refpool_reserve(struct refpool *pool, uint64_t npages)
{
	uint64_t have = 0;
	int ret = 0;

	pthread_mutex_lock(&pool->grow_lock);
	for (uint32_t i = 0; i < pool->max_chunks && have < npages && !ret; i++) {
		if (atomic_load_explicit(&pool->dying, memory_order_relaxed))
			ret = -ENODEV;
		else if (!atomic_load_explicit(&pool->chunks[i], memory_order_relaxed))
			ret = chunk_create(pool, i);
		have += pool->chunk_pages;
	}
	pthread_mutex_unlock(&pool->grow_lock);
	return ret ? ret : have < npages ? -ENOMEM : 0;
}

bool refpool_block_free(struct refpool *pool, uint32_t first)
{
	/* acquire: pairs with the release that published the chunk. */
	const struct refpool_chunk *c =
		first < (uint64_t)pool->max_chunks * pool->chunk_pages
			? atomic_load_explicit(&pool->chunks[first / pool->chunk_pages],
					       memory_order_acquire)
			: NULL;

	/* relaxed: a snapshot; the caller orders itself against adoption. */
	if (!c || chunk_dying(c) ||
	    atomic_load_explicit(&pool->blocks[first / REFPOOL_BLOCK_PAGES].owner,
				 memory_order_relaxed))
		return false;
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		if (atomic_load_explicit(&pool->pages[first + p].refcount, memory_order_relaxed))
			return false;
	return true;
}

static struct refpool_block *block_of(struct refpool *pool, uint32_t pfn)
{
	return &pool->blocks[pfn / REFPOOL_BLOCK_PAGES];
}

static struct refpool_owner *block_owner(struct refpool *pool, uint32_t pfn)
{
	/* relaxed: the owner was stored before the block's pages were counted
	 * (release) and is cleared only once all of them are listed again, so
	 * a caller whose reference (acquire) or final put (acq_rel) on a page
	 * of the block is ordered after that count sees the right owner. */
	return atomic_load_explicit(&block_of(pool, pfn)->owner, memory_order_relaxed);
}

/* The owner's list of blocks with free pages; the caller holds o->lock. */
static void partial_add(struct refpool *pool, struct refpool_owner *o, uint32_t b)
{
	pool->blocks[b].prev = REFPOOL_NO_BLOCK;
	pool->blocks[b].next = o->partial;
	if (o->partial != REFPOOL_NO_BLOCK)
		pool->blocks[o->partial].prev = b;
	o->partial = b;
}

static void partial_del(struct refpool *pool, struct refpool_owner *o, uint32_t b)
{
	struct refpool_block *blk = &pool->blocks[b];

	if (blk->prev != REFPOOL_NO_BLOCK)
		pool->blocks[blk->prev].next = blk->next;
	else
		o->partial = blk->next;
	if (blk->next != REFPOOL_NO_BLOCK)
		pool->blocks[blk->next].prev = blk->prev;
}

static void owner_unref(struct refpool_owner *o)
{
	struct refpool *pool = o->pool;

	/* acq_rel: whoever frees the owner sees everything the other holders
	 * did with it under their references. */
	if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (pool->ops->owner_gone)
		pool->ops->owner_gone(pool, o->arg, pool->arg);
	pthread_mutex_destroy(&o->lock);
	free(o);
}

/*
 * Drops nrefs chunk references and, unless first is REFPOOL_NO_PFN, gives the
 * free block at first back to the chunk before them: the references keep the
 * teardown waiting while the block is on no list, so that its audit finds
 * every page listed.
 */
static void chunk_give_back(struct refpool *pool, struct refpool_chunk *c, uint32_t first,
			    uint32_t nrefs)
{
	struct refpool_slot *slot;
	uint32_t index;

	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	if (!chunk_dying(c)) {
		if (first != REFPOOL_NO_PFN) {
			pthread_mutex_lock(&c->lock);
			list_push(pool, &c->block_head, &c->nblocks, first);
			pthread_mutex_unlock(&c->lock);
		}
		pcpu_add(c, index, -(int64_t)nrefs);
		spin_unlock(&slot->lock);
		return;
	}
	spin_unlock(&slot->lock);
	/* Dying: the teardown split the chunk's blocks and counts single
	 * pages only; see chunk_free_dying() for why c is safe to the end. */
	pthread_mutex_lock(&c->lock);
	if (first != REFPOOL_NO_PFN)
		block_split(pool, c, first);
	c->live -= nrefs;
	if (c->live == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
}

/* How many free blocks an adoption looks at for one its owner prefers: the
 * search must stay cheap when the owner has none left. */
#define PREFER_SCAN 64

/* Unlinks from c's free blocks (c->lock held) the first of the next *budget
 * that o's owner prefers, or REFPOOL_NO_PFN; *budget counts what was seen. */
static uint32_t chunk_take_preferred(struct refpool *pool, struct refpool_chunk *c,
				     const struct refpool_owner *o, uint32_t *budget)
{
	uint32_t prev = REFPOOL_NO_PFN;

	for (uint32_t pfn = c->block_head; pfn != REFPOOL_NO_PFN && *budget;
	     prev = pfn, pfn = pool->pages[pfn].next, (*budget)--) {
		if (!pool->ops->prefers_block(pool, pfn, o->arg, pool->arg))
			continue;
		if (prev == REFPOOL_NO_PFN)
			c->block_head = pool->pages[pfn].next;
		else
			pool->pages[prev].next = pool->pages[pfn].next;
		c->nblocks--;
		return pfn;
	}
	return REFPOOL_NO_PFN;
}

/*
 * Takes a whole free block off a live chunk, with nrefs chunk references for
 * the pages the caller will hand out of it: they pin the chunk while the block
 * is on no list, as a page in use would. One that o's owner prefers comes
 * first, if the first few free blocks hold one. REFPOOL_NO_PFN when there is
 * none.
 */
static uint32_t chunks_pop_block(struct refpool *pool, const struct refpool_owner *o,
				 uint32_t nrefs, struct refpool_chunk **chunk)
{
	uint32_t first = REFPOOL_NO_PFN, index;
	struct refpool_slot *slot;

	/* The slot lock orders the pop against the kill's marking: the
	 * references land in a slot count before it folds them, or we see the
	 * chunk dying. */
	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	for (int pass = pool->ops->prefers_block ? 0 : 1; pass < 2; pass++) {
		uint32_t budget = PREFER_SCAN;

		for (uint32_t i = 0; i < pool->max_chunks && first == REFPOOL_NO_PFN; i++) {
			/* acquire: pairs with the release that published the chunk. */
			struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
								       memory_order_acquire);

			if (!c || chunk_dying(c))
				continue;
			pthread_mutex_lock(&c->lock);
			if (pass == 0)
				first = chunk_take_preferred(pool, c, o, &budget);
			else if (c->nblocks)
				first = list_pop(pool, &c->block_head, &c->nblocks);
			pthread_mutex_unlock(&c->lock);
			if (first != REFPOOL_NO_PFN) {
				pcpu_add(c, index, nrefs);
				*chunk = c;
			}
		}
		if (first != REFPOOL_NO_PFN)
			break;
	}
	spin_unlock(&slot->lock);
	return first;
}

/* Counts the first n pages of a block off every list, or none of them. */
static bool block_count_first(struct refpool *pool, uint32_t first, uint32_t n)
{
	for (uint32_t p = 0; p < n; p++) {
		if (page_count_first(pool, first + p))
			continue;
		/* A counted page in a free block: reported. Undo the others. */
		for (uint32_t q = 0; q < p; q++)
			atomic_store_explicit(&pool->pages[first + q].refcount, 0,
					      memory_order_relaxed);
		return false;
	}
	return true;
}

/*
 * Makes the adopted block at first o's and counts its first n pages, whose
 * chunk references the caller took. -ENODEV if the teardown began meanwhile,
 * -EUCLEAN if a page of it was counted (reported; the block stays off the
 * lists, as refpool_alloc_block() leaves such a block).
 */
static int owner_install(struct refpool *pool, struct refpool_owner *o,
			 struct refpool_chunk *c, uint32_t first, uint32_t n)
{
	struct refpool_block *blk = block_of(pool, first);
	uint32_t head = REFPOOL_NO_PFN, nfree = 0, index;
	struct refpool_slot *slot;
	int ret = 0;

	/* On no list, the block's links are ours to write without a lock. */
	for (uint32_t p = REFPOOL_BLOCK_PAGES; p-- > n;)
		list_push(pool, &head, &nfree, first + p);

	pthread_mutex_lock(&o->lock);
	/* As in chunks_pop_block(): under a slot lock the pages are counted
	 * before the kill marks the chunk, so its evictions find them, or we
	 * see it dying and hand nothing out. */
	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	if (chunk_dying(c)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	atomic_store_explicit(&blk->owner, o, memory_order_relaxed);
	if (!block_count_first(pool, first, n)) {
		atomic_store_explicit(&blk->owner, NULL, memory_order_relaxed);
		ret = -EUCLEAN;
		goto out_unlock;
	}
	blk->head = head;
	blk->nfree = nfree;
	spin_unlock(&slot->lock);
	if (nfree)
		partial_add(pool, o, (uint32_t)(blk - pool->blocks));
	atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&o->lock);
	return 0;

out_unlock:
	spin_unlock(&slot->lock);
	pthread_mutex_unlock(&o->lock);
	return ret;
}

/* Adopts a whole free block for o and hands out its first n pages. */
static int owner_adopt(struct refpool *pool, struct refpool_owner *o, uint32_t n,
		       struct refpool_page **out)
{
	struct refpool_chunk *c = NULL;
	uint32_t first;
	int ret;

	while ((first = chunks_pop_block(pool, o, n, &c)) == REFPOOL_NO_PFN) {
		ret = pool_grow(pool, GROW_BLOCK);
		if (ret)
			return ret;
	}
	if (pool->ops->adopt_block) {
		ret = pool->ops->adopt_block(pool, first, o->arg, pool->arg);
		if (ret)
			goto err_give_back;
	}
	ret = owner_install(pool, o, c, first, n);
	if (ret)
		goto err_release;
	*out = &pool->pages[first];
	return 0;

err_release:
	if (pool->ops->release_block)
		pool->ops->release_block(pool, first, o->arg, pool->arg);
	if (ret == -EUCLEAN)
		first = REFPOOL_NO_PFN;	/* the block stays off the lists */
err_give_back:
	chunk_give_back(pool, c, first, n);
	return ret;
}

/* Hands out a free page of one of o's blocks: 0, -EAGAIN when o has none, or
 * -ENODEV when the pool is being killed. Caller holds o->lock. */
static int owner_take_page(struct refpool *pool, struct refpool_owner *o,
			   struct refpool_page **out)
{
	while (o->partial != REFPOOL_NO_BLOCK) {
		const uint32_t b = o->partial;
		struct refpool_block *blk = &pool->blocks[b];
		struct refpool_chunk *c = pool_chunk_of(pool, b * REFPOOL_BLOCK_PAGES);
		struct refpool_slot *slot;
		uint32_t index, pfn;
		bool counted;

		/* The kill marks every chunk at once: one dying is all dying. */
		slot = my_slot(pool, &index);
		spin_lock(&slot->lock);
		if (chunk_dying(c)) {
			spin_unlock(&slot->lock);
			return -ENODEV;
		}
		pfn = list_pop(pool, &blk->head, &blk->nfree);
		counted = page_count_first(pool, pfn);
		if (counted)
			pcpu_add(c, index, 1);
		spin_unlock(&slot->lock);
		if (!blk->nfree)
			partial_del(pool, o, b);
		if (counted) {
			*out = &pool->pages[pfn];
			return 0;
		}
		/* A counted page on the owner's list: reported; it stays off
		 * the list until whoever counts it puts it. */
	}
	return -EAGAIN;
}

/* Lists a freed page on o's list; true when that made its block whole and
 * the block is o's no more. Caller holds o->lock. */
static bool owner_list_page(struct refpool *pool, struct refpool_owner *o, uint32_t pfn)
{
	const uint32_t b = pfn / REFPOOL_BLOCK_PAGES;
	struct refpool_block *blk = &pool->blocks[b];

	list_push(pool, &blk->head, &blk->nfree, pfn);
	if (blk->nfree == 1)
		partial_add(pool, o, b);
	if (blk->nfree < REFPOOL_BLOCK_PAGES)
		return false;
	partial_del(pool, o, b);
	blk->head = REFPOOL_NO_PFN;
	blk->nfree = 0;
	atomic_store_explicit(&blk->owner, NULL, memory_order_relaxed);
	return true;
}

/*
 * The end of the 1->0 transition for the pages of o's block at first that are
 * set in freed: list them on o's list, release the block if that made it
 * whole, then drop their chunk references.
 */
static void owner_free_pages(struct refpool *pool, struct refpool_owner *o, uint32_t first,
			     const uint64_t *freed, uint32_t nfreed)
{
	struct refpool_chunk *c = pool_chunk_of(pool, first);
	bool whole = false;

	pthread_mutex_lock(&o->lock);
	for (uint32_t w = 0; w < REFPOOL_BLOCK_PAGES / 64; w++)
		for (uint64_t bits = freed[w]; bits; bits &= bits - 1)
			whole |= owner_list_page(pool, o, first + w * 64 +
							      (uint32_t)__builtin_ctzll(bits));
	pthread_mutex_unlock(&o->lock);
	if (!whole) {
		chunk_give_back(pool, c, REFPOOL_NO_PFN, nfreed);
		return;
	}
	/* No one else can reach the block now: its pages are free and on no
	 * list, and our chunk references keep the chunk and the teardown
	 * waiting until it is listed again. The block's reference keeps o;
	 * it goes before the chunk references, so that a kill that returns has
	 * seen the owner go too, and no callback runs on a pool torn down. */
	if (pool->ops->release_block)
		pool->ops->release_block(pool, first, o->arg, pool->arg);
	owner_unref(o);
	chunk_give_back(pool, c, first, nfreed);
}

static void owner_free_page(struct refpool *pool, struct refpool_owner *o, uint32_t pfn)
{
	uint64_t freed[REFPOOL_BLOCK_PAGES / 64] = { 0 };
	const uint32_t p = pfn % REFPOOL_BLOCK_PAGES;

	freed[p / 64] = 1ull << (p % 64);
	owner_free_pages(pool, o, pfn - p, freed, 1);
}

int refpool_owner_create(struct refpool *pool, void *owner_arg, struct refpool_owner **out)
{
	struct refpool_owner *o;

	/* relaxed: only a courtesy; allocations check the chunks. */
	if (atomic_load_explicit(&pool->dying, memory_order_relaxed))
		return -ENODEV;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->pool = pool;
	o->arg = owner_arg;
	atomic_init(&o->refs, 1);
	pthread_mutex_init(&o->lock, NULL);
	o->partial = REFPOOL_NO_BLOCK;
	*out = o;
	return 0;
}

void refpool_owner_put(struct refpool_owner *owner)
{
	if (owner)
		owner_unref(owner);
}

int refpool_alloc_owned(struct refpool *pool, struct refpool_owner *owner,
			struct refpool_page **out)
{
	int ret;

	if (owner->pool != pool)
		return -EINVAL;
	pthread_mutex_lock(&owner->lock);
	ret = owner_take_page(pool, owner, out);
	pthread_mutex_unlock(&owner->lock);
	/* Not holding the lock from here on: adoption runs an op, and puts of
	 * the owner's pages meanwhile need the lock. Two threads of one owner
	 * may adopt a block each; the spare pages serve later allocations. */
	if (ret != -EAGAIN)
		return ret;
	return owner_adopt(pool, owner, 1, out);
}

int refpool_alloc_owned_many(struct refpool *pool, struct refpool_owner *owner, uint32_t n,
			     struct refpool_page **out)
{
	uint32_t got = 0;
	int ret = 0;

	if (owner->pool != pool)
		return -EINVAL;
	while (got < n) {
		pthread_mutex_lock(&owner->lock);
		while (got < n && !(ret = owner_take_page(pool, owner, &out[got])))
			got++;
		pthread_mutex_unlock(&owner->lock);
		if (got == n || ret != -EAGAIN)
			break;
		/* As refpool_alloc_owned(): adoption outside the lock. */
		ret = owner_adopt(pool, owner, 1, &out[got]);
		if (ret)
			break;
		got++;
	}
	if (!got)
		return ret;
	peak_sample(pool);
	return (int)got;
}

int refpool_alloc_block_owned(struct refpool *pool, struct refpool_owner *owner,
			      struct refpool_page **first)
{
	int ret;

	if (owner->pool != pool)
		return -EINVAL;
	/* An owner never keeps a whole free block: it is released when whole. */
	ret = owner_adopt(pool, owner, REFPOOL_BLOCK_PAGES, first);
	if (!ret)
		peak_sample(pool);
	return ret;
}

void refpool_get(struct refpool *pool, struct refpool_page *page)
{
	/* relaxed: the caller's own reference keeps the page alive and orders
	 * everything it did before; a new reference needs no more. */
	uint32_t old = atomic_fetch_add_explicit(&page->refcount, 1, memory_order_relaxed);

	if (pool_debug(pool) && old == 0) {
		/* Undo it: a free page must not stay counted. */
		atomic_fetch_sub_explicit(&page->refcount, 1, memory_order_relaxed);
		refpool_report(pool, REFPOOL_BUG_GET_FREE, pool_pfn(pool, page), 0, "get");
	}
}

bool refpool_get_unless_zero(struct refpool *pool, struct refpool_page *page)
{
	uint32_t count = atomic_load_explicit(&page->refcount, memory_order_relaxed);

	(void)pool;
	do {
		if (count == 0)
			return false;
		/* acquire on success: what the holders wrote before their
		 * releases (owner word, device memory) is visible to us. */
	} while (!atomic_compare_exchange_weak_explicit(&page->refcount, &count, count + 1,
							memory_order_acquire, memory_order_relaxed));
	return true;
}

/* true when this put was the 1->0 transition. */
static bool page_drop(struct refpool *pool, struct refpool_page *page)
{
	uint32_t count;

	if (!pool_debug(pool)) {
		/* acq_rel: release so our writes to the page happen before its
		 * reuse; acquire so the free path sees every other holder's
		 * writes (a fence would do on the last put only, but TSan does
		 * not model fences). */
		return atomic_fetch_sub_explicit(&page->refcount, 1, memory_order_acq_rel) == 1;
	}
	count = atomic_load_explicit(&page->refcount, memory_order_relaxed);
	do {
		if (count == 0) {
			uint32_t pfn = pool_pfn(pool, page);
			uint8_t st = atomic_load_explicit(&pool->dbg[pfn], memory_order_relaxed);

			refpool_report(pool, st == DBG_NEVER_USED ? REFPOOL_BUG_PUT_FREE
								  : REFPOOL_BUG_DOUBLE_PUT,
				       pfn, 0, "put");
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(&page->refcount, &count, count - 1,
							memory_order_acq_rel, memory_order_relaxed));
	return count == 1;
}

/* One put: true when it freed the page, whose memory type's part of the 1->0
 * transition has then run; the caller lists the page. */
static bool page_put_last(struct refpool *pool, struct refpool_page *page)
{
	if (!page_drop(pool, page))
		return false;
	pool->type->free_page(pool, page);
	if (pool_debug(pool))
		refpool_dbg_set(pool, pool_pfn(pool, page), DBG_FREE);
	return true;
}

/* A dying chunk's page goes straight to its list, and its reference to the
 * single counter the teardown waits on. */
static void chunk_free_dying(struct refpool *pool, struct refpool_chunk *c, uint32_t pfn)
{
	pthread_mutex_lock(&c->lock);
	list_push(pool, &c->head, &c->nfree, pfn);
	if (--c->live == 0)
		pthread_cond_broadcast(&c->idle);
	/* The teardown frees c only after taking this lock with live at 0,
	 * so nothing touches c after the unlock. */
	pthread_mutex_unlock(&c->lock);
}

void refpool_put(struct refpool *pool, struct refpool_page *page)
{
	uint32_t pfn = pool_pfn(pool, page);
	struct refpool_chunk *c = pool_chunk_of(pool, pfn);
	struct refpool_owner *o;
	struct refpool_slot *slot;
	uint32_t index;

	if (!page_put_last(pool, page))
		return;
	o = block_owner(pool, pfn);
	if (o) {
		owner_free_page(pool, o, pfn);
		return;
	}

	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	if (!chunk_dying(c)) {
		/* List first, then the chunk reference: the order of the
		 * contract, though under the slot lock no one can tell. */
		list_push(pool, &slot->head, &slot->nfree, pfn);
		pcpu_add(c, index, -1);
		if (slot->nfree > SLOT_HIGH)
			slot_spill(pool, slot, SLOT_BATCH);
		spin_unlock(&slot->lock);
		return;
	}
	spin_unlock(&slot->lock);
	chunk_free_dying(pool, c, pfn);
}

/* The pages of one owned block that a run's puts freed, listed at once. */
struct freed_run {
	struct refpool_owner *owner;
	uint32_t first;		/* the block's first pfn */
	uint32_t n;
	uint64_t bits[REFPOOL_BLOCK_PAGES / 64];
};

static void freed_run_flush(struct refpool *pool, struct freed_run *r)
{
	if (r->n)
		owner_free_pages(pool, r->owner, r->first, r->bits, r->n);
	memset(r, 0, sizeof(*r));
}

void refpool_put_run(struct refpool *pool, struct refpool_page *first, uint32_t n)
{
	struct freed_run run = { 0 };

	for (uint32_t i = 0; i < n; i++) {
		struct refpool_page *page = first + i;
		const uint32_t pfn = pool_pfn(pool, page), head = pfn & ~(REFPOOL_BLOCK_PAGES - 1);
		struct refpool_owner *o = block_owner(pool, pfn);

		if (!o) {
			refpool_put(pool, page);
			continue;
		}
		if (!page_put_last(pool, page))
			continue;
		if (run.n && (run.owner != o || run.first != head))
			freed_run_flush(pool, &run);
		run.owner = o;
		run.first = head;
		run.bits[(pfn - head) / 64] |= 1ull << ((pfn - head) % 64);
		run.n++;
	}
	freed_run_flush(pool, &run);
}

void refpool_put_block(struct refpool *pool, struct refpool_page *first)
{
	const uint32_t head = pool_pfn(pool, first);
	struct refpool_chunk *c = pool_chunk_of(pool, head);
	uint64_t freed[REFPOOL_BLOCK_PAGES / 64] = { 0 };
	struct refpool_owner *o;
	struct refpool_slot *slot;
	uint32_t nfreed = 0, index;

	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++) {
		if (!page_put_last(pool, &pool->pages[head + p]))
			continue;
		freed[p / 64] |= 1ull << (p % 64);
		nfreed++;
	}
	if (!nfreed)
		return;
	o = block_owner(pool, head);
	if (o) {
		owner_free_pages(pool, o, head, freed, nfreed);
		return;
	}

	slot = my_slot(pool, &index);
	spin_lock(&slot->lock);
	if (!chunk_dying(c)) {
		if (nfreed == REFPOOL_BLOCK_PAGES) {
			/* Whole again: back on the block list, then the
			 * chunk references, as for a single page. */
			pthread_mutex_lock(&c->lock);
			list_push(pool, &c->block_head, &c->nblocks, head);
			pthread_mutex_unlock(&c->lock);
			pcpu_add(c, index, -(int64_t)REFPOOL_BLOCK_PAGES);
		} else {
			for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++) {
				if (!(freed[p / 64] & (1ull << (p % 64))))
					continue;
				list_push(pool, &slot->head, &slot->nfree, head + p);
				pcpu_add(c, index, -1);
			}
			while (slot->nfree > SLOT_HIGH)
				slot_spill(pool, slot, SLOT_BATCH);
		}
		spin_unlock(&slot->lock);
		return;
	}
	spin_unlock(&slot->lock);
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		if (freed[p / 64] & (1ull << (p % 64)))
			chunk_free_dying(pool, c, head + p);
}

/* ---- lookups ---- */

struct refpool_page *refpool_pfn_to_page(struct refpool *pool, uint32_t pfn)
{
	if (pfn >= pool->max_chunks * pool->chunk_pages)
		return NULL;
	/* acquire: the chunk's metadata is initialised before it is published;
	 * it is unmapped only a grace period after being unpublished. */
	if (!atomic_load_explicit(&pool->chunks[pfn / pool->chunk_pages], memory_order_acquire))
		return NULL;
	return &pool->pages[pfn];
}

uint32_t refpool_page_to_pfn(const struct refpool *pool, const struct refpool_page *page)
{
	return pool_pfn(pool, page);
}

void *refpool_page_mem(const struct refpool *pool, const struct refpool_page *page)
{
	return pool->mem + ((size_t)pool_pfn(pool, page) << REFPOOL_PAGE_SHIFT);
}

/* ---- chunks ---- */

static int chunk_create(struct refpool *pool, uint32_t index)
{
	uint32_t first = index * pool->chunk_pages;
	struct refpool_chunk *c;
	char name[48];
	int ret;

	c = aligned_alloc(ZDEV_CACHELINE, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->pcpu = aligned_alloc(ZDEV_CACHELINE, pool->nslots * sizeof(*c->pcpu));
	if (!c->pcpu) {
		ret = -ENOMEM;
		goto err_free_chunk;
	}
	for (uint32_t i = 0; i < pool->nslots; i++)
		atomic_init(&c->pcpu[i].pages, 0);

	ret = vmres_commit_anon(&pool->pages[first], meta_len(pool->chunk_pages));
	if (ret)
		goto err_free_pcpu;
	snprintf(name, sizeof(name), "zdev-%s-chunk%u", pool->name, index);
	ret = devmem_map(pool->mem + ((size_t)first << REFPOOL_PAGE_SHIFT),
			      (size_t)pool->chunk_pages << REFPOOL_PAGE_SHIFT, pool->node, name);
	if (ret < 0)
		goto err_give_back_meta;
	c->memfd = ret;

	c->index = index;
	c->first_pfn = first;
	atomic_init(&c->dying, false);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	/* Whole blocks, listed so that the lowest comes out first; single
	 * pages are split off them on demand. */
	c->head = REFPOOL_NO_PFN;
	c->block_head = REFPOOL_NO_PFN;
	for (uint32_t i = pool->chunk_pages / REFPOOL_BLOCK_PAGES; i-- > 0;)
		list_push(pool, &c->block_head, &c->nblocks, first + i * REFPOOL_BLOCK_PAGES);
	/* The base reference of the percpu_ref: it keeps live above zero while
	 * the teardown folds the slot counts in. */
	c->live = 1;

	/* release: lists, lock and metadata are initialised before any thread
	 * can find the chunk. */
	atomic_store_explicit(&pool->chunks[index], c, memory_order_release);
	log_dbg("%s: chunk %u: %u pages on node %d", pool->name, index, pool->chunk_pages,
		 pool->node);
	return 0;

err_give_back_meta:
	vmres_give_back(&pool->pages[first], meta_len(pool->chunk_pages));
err_free_pcpu:
	free(c->pcpu);
err_free_chunk:
	free(c);
	return ret;
}

static void chunk_destroy(struct refpool *pool, struct refpool_chunk *c)
{
	devmem_unmap(pool->mem + ((size_t)c->first_pfn << REFPOOL_PAGE_SHIFT),
			  (size_t)pool->chunk_pages << REFPOOL_PAGE_SHIFT, c->memfd);
	vmres_give_back(&pool->pages[c->first_pfn], meta_len(pool->chunk_pages));
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c->pcpu);
	free(c);
}

/* Marks every chunk dying, empties the slots into the chunk lists and folds
 * the slot counts into each chunk's counter, all with every slot locked. */
static void kill_mark_and_fold(struct refpool *pool)
{
	for (uint32_t s = 0; s < pool->nslots; s++)
		spin_lock(&pool->slots[s].lock);

	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_relaxed);

		if (c)
			atomic_store_explicit(&c->dying, true, memory_order_relaxed);
	}
	for (uint32_t s = 0; s < pool->nslots; s++)
		slot_spill(pool, &pool->slots[s], UINT32_MAX);
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_relaxed);

		/* A dying chunk keeps single pages only: what it frees from
		 * now on, and what the audit counts. */
		if (!c)
			continue;
		pthread_mutex_lock(&c->lock);
		while (c->nblocks)
			block_split(pool, c, list_pop(pool, &c->block_head, &c->nblocks));
		pthread_mutex_unlock(&c->lock);
	}
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_relaxed);
		int64_t sum = 0;

		if (!c)
			continue;
		for (uint32_t s = 0; s < pool->nslots; s++) {
			sum += atomic_load_explicit(&c->pcpu[s].pages, memory_order_relaxed);
			atomic_store_explicit(&c->pcpu[s].pages, 0, memory_order_relaxed);
		}
		pthread_mutex_lock(&c->lock);
		c->live += sum - 1;	/* the slot counts in, the base reference out */
		pthread_mutex_unlock(&c->lock);
	}

	for (uint32_t s = pool->nslots; s-- > 0;)
		spin_unlock(&pool->slots[s].lock);
}

static void chunk_evict_all(struct refpool *pool, struct refpool_chunk *c)
{
	for (uint32_t pfn = c->first_pfn; pfn < c->first_pfn + pool->chunk_pages; pfn++) {
		struct refpool_page *page = &pool->pages[pfn];

		/* Our own reference keeps the page from being freed and reused
		 * under the callback; the put below may be the final one. */
		if (!refpool_get_unless_zero(pool, page))
			continue;
		pool->ops->evict(pool, page, pool->arg);
		refpool_put(pool, page);
	}
}

static void chunk_wait_idle(struct refpool_chunk *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->live)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

int refpool_kill(struct refpool *pool)
{
	struct refpool_chunk *retired = NULL, *c;

	/* The grow lock is held only to mark and to unpublish: an allocator
	 * that is waiting for it may hold pages the wait below needs back. */
	pthread_mutex_lock(&pool->grow_lock);
	if (atomic_load_explicit(&pool->dying, memory_order_relaxed)) {
		pthread_mutex_unlock(&pool->grow_lock);
		return -EALREADY;
	}
	atomic_store_explicit(&pool->dying, true, memory_order_relaxed);
	kill_mark_and_fold(pool);
	pthread_mutex_unlock(&pool->grow_lock);

	/* No chunk can appear or go away now: the table is ours to walk. */
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		c = atomic_load_explicit(&pool->chunks[i], memory_order_relaxed);
		if (c)
			chunk_evict_all(pool, c);
	}
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		c = atomic_load_explicit(&pool->chunks[i], memory_order_relaxed);
		if (!c)
			continue;
		chunk_wait_idle(c);
		if (pool_debug(pool))
			refpool_dbg_audit_chunk(pool, c);
	}

	pthread_mutex_lock(&pool->grow_lock);
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		c = atomic_load_explicit(&pool->chunks[i], memory_order_relaxed);
		if (!c)
			continue;
		atomic_store_explicit(&pool->chunks[i], NULL, memory_order_relaxed);
		c->retired_next = retired;
		retired = c;
	}
	pthread_mutex_unlock(&pool->grow_lock);

	/* A lookup that found a chunk before it was unpublished may still be
	 * reading its metadata; after the grace period none can be. */
	urcu_memb_synchronize_rcu();

	while (retired) {
		c = retired;
		retired = c->retired_next;
		chunk_destroy(pool, c);
	}
	return 0;
}

/* ---- the pool ---- */

static int check_config(const struct refpool_config *cfg)
{
	if (!cfg->ops || !cfg->ops->evict)
		return -EINVAL;
	if (!cfg->chunk_bytes || cfg->chunk_bytes % CHUNK_ALIGN ||
	    (cfg->chunk_bytes >> REFPOOL_PAGE_SHIFT) > (1ul << 31))
		return -EINVAL;
	if (cfg->limit_bytes < cfg->chunk_bytes ||
	    (cfg->limit_bytes >> REFPOOL_PAGE_SHIFT) >= REFPOOL_NO_PFN)
		return -EINVAL;
	if (cfg->flags & ~REFPOOL_DEBUG)
		return -EINVAL;
	switch (cfg->type) {
	case REFPOOL_MEMTYPE_PRIVATE:
	case REFPOOL_MEMTYPE_COHERENT:
		return 0;
	default:
		return -EINVAL;
	}
}

int refpool_create(const struct refpool_config *cfg, struct refpool **out)
{
	struct refpool *pool;
	size_t max_pages;
	int ret;

	ret = check_config(cfg);
	if (ret)
		return ret;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	snprintf(pool->name, sizeof(pool->name), "%s", cfg->name ? cfg->name : "pool");
	pool->type = cfg->type == REFPOOL_MEMTYPE_COHERENT ? &refpool_memtype_coherent
							  : &refpool_memtype_private;
	pool->ops = cfg->ops;
	pool->arg = cfg->arg;
	pool->flags = cfg->flags;
	pool->chunk_pages = (uint32_t)(cfg->chunk_bytes >> REFPOOL_PAGE_SHIFT);
	pool->max_chunks = (uint32_t)(cfg->limit_bytes / cfg->chunk_bytes);
	pool->nslots = get_nprocs_conf() > 0 ? (uint32_t)get_nprocs_conf() : 1;
	max_pages = (size_t)pool->max_chunks * pool->chunk_pages;

	ret = numa_place_resolve(cfg->node);
	if (ret < 0)
		goto err_free_pool;
	pool->node = ret;

	ret = vmres_reserve(meta_len(max_pages), (void **)&pool->pages);
	if (ret)
		goto err_free_pool;
	ret = vmres_reserve(max_pages << REFPOOL_PAGE_SHIFT, (void **)&pool->mem);
	if (ret)
		goto err_unreserve_pages;
	ret = -ENOMEM;
	pool->chunks = calloc(pool->max_chunks, sizeof(*pool->chunks));
	if (!pool->chunks)
		goto err_unreserve_mem;
	pool->blocks = calloc(max_pages / REFPOOL_BLOCK_PAGES, sizeof(*pool->blocks));
	if (!pool->blocks)
		goto err_free_chunks;
	pool->slots = aligned_alloc(ZDEV_CACHELINE, pool->nslots * sizeof(*pool->slots));
	if (!pool->slots)
		goto err_free_blocks;
	for (uint32_t i = 0; i < pool->nslots; i++) {
		spin_init(&pool->slots[i].lock);
		pool->slots[i].head = REFPOOL_NO_PFN;
		pool->slots[i].nfree = 0;
	}
	if (pool_debug(pool)) {
		pool->dbg = calloc(max_pages, sizeof(*pool->dbg));
		if (!pool->dbg)
			goto err_free_slots;
	}
	pthread_mutex_init(&pool->grow_lock, NULL);
	pthread_mutex_init(&pool->violation_lock, NULL);
	atomic_init(&pool->dying, false);
	atomic_init(&pool->pages_peak, 0);
	*out = pool;
	return 0;

err_free_slots:
	free(pool->slots);
err_free_blocks:
	free(pool->blocks);
err_free_chunks:
	free(pool->chunks);
err_unreserve_mem:
	vmres_unreserve(pool->mem, max_pages << REFPOOL_PAGE_SHIFT);
err_unreserve_pages:
	vmres_unreserve(pool->pages, meta_len(max_pages));
err_free_pool:
	free(pool);
	return ret;
}

void refpool_destroy(struct refpool *pool)
{
	size_t max_pages;

	if (!pool)
		return;
	refpool_kill(pool);
	max_pages = (size_t)pool->max_chunks * pool->chunk_pages;
	pthread_mutex_destroy(&pool->violation_lock);
	pthread_mutex_destroy(&pool->grow_lock);
	free((void *)pool->dbg);
	free(pool->slots);
	free(pool->blocks);
	free(pool->chunks);
	vmres_unreserve(pool->mem, max_pages << REFPOOL_PAGE_SHIFT);
	vmres_unreserve(pool->pages, meta_len(max_pages));
	free(pool);
}

void refpool_get_stats(struct refpool *pool, struct refpool_stats *st)
{
	const size_t chunk_meta = meta_len(pool->chunk_pages) + sizeof(struct refpool_chunk) +
				  pool->nslots * sizeof(struct refpool_pcpu_count) +
				  pool->chunk_pages / REFPOOL_BLOCK_PAGES *
					  sizeof(struct refpool_block) +
				  (pool_debug(pool) ? pool->chunk_pages : 0);

	memset(st, 0, sizeof(*st));
	st->limit_pages = (uint64_t)pool->max_chunks * pool->chunk_pages;
	st->violations = atomic_load_explicit(&pool->violations, memory_order_relaxed);
	/* The kill unpublishes chunks under the grow lock before freeing them. */
	pthread_mutex_lock(&pool->grow_lock);
	for (uint32_t i = 0; i < pool->max_chunks; i++) {
		struct refpool_chunk *c = atomic_load_explicit(&pool->chunks[i],
							       memory_order_relaxed);

		if (!c)
			continue;
		st->chunks++;
		st->pages_total += pool->chunk_pages;
		st->pages_used += chunk_pages_used(pool, c);
		st->meta_bytes += chunk_meta;
	}
	pthread_mutex_unlock(&pool->grow_lock);
	peak_raise(pool, st->pages_used);
	st->pages_peak = atomic_load_explicit(&pool->pages_peak, memory_order_relaxed);
}
