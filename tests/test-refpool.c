/* SPDX-License-Identifier: MIT */
/* The page pool's lifecycle contract (docs/lifecycle.md), one test a point. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "pool-helpers.h"
#include "check-run.h"

static uint32_t page_count(struct refpool_page *page)
{
	return atomic_load(&page->refcount);
}

/* The end of a test whose pool must tear down without a violation. */
static void kill_cleanly(struct refpool *pool, struct pool_probe *probe)
{
	ck_assert_int_eq(refpool_kill(pool), 0);
	ck_assert_uint_eq(atomic_load(&probe->violations), 0);
	refpool_destroy(pool);
}

static struct refpool_stats stats_of(struct refpool *pool)
{
	struct refpool_stats st;

	refpool_get_stats(pool, &st);
	return st;
}

START_TEST(test_config_is_checked)
{
	static const struct refpool_ops no_evict = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_config cfg = {
		.type = REFPOOL_MEMTYPE_PRIVATE, .chunk_bytes = CHUNK_2M,
		.limit_bytes = 4 * CHUNK_2M, .node = 0, .ops = pool->ops,
	};
	struct refpool *other = NULL;

	cfg.chunk_bytes = CHUNK_2M + REFPOOL_PAGE_SIZE;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	cfg.chunk_bytes = 0;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	cfg.chunk_bytes = 4 * CHUNK_2M;
	cfg.limit_bytes = CHUNK_2M;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	cfg.limit_bytes = 4 * CHUNK_2M;
	cfg.ops = &no_evict;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	cfg.ops = pool->ops;
	cfg.type = REFPOOL_MEMTYPE_COHERENT;
	ck_assert_int_eq(refpool_create(&cfg, &other), 0);
	refpool_destroy(other);
	other = NULL;
	cfg.type = 77;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	cfg.type = REFPOOL_MEMTYPE_PRIVATE;
	cfg.node = 4096;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	cfg.node = 0;
	cfg.flags = 1u << 7;
	ck_assert_int_eq(refpool_create(&cfg, &other), -EINVAL);
	ck_assert_ptr_null(other);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_chunks_on_demand_up_to_limit)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 3 * CHUNK_2M);
	struct refpool_page **held = calloc(3 * PAGES_2M, sizeof(*held));
	struct refpool_page *extra;

	ck_assert_uint_eq(stats_of(pool).chunks, 0);
	ck_assert_uint_eq(stats_of(pool).limit_pages, 3 * PAGES_2M);
	for (size_t i = 0; i < 3 * PAGES_2M; i++) {
		ck_assert_int_eq(refpool_alloc(pool, &held[i]), 0);
		/* a new chunk exactly when the previous ones are full */
		ck_assert_uint_eq(stats_of(pool).chunks, i / PAGES_2M + 1);
	}
	ck_assert_int_eq(refpool_alloc(pool, &extra), -ENOMEM);
	ck_assert_uint_eq(stats_of(pool).pages_used, 3 * PAGES_2M);
	for (size_t i = 0; i < 3 * PAGES_2M; i++)
		refpool_put(pool, held[i]);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
	free(held);
}
END_TEST

START_TEST(test_alloc_is_the_zero_to_one_transition)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *a, *b;

	ck_assert_int_eq(refpool_alloc(pool, &a), 0);
	ck_assert_uint_eq(page_count(a), 1);
	ck_assert_uint_eq(a->owner, 0);
	ck_assert_uint_eq(stats_of(pool).pages_used, 1);	/* the chunk reference */
	a->owner = 42;
	ck_assert_int_eq(refpool_alloc(pool, &b), 0);
	ck_assert_ptr_ne(a, b);
	ck_assert_uint_eq(stats_of(pool).pages_used, 2);
	refpool_put(pool, a);
	refpool_put(pool, b);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_free_page_has_count_zero_and_is_listed)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *a, *again;

	ck_assert_int_eq(refpool_alloc(pool, &a), 0);
	a->owner = 7;
	refpool_put(pool, a);
	ck_assert_uint_eq(page_count(a), 0);
	ck_assert_uint_eq(a->owner, 0);		/* the free hook cleared it */
	ck_assert_uint_eq(atomic_load(&probe.frees), 1);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	/* Listed at once: the LIFO hands the same page out next, at 1 again,
	 * and nothing reset it behind the allocator's back. */
	ck_assert_int_eq(refpool_alloc(pool, &again), 0);
	ck_assert_ptr_eq(again, a);
	ck_assert_uint_eq(page_count(again), 1);
	refpool_put(pool, again);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
}
END_TEST

struct free_order_ctx {
	struct refpool_page *freeing;
	struct refpool_page *allocated_in_hook;
	uint32_t count_in_hook;
	uint64_t used_in_hook;
	int alloc_ret;
};

static void check_order_in_free_hook(struct refpool *pool, struct refpool_page *page, void *arg)
{
	struct free_order_ctx *ctx = arg;
	struct refpool_stats st;

	ck_assert_ptr_eq(page, ctx->freeing);
	ctx->count_in_hook = page_count(page);
	refpool_get_stats(pool, &st);
	ctx->used_in_hook = st.pages_used;
	/* The page is not on a free list yet: an allocation now cannot get it. */
	ctx->alloc_ret = refpool_alloc(pool, &ctx->allocated_in_hook);
}

START_TEST(test_final_put_frees_then_lists_then_drops_chunk_ref)
{
	struct free_order_ctx ctx = { 0 };
	struct pool_probe probe = { .on_free = check_order_in_free_hook, .ctx = &ctx };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page, *next;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	ctx.freeing = page;
	refpool_put(pool, page);
	ck_assert_uint_eq(ctx.count_in_hook, 0);
	ck_assert_uint_eq(ctx.used_in_hook, 1);	/* its chunk reference is still held */
	ck_assert_int_eq(ctx.alloc_ret, 0);
	ck_assert_ptr_ne(ctx.allocated_in_hook, page);
	/* After the put: listed, and the chunk reference is gone. */
	ck_assert_uint_eq(stats_of(pool).pages_used, 1);
	probe.on_free = NULL;
	ck_assert_int_eq(refpool_alloc(pool, &next), 0);
	ck_assert_ptr_eq(next, page);
	refpool_put(pool, next);
	refpool_put(pool, ctx.allocated_in_hook);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_speculative_reference)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page, *found;
	uint32_t pfn;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	pfn = refpool_page_to_pfn(pool, page);

	urcu_memb_register_thread();
	urcu_memb_read_lock();
	found = refpool_pfn_to_page(pool, pfn);
	ck_assert_ptr_eq(found, page);
	ck_assert(refpool_get_unless_zero(pool, found));
	ck_assert_uint_eq(page_count(page), 2);
	urcu_memb_read_unlock();
	refpool_put(pool, found);		/* the lookup's reference */
	ck_assert_uint_eq(page_count(page), 1);
	ck_assert_uint_eq(atomic_load(&probe.frees), 0);

	refpool_put(pool, page);
	urcu_memb_read_lock();
	found = refpool_pfn_to_page(pool, pfn);
	ck_assert(!refpool_get_unless_zero(pool, found));	/* free: fails, changes nothing */
	ck_assert_uint_eq(page_count(found), 0);
	urcu_memb_read_unlock();
	urcu_memb_unregister_thread();
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_shared_page_frees_on_last_put)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	refpool_get(pool, page);		/* fork: the child's reference */
	ck_assert_uint_eq(page_count(page), 2);
	refpool_put(pool, page);
	ck_assert_uint_eq(atomic_load(&probe.frees), 0);
	ck_assert_uint_eq(stats_of(pool).pages_used, 1);
	refpool_put(pool, page);
	ck_assert_uint_eq(atomic_load(&probe.frees), 1);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_pfn_lookup_and_device_memory)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 4 * CHUNK_2M);
	struct refpool_page *pages[64];

	for (int i = 0; i < 64; i++) {
		ck_assert_int_eq(refpool_alloc(pool, &pages[i]), 0);
		fill_page(pool, pages[i], i);
	}
	for (int i = 0; i < 64; i++) {
		uint32_t pfn = refpool_page_to_pfn(pool, pages[i]);

		ck_assert_ptr_eq(refpool_pfn_to_page(pool, pfn), pages[i]);
		ck_assert(page_holds(pool, pages[i], i));
	}
	/* Only chunk 0 exists: pfns of the others and beyond the limit are not pages. */
	ck_assert_ptr_null(refpool_pfn_to_page(pool, PAGES_2M));
	ck_assert_ptr_null(refpool_pfn_to_page(pool, 4 * PAGES_2M));
	ck_assert_ptr_null(refpool_pfn_to_page(pool, REFPOOL_NO_PFN));
	for (int i = 0; i < 64; i++)
		refpool_put(pool, pages[i]);
	refpool_destroy(pool);
}
END_TEST

#define EVICT_PAGES 300

struct evict_ctx {
	struct refpool_page *held[EVICT_PAGES];
	uint8_t (*system)[REFPOOL_PAGE_SIZE];	/* where evicted data lands */
	int bad;
};

static void evict_to_system(struct refpool *pool, struct refpool_page *page, void *arg)
{
	struct evict_ctx *ctx = arg;
	uint64_t i = page->owner - 1;

	if (i >= EVICT_PAGES || ctx->held[i] != page) {
		ctx->bad++;
		return;
	}
	memcpy(ctx->system[i], refpool_page_mem(pool, page), REFPOOL_PAGE_SIZE);
	ctx->held[i] = NULL;
	refpool_put(pool, page);		/* the owner's reference */
}

START_TEST(test_teardown_evicts_every_page_in_use)
{
	struct evict_ctx ctx = { .system = calloc(EVICT_PAGES, REFPOOL_PAGE_SIZE) };
	struct pool_probe probe = { .on_evict = evict_to_system, .ctx = &ctx };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 4 * CHUNK_2M);
	struct refpool_page *page, *freed[20];

	for (int i = 0; i < EVICT_PAGES; i++) {
		ck_assert_int_eq(refpool_alloc(pool, &ctx.held[i]), 0);
		ctx.held[i]->owner = i + 1;
		fill_page(pool, ctx.held[i], 1000 + i);
	}
	for (int i = 0; i < 20; i++) {		/* some pages are free again */
		ck_assert_int_eq(refpool_alloc(pool, &freed[i]), 0);
		freed[i]->owner = 0;
	}
	for (int i = 0; i < 20; i++)
		refpool_put(pool, freed[i]);

	ck_assert_int_eq(refpool_kill(pool), 0);
	ck_assert_int_eq(ctx.bad, 0);
	ck_assert_uint_eq(atomic_load(&probe.evictions), EVICT_PAGES);
	ck_assert_uint_eq(atomic_load(&probe.frees), EVICT_PAGES + 20);
	for (int i = 0; i < EVICT_PAGES; i++) {
		const uint64_t *w = (const uint64_t *)ctx.system[i];

		ck_assert_ptr_null(ctx.held[i]);
		ck_assert_uint_eq(w[5], (1000ull + i) * 0x9e3779b97f4a7c15ull + 5);
	}
	/* The pool is gone for good; the chunks' metadata is unmapped. */
	ck_assert_int_eq(refpool_alloc(pool, &page), -ENODEV);
	ck_assert_int_eq(refpool_kill(pool), -EALREADY);
	ck_assert_ptr_null(refpool_pfn_to_page(pool, 0));
	ck_assert_uint_eq(stats_of(pool).chunks, 0);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
	free(ctx.system);
}
END_TEST

struct late_put_ctx {
	struct refpool *pool;
	struct refpool_page *page;
	pthread_t thread;
	atomic_int put_started;
};

static void *put_later(void *arg)
{
	struct late_put_ctx *ctx = arg;

	usleep(150 * 1000);
	atomic_store(&ctx->put_started, 1);
	refpool_put(ctx->pool, ctx->page);
	return NULL;
}

static void evict_asynchronously(struct refpool *pool, struct refpool_page *page, void *arg)
{
	struct late_put_ctx *ctx = arg;

	ctx->pool = pool;
	ctx->page = page;
	ck_assert_int_eq(pthread_create(&ctx->thread, NULL, put_later, ctx), 0);
}

START_TEST(test_teardown_waits_for_the_chunk_counter)
{
	struct late_put_ctx ctx = { 0 };
	struct pool_probe probe = { .on_evict = evict_asynchronously, .ctx = &ctx };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	ck_assert_int_eq(refpool_kill(pool), 0);
	/* The kill could only return after the owner's deferred put. */
	ck_assert_int_eq(atomic_load(&ctx.put_started), 1);
	ck_assert_uint_eq(atomic_load(&probe.frees), 1);
	pthread_join(ctx.thread, NULL);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
}
END_TEST

struct reader_ctx {
	struct refpool *pool;
	uint32_t pfn;
	atomic_int stage;	/* 1: in the read side, 2: kill started, 3: reader done */
	uint32_t count_seen;
};

static void *rcu_reader(void *arg)
{
	struct reader_ctx *ctx = arg;
	struct refpool_page *page;

	urcu_memb_register_thread();
	urcu_memb_read_lock();
	page = refpool_pfn_to_page(ctx->pool, ctx->pfn);
	ck_assert_ptr_nonnull(page);
	atomic_store(&ctx->stage, 1);
	while (atomic_load(&ctx->stage) != 2)
		usleep(1000);
	usleep(100 * 1000);
	/* Still inside the read side: the metadata must still be mapped. */
	ctx->count_seen = atomic_load(&page->refcount);
	atomic_store(&ctx->stage, 3);
	urcu_memb_read_unlock();
	urcu_memb_unregister_thread();
	return NULL;
}

START_TEST(test_teardown_waits_a_grace_period)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct reader_ctx ctx = { .pool = pool };
	struct refpool_page *page;
	pthread_t reader;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	ctx.pfn = refpool_page_to_pfn(pool, page);
	refpool_put(pool, page);
	ck_assert_int_eq(pthread_create(&reader, NULL, rcu_reader, &ctx), 0);
	while (atomic_load(&ctx.stage) != 1)
		usleep(1000);
	atomic_store(&ctx.stage, 2);
	ck_assert_int_eq(refpool_kill(pool), 0);
	ck_assert_int_eq(atomic_load(&ctx.stage), 3);
	ck_assert_uint_eq(ctx.count_seen, 0);
	pthread_join(reader, NULL);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_exhaustion_keeps_every_byte)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	const size_t n = 2 * PAGES_2M;
	struct refpool_page **held = calloc(n, sizeof(*held));
	struct refpool_page *extra;

	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(refpool_alloc(pool, &held[i]), 0);
		fill_page(pool, held[i], i);
	}
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(refpool_alloc(pool, &extra), -ENOMEM);
	for (size_t i = 0; i < n; i++)
		ck_assert(page_holds(pool, held[i], i));
	refpool_put(pool, held[17]);
	ck_assert_int_eq(refpool_alloc(pool, &extra), 0);
	ck_assert_ptr_eq(extra, held[17]);
	held[17] = extra;
	for (size_t i = 0; i < n; i++)
		refpool_put(pool, held[i]);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
	free(held);
}
END_TEST

struct cpu_job {
	struct refpool *pool;
	int cpu;
	size_t n;
	int ret;
};

static void *alloc_then_free_on_cpu(void *arg)
{
	struct cpu_job *job = arg;
	struct refpool_page *held[SLOT_BATCH];

	pin_self(job->cpu);
	for (size_t i = 0; i < job->n && !job->ret; i++)
		job->ret = refpool_alloc(job->pool, &held[i]);
	for (size_t i = 0; i < job->n && !job->ret; i++)
		refpool_put(job->pool, held[i]);
	return NULL;
}

START_TEST(test_exhaustion_takes_pages_cached_by_other_cpus)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct cpu_job job = { .pool = pool, .cpu = 1, .n = SLOT_BATCH };
	struct refpool_page **held = calloc(PAGES_2M, sizeof(*held));
	pthread_t t;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		fprintf(stderr, "one CPU online: no other CPU's slot to take from\n");
	} else {
		/* CPU 1's slot now caches the pages it freed ... */
		pthread_create(&t, NULL, alloc_then_free_on_cpu, &job);
		pthread_join(t, NULL);
		ck_assert_int_eq(job.ret, 0);
		/* ... and CPU 0 must find them once the chunk is empty. */
		pin_self(0);
	}
	for (size_t i = 0; i < PAGES_2M; i++)
		ck_assert_int_eq(refpool_alloc(pool, &held[i]), 0);
	for (size_t i = 0; i < PAGES_2M; i++)
		refpool_put(pool, held[i]);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
	free(held);
}
END_TEST

/* A device THP: aligned, contiguous pages, each counted, freed whole. */
START_TEST(test_block_is_aligned_counted_and_comes_back_whole)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, 2 * CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_page *block, *again;
	uint32_t first;

	ck_assert_int_eq(refpool_alloc_block(pool, &block), 0);
	first = refpool_page_to_pfn(pool, block);
	ck_assert_uint_eq(first % REFPOOL_BLOCK_PAGES, 0);
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		ck_assert_uint_eq(page_count(&block[p]), 1);
	ck_assert_uint_eq(stats_of(pool).pages_used, REFPOOL_BLOCK_PAGES);
	fill_page(pool, &block[REFPOOL_BLOCK_PAGES - 1], 7);
	ck_assert(page_holds(pool, &block[REFPOOL_BLOCK_PAGES - 1], 7));

	refpool_put_block(pool, block);
	ck_assert_uint_eq(atomic_load(&probe.frees), REFPOOL_BLOCK_PAGES);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		ck_assert_uint_eq(page_count(&block[p]), 0);
	/* whole again, so the same block is the next one handed out */
	ck_assert_int_eq(refpool_alloc_block(pool, &again), 0);
	ck_assert_ptr_eq(again, block);
	refpool_put_block(pool, again);
	kill_cleanly(pool, &probe);
}
END_TEST

/* A block put page by page (split) comes back as single pages; a shared
 * block survives one put_block. */
START_TEST(test_split_block_comes_back_as_single_pages)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *block, *single, *none;

	ck_assert_int_eq(refpool_alloc_block(pool, &block), 0);
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		refpool_get(pool, &block[p]);
	refpool_put_block(pool, block);		/* the other sharer still holds it */
	ck_assert_uint_eq(atomic_load(&probe.frees), 0);
	ck_assert_uint_eq(stats_of(pool).pages_used, REFPOOL_BLOCK_PAGES);
	refpool_put(pool, &block[3]);		/* split: one page alone */
	ck_assert_uint_eq(atomic_load(&probe.frees), 1);
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		if (p != 3)
			refpool_put(pool, &block[p]);
	ck_assert_uint_eq(atomic_load(&probe.frees), REFPOOL_BLOCK_PAGES);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	/* the one chunk holds single pages now: no block to give */
	ck_assert_int_eq(refpool_alloc_block(pool, &none), -ENOMEM);
	ck_assert_int_eq(refpool_alloc(pool, &single), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, single) / REFPOOL_BLOCK_PAGES, 0);
	refpool_put(pool, single);
	kill_cleanly(pool, &probe);
}
END_TEST

/* Single pages split a block only when no single page is free; a block
 * needs a whole free one, or room for a new chunk. */
START_TEST(test_blocks_and_single_pages_share_the_limit)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_page *single, *other, *block, *none;

	ck_assert_int_eq(refpool_alloc(pool, &single), 0);
	ck_assert_int_eq(refpool_alloc(pool, &other), 0);
	ck_assert_uint_eq(stats_of(pool).chunks, 1);
	/* chunk 0 was split for the single pages: the block is a new chunk */
	ck_assert_int_eq(refpool_alloc_block(pool, &block), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, block), PAGES_2M);
	ck_assert_uint_eq(stats_of(pool).chunks, 2);
	ck_assert_int_eq(refpool_alloc_block(pool, &none), -ENOMEM);
	refpool_put(pool, single);
	refpool_put(pool, other);
	refpool_put_block(pool, block);
	kill_cleanly(pool, &probe);
}
END_TEST

/* Teardown evicts every page of a block in use and keeps its data. */
static void evict_block_page(struct refpool *pool, struct refpool_page *page, void *ctx)
{
	struct refpool_page *block = ctx;

	/* the owner's reference goes with the eviction of its first page */
	if (page == block)
		refpool_put_block(pool, block);
}

START_TEST(test_teardown_evicts_a_block_in_use)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *block;

	ck_assert_int_eq(refpool_alloc_block(pool, &block), 0);
	probe.on_evict = evict_block_page;
	probe.ctx = block;
	ck_assert_int_eq(refpool_kill(pool), 0);
	ck_assert_uint_eq(atomic_load(&probe.evictions), 1);
	ck_assert_uint_eq(atomic_load(&probe.frees), REFPOOL_BLOCK_PAGES);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_metadata_is_a_quarter_of_struct_page)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, 256 * MIB, 256 * MIB);
	struct refpool_page *page;
	struct refpool_stats st;

	ck_assert_uint_eq(sizeof(struct refpool_page), 16);
	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	refpool_get_stats(pool, &st);
	/* 16 bytes a page, one debug byte, and the chunk's record spread thin */
	ck_assert_uint_le(st.meta_bytes, st.pages_total * 18);
	ck_assert_uint_ge(st.meta_bytes, st.pages_total * 16);
	refpool_put(pool, page);
	refpool_destroy(pool);
}
END_TEST

/* ---- owners ---- */

#define MAP_BLOCKS 64

/* Which owner each block belongs to, as the owner ops tell it. */
struct owner_map {
	void *_Atomic owner_of[MAP_BLOCKS];
	atomic_int bad;			/* a shared block, a wrong release, a bad pfn */
	atomic_int fail_adopts;		/* fail that many adoptions with -EIO */
	_Atomic uint32_t last_adopted;
	_Atomic uint32_t last_released;
	void *_Atomic last_release_arg;
	void *_Atomic gone_arg;
	atomic_int blocks_at_gone;	/* blocks the map still gave the owner then */
	void *prefers_arg;		/* the owner that prefers a block ... */
	_Atomic uint32_t preferred;	/* ... and its first pfn (map_prefers) */
};

static int map_adopt(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx)
{
	struct owner_map *map = ctx;
	void *none = NULL;

	(void)pool;
	if (atomic_load(&map->fail_adopts) > 0) {
		atomic_fetch_sub(&map->fail_adopts, 1);
		return -EIO;
	}
	if (first_pfn % REFPOOL_BLOCK_PAGES || first_pfn / REFPOOL_BLOCK_PAGES >= MAP_BLOCKS ||
	    !atomic_compare_exchange_strong(&map->owner_of[first_pfn / REFPOOL_BLOCK_PAGES],
					    &none, owner_arg)) {
		atomic_fetch_add(&map->bad, 1);
		return 0;
	}
	atomic_store(&map->last_adopted, first_pfn);
	return 0;
}

static void map_release(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx)
{
	struct owner_map *map = ctx;
	void *expected = owner_arg;

	/* Every page of the block is free by now. */
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		if (atomic_load(&refpool_pfn_to_page(pool, first_pfn + p)->refcount))
			atomic_fetch_add(&map->bad, 1);
	if (first_pfn / REFPOOL_BLOCK_PAGES >= MAP_BLOCKS ||
	    !atomic_compare_exchange_strong(&map->owner_of[first_pfn / REFPOOL_BLOCK_PAGES],
					    &expected, NULL))
		atomic_fetch_add(&map->bad, 1);
	atomic_store(&map->last_released, first_pfn);
	atomic_store(&map->last_release_arg, owner_arg);
}

static void map_owner_gone(struct refpool *pool, void *owner_arg, void *ctx)
{
	struct owner_map *map = ctx;

	(void)pool;
	for (int b = 0; b < MAP_BLOCKS; b++)
		if (atomic_load(&map->owner_of[b]) == owner_arg)
			atomic_fetch_add(&map->blocks_at_gone, 1);
	atomic_store(&map->gone_arg, owner_arg);
}

static void watch_owners(struct pool_probe *probe, struct owner_map *map)
{
	probe->on_adopt = map_adopt;
	probe->on_release = map_release;
	probe->on_owner_gone = map_owner_gone;
	probe->ctx = map;
}

static void *owner_of_page(struct owner_map *map, struct refpool *pool, struct refpool_page *page)
{
	return atomic_load(&map->owner_of[refpool_page_to_pfn(pool, page) / REFPOOL_BLOCK_PAGES]);
}

static struct refpool_owner *new_owner(struct refpool *pool, void *arg)
{
	struct refpool_owner *owner = NULL;

	ck_assert_int_eq(refpool_owner_create(pool, arg, &owner), 0);
	return owner;
}

/* Owned pages come from blocks adopted for their owner only, never from the
 * unowned free pages, and two owners never share a block. */
START_TEST(test_owned_pages_come_from_adopted_blocks)
{
	static int tag_a, tag_b;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, 2 * CHUNK_2M, 8 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a), *b = new_owner(pool, &tag_b);
	struct refpool_page *unowned[40], *pa[700], *pb[700];

	watch_owners(&probe, &map);
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(refpool_alloc(pool, &unowned[i]), 0);
	for (int i = 0; i < 20; i++)		/* free single pages in slot and chunk */
		refpool_put(pool, unowned[i]);
	for (int i = 0; i < 700; i++) {
		ck_assert_int_eq(refpool_alloc_owned(pool, a, &pa[i]), 0);
		ck_assert_int_eq(refpool_alloc_owned(pool, b, &pb[i]), 0);
		ck_assert_uint_eq(page_count(pa[i]), 1);
		ck_assert_ptr_eq(owner_of_page(&map, pool, pa[i]), &tag_a);
		ck_assert_ptr_eq(owner_of_page(&map, pool, pb[i]), &tag_b);
	}
	ck_assert_uint_eq(atomic_load(&probe.adopts), 4);
	ck_assert_uint_eq(atomic_load(&probe.releases), 0);
	ck_assert_uint_eq(stats_of(pool).pages_used, 20 + 1400);
	for (int i = 0; i < 20; i++) {		/* unowned pages stay out of owned blocks */
		ck_assert_ptr_null(owner_of_page(&map, pool, unowned[20 + i]));
		ck_assert_int_eq(refpool_alloc(pool, &unowned[i]), 0);
		ck_assert_ptr_null(owner_of_page(&map, pool, unowned[i]));
	}
	for (int i = 0; i < 700; i++) {
		refpool_put(pool, pa[i]);
		refpool_put(pool, pb[i]);
	}
	for (int i = 0; i < 40; i++)
		refpool_put(pool, unowned[i]);
	ck_assert_uint_eq(atomic_load(&probe.releases), 4);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	refpool_owner_put(b);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 2);
	kill_cleanly(pool, &probe);
}
END_TEST

/* The put of a block's last page releases it, not earlier, and then any
 * owner may adopt it. */
START_TEST(test_last_free_page_releases_the_block)
{
	static int tag_a, tag_b;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a), *b = new_owner(pool, &tag_b);
	struct refpool_page *held[REFPOOL_BLOCK_PAGES], *extra;

	watch_owners(&probe, &map);
	for (uint32_t i = 0; i < REFPOOL_BLOCK_PAGES; i++)
		ck_assert_int_eq(refpool_alloc_owned(pool, a, &held[i]), 0);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 1);
	ck_assert_int_eq(refpool_alloc_owned(pool, b, &extra), -ENOMEM);
	for (uint32_t i = 0; i < REFPOOL_BLOCK_PAGES - 1; i++)
		refpool_put(pool, held[i]);
	ck_assert_uint_eq(atomic_load(&probe.releases), 0);
	ck_assert_int_eq(refpool_alloc_owned(pool, b, &extra), -ENOMEM);
	/* a's free pages serve a again without a new block */
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &held[0]), 0);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 1);
	refpool_put(pool, held[0]);
	refpool_put(pool, held[REFPOOL_BLOCK_PAGES - 1]);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	ck_assert_uint_eq(atomic_load(&map.last_released), 0);
	ck_assert_ptr_eq(atomic_load(&map.last_release_arg), &tag_a);
	ck_assert_uint_eq(atomic_load(&probe.frees), REFPOOL_BLOCK_PAGES + 1);

	ck_assert_int_eq(refpool_alloc_owned(pool, b, &extra), 0);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 2);
	ck_assert_uint_eq(atomic_load(&map.last_adopted), 0);
	ck_assert_ptr_eq(owner_of_page(&map, pool, extra), &tag_b);
	refpool_put(pool, extra);
	ck_assert_uint_eq(atomic_load(&probe.releases), 2);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	refpool_owner_put(b);
	kill_cleanly(pool, &probe);
}
END_TEST

/* A run of puts lists each owned block's pages once, and releases a block
 * when the run frees its last page, not before. */
START_TEST(test_put_run_releases_by_block)
{
	static int tag_a;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	struct refpool_page *one, *two;
	const uint32_t half = REFPOOL_BLOCK_PAGES / 2;

	watch_owners(&probe, &map);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &one), 0);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &two), 0);
	refpool_put_run(pool, one, REFPOOL_BLOCK_PAGES);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	refpool_put_run(pool, two, half);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	ck_assert_uint_eq(stats_of(pool).pages_used, REFPOOL_BLOCK_PAGES - half);
	refpool_put_run(pool, two + half, REFPOOL_BLOCK_PAGES - half);
	ck_assert_uint_eq(atomic_load(&probe.releases), 2);
	ck_assert_uint_eq(atomic_load(&probe.frees), 2 * REFPOOL_BLOCK_PAGES);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	kill_cleanly(pool, &probe);
}
END_TEST

/* Many owned pages at once: from the owner's free pages first, adopting
 * blocks as needed, all distinct and all the owner's; fewer when the pool
 * runs out. */
START_TEST(test_alloc_owned_many)
{
	static int tag_a;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	static struct refpool_page *pages[2 * REFPOOL_BLOCK_PAGES + 1];
	const uint32_t first = 100;
	int n;

	watch_owners(&probe, &map);
	ck_assert_int_eq(refpool_alloc_owned_many(pool, a, first, pages), (int)first);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 1);
	/* The rest of both blocks, and one page more than there is. */
	n = refpool_alloc_owned_many(pool, a, 2 * REFPOOL_BLOCK_PAGES + 1 - first, pages + first);
	ck_assert_int_eq(n, (int)(2 * REFPOOL_BLOCK_PAGES - first));
	ck_assert_uint_eq(atomic_load(&probe.adopts), 2);
	ck_assert_uint_eq(stats_of(pool).pages_used, 2 * REFPOOL_BLOCK_PAGES);
	for (uint32_t i = 0; i < 2 * REFPOOL_BLOCK_PAGES; i++) {
		ck_assert_ptr_eq(owner_of_page(&map, pool, pages[i]), &tag_a);
		for (uint32_t j = 0; j < i; j++)
			ck_assert_ptr_ne(pages[i], pages[j]);
	}
	ck_assert_int_eq(refpool_alloc_owned_many(pool, a, 1, pages), -ENOMEM);
	for (uint32_t i = 0; i < 2 * REFPOOL_BLOCK_PAGES; i++)
		refpool_put(pool, pages[i]);
	ck_assert_uint_eq(atomic_load(&probe.releases), 2);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	kill_cleanly(pool, &probe);
}
END_TEST

/* The peak is the most pages in use at once: a batch or a block counts as
 * it is taken, single pages when the stats are read, and the peak stays
 * when the pages go back. */
START_TEST(test_peak_is_the_most_pages_used)
{
	static int tag_a;
	static struct refpool_page *pages[1100];
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 4 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	struct refpool_page *block, *owned;
	struct refpool_stats st;

	ck_assert_uint_eq(stats_of(pool).pages_peak, 0);
	ck_assert_int_eq(refpool_alloc_owned_many(pool, a, 300, pages), 300);
	for (int i = 0; i < 300; i++)
		refpool_put(pool, pages[i]);
	st = stats_of(pool);
	ck_assert_uint_eq(st.pages_used, 0);
	ck_assert_uint_eq(st.pages_peak, 300);

	ck_assert_int_eq(refpool_alloc_block(pool, &block), 0);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &owned), 0);
	refpool_put_block(pool, block);
	refpool_put_block(pool, owned);
	ck_assert_uint_eq(stats_of(pool).pages_peak, 2 * REFPOOL_BLOCK_PAGES);

	for (int i = 0; i < 1100; i++)
		ck_assert_int_eq(refpool_alloc(pool, &pages[i]), 0);
	st = stats_of(pool);
	ck_assert_uint_eq(st.pages_used, 1100);
	ck_assert_uint_eq(st.pages_peak, 1100);
	for (int i = 0; i < 1100; i++)
		refpool_put(pool, pages[i]);
	st = stats_of(pool);
	ck_assert_uint_eq(st.pages_used, 0);
	ck_assert_uint_eq(st.pages_peak, 1100);
	refpool_owner_put(a);
	kill_cleanly(pool, &probe);
}
END_TEST

/* owner_gone once the creator put the owner and its last block went. */
START_TEST(test_owner_goes_after_put_and_last_release)
{
	static int tag_a, tag_c;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a), *c = new_owner(pool, &tag_c);
	struct refpool_page *p1, *p2;

	watch_owners(&probe, &map);
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &p1), 0);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &p2), 0);
	refpool_owner_put(a);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 0);
	refpool_put(pool, p1);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 0);	/* the block at p2 */
	refpool_put_block(pool, p2);
	ck_assert_uint_eq(atomic_load(&probe.releases), 2);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 1);
	ck_assert_ptr_eq(atomic_load(&map.gone_arg), &tag_a);
	ck_assert_int_eq(atomic_load(&map.blocks_at_gone), 0);

	/* an owner that never held a block goes with its creator's put */
	refpool_owner_put(c);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 2);
	ck_assert_ptr_eq(atomic_load(&map.gone_arg), &tag_c);
	kill_cleanly(pool, &probe);
}
END_TEST

/* A whole owned block, put whole or page by page, released once. */
START_TEST(test_owned_block_is_whole_and_released_by_its_puts)
{
	static int tag_a;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	struct refpool_page *block, *single, *b1, *b2;

	watch_owners(&probe, &map);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &block), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, block) % REFPOOL_BLOCK_PAGES, 0);
	ck_assert_uint_eq(atomic_load(&map.last_adopted), refpool_page_to_pfn(pool, block));
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES; p++)
		ck_assert_uint_eq(page_count(&block[p]), 1);
	ck_assert_uint_eq(stats_of(pool).pages_used, REFPOOL_BLOCK_PAGES);
	/* the block has no free page: a single page needs a block of its own */
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &single), 0);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 2);
	ck_assert_uint_ne(refpool_page_to_pfn(pool, single) / REFPOOL_BLOCK_PAGES,
			  refpool_page_to_pfn(pool, block) / REFPOOL_BLOCK_PAGES);
	refpool_put(pool, single);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	refpool_put_block(pool, block);
	ck_assert_uint_eq(atomic_load(&probe.releases), 2);
	ck_assert_uint_eq(atomic_load(&map.last_released), refpool_page_to_pfn(pool, block));
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);

	/* split: put page by page, released with the last */
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &block), 0);
	for (uint32_t p = 0; p < REFPOOL_BLOCK_PAGES - 1; p++)
		refpool_put(pool, &block[p]);
	ck_assert_uint_eq(atomic_load(&probe.releases), 2);
	refpool_put(pool, &block[REFPOOL_BLOCK_PAGES - 1]);
	ck_assert_uint_eq(atomic_load(&probe.releases), 3);

	/* both blocks are whole and unowned again */
	ck_assert_int_eq(refpool_alloc_block(pool, &b1), 0);
	ck_assert_int_eq(refpool_alloc_block(pool, &b2), 0);
	refpool_put_block(pool, b1);
	refpool_put_block(pool, b2);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	kill_cleanly(pool, &probe);
}
END_TEST

START_TEST(test_owned_alloc_needs_a_whole_free_block)
{
	static int tag_a;
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	struct refpool_page *single, *page;

	/* the only block is split for a single page, which is freed again */
	ck_assert_int_eq(refpool_alloc(pool, &single), 0);
	refpool_put(pool, single);
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &page), -ENOMEM);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &page), -ENOMEM);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 0);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	ck_assert_int_eq(refpool_alloc(pool, &single), 0);
	refpool_put(pool, single);
	refpool_owner_put(a);
	kill_cleanly(pool, &probe);
}
END_TEST

/* A failed adoption leaves the block free, whole and unowned. */
START_TEST(test_failed_adoption_leaves_the_block_free)
{
	static int tag_a;
	struct owner_map map = { .fail_adopts = 2 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	struct refpool_page *page, *block;

	watch_owners(&probe, &map);
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &page), -EIO);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &block), -EIO);
	ck_assert_uint_eq(atomic_load(&probe.adopts), 0);
	ck_assert_uint_eq(atomic_load(&probe.releases), 0);
	ck_assert_uint_eq(stats_of(pool).pages_used, 0);
	ck_assert_uint_eq(stats_of(pool).chunks, 1);
	ck_assert_int_eq(refpool_alloc_block(pool, &block), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, block), 0);
	refpool_put_block(pool, block);
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &page), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, page), 0);
	refpool_put(pool, page);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	kill_cleanly(pool, &probe);
}
END_TEST

/* Owner a prefers the block map->preferred, if set; b prefers none. */
static bool map_prefers(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx)
{
	struct owner_map *map = ctx;

	(void)pool;
	return owner_arg == map->prefers_arg && first_pfn == atomic_load(&map->preferred);
}

START_TEST(test_adoption_takes_the_preferred_block_first)
{
	static int tag_a, tag_b;
	struct owner_map map = { .prefers_arg = &tag_a };
	struct pool_probe probe = { .on_prefers = map_prefers };
	struct refpool *pool = make_pool(&probe, 4 * CHUNK_2M, 4 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a), *b = new_owner(pool, &tag_b);
	struct refpool_page *pb, *block, *pa;

	watch_owners(&probe, &map);
	atomic_store(&map.preferred, 2 * REFPOOL_BLOCK_PAGES);
	/* b prefers nothing: any block but the one a prefers may do, and
	 * the first free one does; a then gets its own, not the next free. */
	ck_assert_int_eq(refpool_alloc_owned(pool, b, &pb), 0);
	ck_assert_uint_ne(refpool_page_to_pfn(pool, pb) / REFPOOL_BLOCK_PAGES, 2);
	ck_assert_int_eq(refpool_alloc_block_owned(pool, a, &block), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, block), 2 * REFPOOL_BLOCK_PAGES);
	/* Its preferred block taken, a's next page comes from that block's
	 * spare pages or any free block, as without a preference. */
	refpool_put_block(pool, block);
	ck_assert_uint_eq(atomic_load(&probe.releases), 1);
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &pa), 0);
	ck_assert_uint_eq(refpool_page_to_pfn(pool, pa), 2 * REFPOOL_BLOCK_PAGES);
	refpool_put(pool, pa);
	atomic_store(&map.preferred, REFPOOL_NO_PFN);
	ck_assert_int_eq(refpool_alloc_owned(pool, a, &pa), 0);
	ck_assert_ptr_eq(owner_of_page(&map, pool, pa), &tag_a);
	refpool_put(pool, pa);
	refpool_put(pool, pb);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	refpool_owner_put(a);
	refpool_owner_put(b);
	kill_cleanly(pool, &probe);
}
END_TEST

enum { EVICT_PUT = 1, EVICT_PUT_BLOCK, EVICT_WITH_BLOCK };

static void evict_owned(struct refpool *pool, struct refpool_page *page, void *ctx)
{
	struct owner_map *map = ctx;

	switch (page->owner) {
	case EVICT_PUT:
		refpool_put(pool, page);
		break;
	case EVICT_PUT_BLOCK:
		refpool_put_block(pool, page);
		break;
	default:	/* the block's first page put it already */
		atomic_fetch_add(&map->bad, 1);
	}
}

/* The kill evicts owned pages in use, releases their blocks, and audits clean. */
START_TEST(test_kill_releases_owned_blocks)
{
	static int tag_a, tag_b;
	struct owner_map map = { 0 };
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, 2 * CHUNK_2M, 8 * CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a), *b = new_owner(pool, &tag_b);
	struct refpool_page *pa[600], *block, *pb;
	unsigned long in_use = 0;

	watch_owners(&probe, &map);
	for (int i = 0; i < 600; i++) {
		ck_assert_int_eq(refpool_alloc_owned(pool, a, &pa[i]), 0);
		pa[i]->owner = EVICT_PUT;
	}
	for (int i = 0; i < 600; i += 3)	/* free pages in blocks still owned */
		refpool_put(pool, pa[i]);
	in_use += 400;
	ck_assert_int_eq(refpool_alloc_block_owned(pool, b, &block), 0);
	block->owner = EVICT_PUT_BLOCK;
	for (uint32_t p = 1; p < REFPOOL_BLOCK_PAGES; p++)
		block[p].owner = EVICT_WITH_BLOCK;
	in_use += 1;				/* one eviction for the block */
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(refpool_alloc_owned(pool, b, &pb), 0);
		pb->owner = EVICT_PUT;
		in_use++;
	}
	ck_assert_uint_eq(atomic_load(&probe.adopts), 4);
	refpool_owner_put(a);			/* a goes during the kill, b after */

	probe.on_evict = evict_owned;
	ck_assert_int_eq(refpool_kill(pool), 0);
	ck_assert_uint_eq(atomic_load(&probe.evictions), in_use);
	ck_assert_uint_eq(atomic_load(&probe.releases), 4);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 1);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	ck_assert_int_eq(atomic_load(&map.bad), 0);
	ck_assert_int_eq(refpool_alloc_owned(pool, b, &pb), -ENODEV);
	refpool_owner_put(b);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 2);
	refpool_destroy(pool);
}
END_TEST

struct slow_release_ctx {
	struct late_put_ctx late;	/* first: evict_asynchronously() takes it */
	atomic_int released;
};

static void release_slowly(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *ctx)
{
	struct slow_release_ctx *slow = ctx;

	(void)pool;
	(void)first_pfn;
	(void)owner_arg;
	usleep(100 * 1000);
	atomic_store(&slow->released, 1);
}

/* The teardown's wait covers a release in progress: the freed page's chunk
 * reference goes only after its block is back on the chunk's lists. */
START_TEST(test_kill_waits_for_a_release_in_progress)
{
	static int tag_a;
	struct slow_release_ctx slow = { 0 };
	struct pool_probe probe = { .on_evict = evict_asynchronously,
				    .on_release = release_slowly, .ctx = &slow };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_owner *a = new_owner(pool, &tag_a);
	struct refpool_page *page;

	ck_assert_int_eq(refpool_alloc_owned(pool, a, &page), 0);
	refpool_owner_put(a);
	ck_assert_int_eq(refpool_kill(pool), 0);
	ck_assert_int_eq(atomic_load(&slow.released), 1);
	ck_assert_uint_eq(atomic_load(&probe.owners_gone), 1);
	pthread_join(slow.late.thread, NULL);
	ck_assert_uint_eq(atomic_load(&probe.violations), 0);
	refpool_destroy(pool);
}
END_TEST

#define OWNED_ITERS 20000
#define OWNED_HELD 256
#define EXCHANGE_MAX 64

struct owned_stress {
	struct refpool *pool;
	struct pool_probe probe;
	struct owner_map map;
	struct refpool_owner *owners[2];
	int tags[2];
	pthread_mutex_t exchange_lock;	/* pages one thread hands the other to put */
	struct refpool_page *exchange[EXCHANGE_MAX];
	int nexchange;
	atomic_int corrupt;
	_Atomic unsigned long enomem;
};

struct owned_worker {
	struct owned_stress *st;
	unsigned int seed;
	struct refpool_page *held[OWNED_HELD];
	int nheld;
	bool has_block;
};

static void owned_put_page(struct owned_stress *st, struct refpool_page *page)
{
	if (page->owner != refpool_page_to_pfn(st->pool, page) + 1 ||
	    !page_holds(st->pool, page, page->owner))
		atomic_store(&st->corrupt, 1);
	refpool_put(st->pool, page);
}

static void owned_take(struct owned_worker *w, struct refpool_page *page, int who)
{
	struct owned_stress *st = w->st;

	if (owner_of_page(&st->map, st->pool, page) != &st->tags[who])
		atomic_fetch_add(&st->map.bad, 1);
	page->owner = refpool_page_to_pfn(st->pool, page) + 1;
	fill_page(st->pool, page, page->owner);
	w->held[w->nheld++] = page;
}

static void owned_drop_one(struct owned_worker *w)
{
	struct owned_stress *st = w->st;
	int i = rand_r(&w->seed) % w->nheld;
	struct refpool_page *page = w->held[i];

	w->held[i] = w->held[--w->nheld];
	if (rand_r(&w->seed) % 8 == 0) {
		pthread_mutex_lock(&st->exchange_lock);
		if (st->nexchange < EXCHANGE_MAX) {
			st->exchange[st->nexchange++] = page;
			page = NULL;
		}
		pthread_mutex_unlock(&st->exchange_lock);
	}
	if (page)
		owned_put_page(st, page);
}

static void owned_put_exchanged(struct owned_stress *st)
{
	struct refpool_page *page = NULL;

	pthread_mutex_lock(&st->exchange_lock);
	if (st->nexchange)
		page = st->exchange[--st->nexchange];
	pthread_mutex_unlock(&st->exchange_lock);
	if (page)
		owned_put_page(st, page);
}

static void owned_block_round(struct owned_worker *w, int who)
{
	struct owned_stress *st = w->st;
	struct refpool_page *block;
	int ret = refpool_alloc_block_owned(st->pool, st->owners[who], &block);

	if (ret) {
		atomic_fetch_add(&st->enomem, ret == -ENOMEM);
		if (ret != -ENOMEM)
			atomic_store(&st->corrupt, 1);
		return;
	}
	if (owner_of_page(&st->map, st->pool, block) != &st->tags[who])
		atomic_fetch_add(&st->map.bad, 1);
	fill_page(st->pool, &block[REFPOOL_BLOCK_PAGES - 1], 77);
	if (!page_holds(st->pool, &block[REFPOOL_BLOCK_PAGES - 1], 77))
		atomic_store(&st->corrupt, 1);
	refpool_put_block(st->pool, block);
}

static void *owned_worker_run(void *arg)
{
	struct owned_worker *w = arg;
	struct owned_stress *st = w->st;

	for (int i = 0; i < OWNED_ITERS; i++) {
		int who = rand_r(&w->seed) % 2, op = rand_r(&w->seed) % 64;
		struct refpool_page *page;
		int ret;

		if (op == 0) {
			owned_block_round(w, who);
		} else if (op < 8) {
			owned_put_exchanged(st);
		} else if (w->nheld && (w->nheld == OWNED_HELD || op < 34)) {
			owned_drop_one(w);
		} else {
			ret = refpool_alloc_owned(st->pool, st->owners[who], &page);
			if (!ret)
				owned_take(w, page, who);
			else if (ret == -ENOMEM)
				atomic_fetch_add(&st->enomem, 1);
			else
				atomic_store(&st->corrupt, 1);
		}
	}
	while (w->nheld)
		owned_put_page(st, w->held[--w->nheld]);
	return NULL;
}

/* Two threads allocate from two owners, put their own and each other's pages. */
START_TEST(test_owned_alloc_and_put_from_two_threads)
{
	struct owned_stress *st = calloc(1, sizeof(*st));
	struct owned_worker w[2] = { { .st = st, .seed = 1 }, { .st = st, .seed = 2 } };
	pthread_t t[2];

	st->pool = make_pool(&st->probe, CHUNK_2M, 32 * CHUNK_2M);
	watch_owners(&st->probe, &st->map);
	pthread_mutex_init(&st->exchange_lock, NULL);
	for (int i = 0; i < 2; i++)
		st->owners[i] = new_owner(st->pool, &st->tags[i]);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, owned_worker_run, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	while (st->nexchange)
		owned_put_exchanged(st);

	ck_assert_int_eq(atomic_load(&st->corrupt), 0);
	ck_assert_int_eq(atomic_load(&st->map.bad), 0);
	ck_assert_uint_gt(atomic_load(&st->probe.adopts), 2);
	ck_assert_uint_eq(atomic_load(&st->probe.releases), atomic_load(&st->probe.adopts));
	ck_assert_uint_eq(stats_of(st->pool).pages_used, 0);
	for (int b = 0; b < MAP_BLOCKS; b++)
		ck_assert_ptr_null(atomic_load(&st->map.owner_of[b]));
	for (int i = 0; i < 2; i++)
		refpool_owner_put(st->owners[i]);
	ck_assert_uint_eq(atomic_load(&st->probe.owners_gone), 2);
	fprintf(stderr, "owned stress: %lu adoptions, %lu ENOMEM\n",
		atomic_load(&st->probe.adopts), atomic_load(&st->enomem));
	kill_cleanly(st->pool, &st->probe);
	pthread_mutex_destroy(&st->exchange_lock);
	free(st);
}
END_TEST

static void pin_to_cpu0(void)
{
	pin_self(0);
}

static Suite *refpool_suite(void)
{
	Suite *s = suite_create("refpool");
	TCase *life = tcase_create("lifecycle");
	TCase *teardown = tcase_create("teardown");
	TCase *limits = tcase_create("limits");
	TCase *owners = tcase_create("owners");

	/* LIFO reuse is per CPU: the tests that expect a page back stay on one. */
	tcase_add_checked_fixture(life, pin_to_cpu0, NULL);
	tcase_add_checked_fixture(teardown, pin_to_cpu0, NULL);
	tcase_add_checked_fixture(limits, pin_to_cpu0, NULL);
	tcase_add_test(life, test_config_is_checked);
	tcase_add_test(life, test_alloc_is_the_zero_to_one_transition);
	tcase_add_test(life, test_free_page_has_count_zero_and_is_listed);
	tcase_add_test(life, test_final_put_frees_then_lists_then_drops_chunk_ref);
	tcase_add_test(life, test_speculative_reference);
	tcase_add_test(life, test_shared_page_frees_on_last_put);
	tcase_add_test(life, test_pfn_lookup_and_device_memory);
	suite_add_tcase(s, life);

	tcase_add_test(teardown, test_teardown_evicts_every_page_in_use);
	tcase_add_test(teardown, test_teardown_waits_for_the_chunk_counter);
	tcase_add_test(teardown, test_teardown_waits_a_grace_period);
	suite_add_tcase(s, teardown);

	tcase_add_test(limits, test_chunks_on_demand_up_to_limit);
	tcase_add_test(limits, test_exhaustion_keeps_every_byte);
	tcase_add_test(limits, test_exhaustion_takes_pages_cached_by_other_cpus);
	tcase_add_test(limits, test_metadata_is_a_quarter_of_struct_page);
	tcase_add_test(life, test_block_is_aligned_counted_and_comes_back_whole);
	tcase_add_test(life, test_split_block_comes_back_as_single_pages);
	tcase_add_test(limits, test_blocks_and_single_pages_share_the_limit);
	tcase_add_test(teardown, test_teardown_evicts_a_block_in_use);
	suite_add_tcase(s, limits);

	tcase_add_test(owners, test_owned_pages_come_from_adopted_blocks);
	tcase_add_test(owners, test_last_free_page_releases_the_block);
	tcase_add_test(owners, test_put_run_releases_by_block);
	tcase_add_test(owners, test_alloc_owned_many);
	tcase_add_test(owners, test_peak_is_the_most_pages_used);
	tcase_add_test(owners, test_owner_goes_after_put_and_last_release);
	tcase_add_test(owners, test_owned_block_is_whole_and_released_by_its_puts);
	tcase_add_test(owners, test_owned_alloc_needs_a_whole_free_block);
	tcase_add_test(owners, test_failed_adoption_leaves_the_block_free);
	tcase_add_test(owners, test_adoption_takes_the_preferred_block_first);
	tcase_add_test(owners, test_kill_releases_owned_blocks);
	tcase_add_test(owners, test_kill_waits_for_a_release_in_progress);
	tcase_add_test(owners, test_owned_alloc_and_put_from_two_threads);
	suite_add_tcase(s, owners);
	return s;
}

int main(void)
{
	return check_run(refpool_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
