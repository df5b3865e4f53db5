/* SPDX-License-Identifier: MIT */
/*
 * Threads allocate, share, put and take speculative references while another
 * thread tears the pool down. At the end every page handed out was freed
 * exactly once, with its data intact while it was held, and the debug mode's
 * teardown audit (every count 0, every page listed, the chunk counter drained)
 * found nothing.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "pool-helpers.h"
#include "check-run.h"

#define WORKERS 3
#define HELD_MAX 24

struct stress {
	struct refpool *pool;
	struct pool_probe probe;
	size_t hold_max;
	_Atomic unsigned long allocs;
	_Atomic unsigned long speculative_hits;
	_Atomic unsigned long enomem;
	atomic_int corrupt;
	atomic_int go;
};

struct worker {
	struct stress *st;
	unsigned int seed;
	unsigned int id;
	struct refpool_page *held[HELD_MAX * 20];
	size_t nheld;
	uint64_t serial;
};

static uint64_t tag_of(const struct worker *w, uint64_t serial)
{
	return ((uint64_t)w->id << 48) | serial;
}

static void put_held(struct worker *w, size_t i)
{
	struct refpool_page *page = w->held[i];

	/* The owner word and the data are ours until we put the page. */
	if (!page_holds(w->st->pool, page, page->owner))
		atomic_store(&w->st->corrupt, 1);
	refpool_put(w->st->pool, page);
	w->held[i] = w->held[--w->nheld];
}

static void speculate(struct worker *w)
{
	struct refpool *pool = w->st->pool;
	uint32_t pfn = (uint32_t)rand_r(&w->seed) % (uint32_t)(2 * PAGES_2M);
	struct refpool_page *page;

	urcu_memb_read_lock();
	page = refpool_pfn_to_page(pool, pfn);
	if (page && refpool_get_unless_zero(pool, page)) {
		atomic_fetch_add_explicit(&w->st->speculative_hits, 1, memory_order_relaxed);
		refpool_put(pool, page);
	}
	urcu_memb_read_unlock();
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct stress *st = w->st;

	urcu_memb_register_thread();
	while (!atomic_load(&st->go))
		sched_yield();
	for (;;) {
		unsigned int dice = (unsigned int)rand_r(&w->seed) % 8;
		struct refpool_page *page;
		int ret;

		if (dice < 4 && w->nheld < st->hold_max) {
			ret = refpool_alloc(st->pool, &page);
			if (ret == -ENODEV)
				break;
			if (ret == -ENOMEM) {
				atomic_fetch_add_explicit(&st->enomem, 1, memory_order_relaxed);
				continue;
			}
			ck_assert_int_eq(ret, 0);
			atomic_fetch_add_explicit(&st->allocs, 1, memory_order_relaxed);
			page->owner = tag_of(w, ++w->serial);
			fill_page(st->pool, page, page->owner);
			w->held[w->nheld++] = page;
		} else if (dice < 6 && w->nheld) {
			put_held(w, (size_t)rand_r(&w->seed) % w->nheld);
		} else if (dice == 6 && w->nheld) {
			/* a fork-style share: a second reference, dropped at once */
			page = w->held[(size_t)rand_r(&w->seed) % w->nheld];
			refpool_get(st->pool, page);
			refpool_put(st->pool, page);
		} else {
			speculate(w);
		}
	}
	/* The pool is dying: the owner gives its pages back, as an evicting
	 * device would once it has copied them out. */
	while (w->nheld)
		put_held(w, 0);
	urcu_memb_unregister_thread();
	return NULL;
}

static void *killer_main(void *arg)
{
	struct stress *st = arg;

	while (!atomic_load(&st->go))
		sched_yield();
	usleep(150 * 1000);
	ck_assert_int_eq(refpool_kill(st->pool), 0);
	return NULL;
}

static void run_stress(size_t hold_max, size_t limit)
{
	struct stress *st = calloc(1, sizeof(*st));
	struct worker *w = calloc(WORKERS, sizeof(*w));
	pthread_t threads[WORKERS], killer;

	st->hold_max = hold_max;
	st->pool = make_pool(&st->probe, CHUNK_2M, limit);
	for (unsigned int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .st = st, .seed = 1234 + i, .id = i + 1 };
		ck_assert_int_eq(pthread_create(&threads[i], NULL, worker_main, &w[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&killer, NULL, killer_main, st), 0);
	atomic_store(&st->go, 1);
	pthread_join(killer, NULL);
	for (unsigned int i = 0; i < WORKERS; i++)
		pthread_join(threads[i], NULL);

	ck_assert_int_eq(atomic_load(&st->corrupt), 0);
	ck_assert_uint_gt(atomic_load(&st->allocs), 1000);
	ck_assert_uint_eq(atomic_load(&st->probe.frees), atomic_load(&st->allocs));
	ck_assert_msg(atomic_load(&st->probe.violations) == 0, "violation: %s on pfn %u (count %u, %s)",
		      refpool_bug_name(st->probe.last.bug), st->probe.last.pfn,
		      st->probe.last.count, st->probe.last.op);
	refpool_destroy(st->pool);
	free(w);
	free(st);
}

START_TEST(test_teardown_under_load)
{
	run_stress(HELD_MAX, 4 * CHUNK_2M);
}
END_TEST

START_TEST(test_teardown_under_load_at_the_limit)
{
	/* Workers together want more than the pool has: -ENOMEM, steals from
	 * other CPUs' slots and growth all happen during the teardown. */
	run_stress(HELD_MAX * 20, 2 * CHUNK_2M);
}
END_TEST

static Suite *stress_suite(void)
{
	Suite *s = suite_create("refpool-stress");
	TCase *tc = tcase_create("teardown-races");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_teardown_under_load, 0, 3);
	tcase_add_loop_test(tc, test_teardown_under_load_at_the_limit, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(stress_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
