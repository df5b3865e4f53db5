/* SPDX-License-Identifier: MIT */
/*
 * The device page pool against the allocator it replaces: one mutex around a
 * LIFO free list (test_hmm's shape, with the same refcount work per page).
 *
 *   pool_pairs_2t   alloc+put pairs per second, two threads on two CPUs
 *   pool_pair_1t    ns per alloc+put pair, one thread
 *   pool_meta       metadata bytes per 4 KiB device page vs struct page (64)
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"
#include "refpool.h"

#define WINDOW 8		/* pages a thread holds before putting them back */
#define ROUNDS 5
#define CHUNK (256ul << 20)
#define LIMIT (1ul << 30)

/* ---- the baseline ---- */

struct locked_lifo {
	pthread_mutex_t lock;
	struct refpool_page *pages;
	struct refpool_page **stack;
	size_t top;
};

static int lifo_init(struct locked_lifo *l, size_t n)
{
	pthread_mutex_init(&l->lock, NULL);
	l->pages = calloc(n, sizeof(*l->pages));
	l->stack = calloc(n, sizeof(*l->stack));
	if (!l->pages || !l->stack)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		l->stack[i] = &l->pages[n - 1 - i];
	l->top = n;
	return 0;
}

static struct refpool_page *lifo_alloc(struct locked_lifo *l)
{
	struct refpool_page *p = NULL;

	pthread_mutex_lock(&l->lock);
	if (l->top)
		p = l->stack[--l->top];
	pthread_mutex_unlock(&l->lock);
	if (p)
		atomic_store_explicit(&p->refcount, 1, memory_order_release);
	return p;
}

static void lifo_put(struct locked_lifo *l, struct refpool_page *p)
{
	if (atomic_fetch_sub_explicit(&p->refcount, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&l->lock);
	l->stack[l->top++] = p;
	pthread_mutex_unlock(&l->lock);
}

/* ---- the runs ---- */

/* One cache line each: the two threads' records must not share one. */
struct run {
	struct refpool *pool;		/* NULL: the baseline */
	struct locked_lifo *lifo;
	size_t pairs;
	int cpu;
	pthread_barrier_t *start;
	int ret;
} __attribute__((aligned(64)));

static void *run_pairs(void *arg)
{
	struct run *r = arg;
	struct refpool_page *held[WINDOW];

	pin_to_cpu(r->cpu);
	if (r->start)
		pthread_barrier_wait(r->start);
	for (size_t done = 0; done < r->pairs; done += WINDOW) {
		for (int i = 0; i < WINDOW; i++) {
			if (r->pool) {
				int ret = refpool_alloc(r->pool, &held[i]);

				if (ret) {
					r->ret = ret;
					return NULL;
				}
			} else {
				held[i] = lifo_alloc(r->lifo);
			}
		}
		for (int i = 0; i < WINDOW; i++) {
			if (r->pool)
				refpool_put(r->pool, held[i]);
			else
				lifo_put(r->lifo, held[i]);
		}
	}
	return NULL;
}

/* Seconds for nthreads threads to do pairs each. */
static double time_pairs(struct refpool *pool, struct locked_lifo *lifo, int nthreads,
			 size_t pairs)
{
	struct run runs[2];
	pthread_t t[2];
	pthread_barrier_t start;
	uint64_t t0;

	pthread_barrier_init(&start, NULL, (unsigned int)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		runs[i] = (struct run){ .pool = pool, .lifo = lifo, .pairs = pairs, .cpu = i,
					.start = &start };
		pthread_create(&t[i], NULL, run_pairs, &runs[i]);
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < nthreads; i++)
		if (runs[i].ret) {
			fprintf(stderr, "pool-bench: alloc: %s\n", strerror(-runs[i].ret));
			exit(1);
		}
	return (double)(now_ns() - t0) / 1e9;
}

static void evict_nothing(struct refpool *pool, struct refpool_page *page, void *arg)
{
	(void)pool;
	(void)page;
	(void)arg;
}

static const struct refpool_ops bench_ops = { .evict = evict_nothing };

int main(void)
{
	const struct refpool_config cfg = {
		.name = "bench", .type = REFPOOL_MEMTYPE_PRIVATE, .chunk_bytes = CHUNK,
		.limit_bytes = LIMIT, .node = -1, .ops = &bench_ops,
	};
	const size_t pairs_2t = 4u << 20, pairs_1t = 4u << 20;
	double pool_2t[ROUNDS], lifo_2t[ROUNDS], pool_1t[ROUNDS], lifo_1t[ROUNDS];
	struct locked_lifo lifo;
	struct refpool_stats st;
	struct refpool *pool;
	int ret;

	ret = refpool_create(&cfg, &pool);
	if (ret || lifo_init(&lifo, LIMIT / REFPOOL_PAGE_SIZE)) {
		fprintf(stderr, "pool-bench: set-up failed: %s\n", strerror(ret ? -ret : ENOMEM));
		return 1;
	}
	/* Warm both: the first chunk exists and the pages' metadata is faulted in. */
	time_pairs(pool, NULL, 2, 1u << 16);
	time_pairs(NULL, &lifo, 2, 1u << 16);

	/* Interleave the runs so that machine noise hits both alike. */
	for (int r = 0; r < ROUNDS; r++) {
		pool_2t[r] = 2.0 * pairs_2t / time_pairs(pool, NULL, 2, pairs_2t);
		lifo_2t[r] = 2.0 * pairs_2t / time_pairs(NULL, &lifo, 2, pairs_2t);
		pool_1t[r] = time_pairs(pool, NULL, 1, pairs_1t) * 1e9 / pairs_1t;
		lifo_1t[r] = time_pairs(NULL, &lifo, 1, pairs_1t) * 1e9 / pairs_1t;
	}
	figure("pool_pairs_2t", median(pool_2t, ROUNDS), "pairs/s", median(lifo_2t, ROUNDS),
	       "pairs/s");
	figure("pool_pair_1t", median(pool_1t, ROUNDS), "ns", median(lifo_1t, ROUNDS), "ns");

	refpool_get_stats(pool, &st);
	figure("pool_meta", (double)st.meta_bytes / (double)st.pages_total, "B/page", 64.0,
	       "B/page");
	refpool_destroy(pool);
	free(lifo.pages);
	free(lifo.stack);
	return 0;
}
