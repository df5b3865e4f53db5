/* SPDX-License-Identifier: MIT */
/* The pool's debug mode catches each violation of the lifecycle, reports it
 * through the hook with the page, its count and the operation, and loses
 * nothing while doing so. */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "pool-helpers.h"
#include "check-run.h"

static void assert_reported(struct pool_probe *probe, enum refpool_bug bug, uint32_t pfn,
			    uint32_t count, const char *op)
{
	ck_assert_uint_ge(atomic_load(&probe->violations), 1);
	ck_assert_msg(probe->last.bug == bug, "reported %s, expected %s",
		      refpool_bug_name(probe->last.bug), refpool_bug_name(bug));
	ck_assert_uint_eq(probe->last.pfn, pfn);
	ck_assert_uint_eq(probe->last.count, count);
	ck_assert_str_eq(probe->last.op, op);
}

START_TEST(test_double_put)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page, *again;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	refpool_put(pool, page);
	refpool_put(pool, page);
	assert_reported(&probe, REFPOOL_BUG_DOUBLE_PUT, refpool_page_to_pfn(pool, page), 0, "put");
	ck_assert_uint_eq(atomic_load(&probe.violations), 1);
	/* The bad put changed nothing: the page is free once, counted 0. */
	ck_assert_uint_eq(atomic_load(&page->refcount), 0);
	ck_assert_uint_eq(atomic_load(&probe.frees), 1);
	ck_assert_int_eq(refpool_alloc(pool, &again), 0);
	ck_assert_ptr_eq(again, page);
	refpool_put(pool, again);
	ck_assert_uint_eq(atomic_load(&probe.violations), 1);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_put_on_a_free_page)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page, *never;
	uint32_t pfn;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	pfn = refpool_page_to_pfn(pool, page) + 100;
	never = refpool_pfn_to_page(pool, pfn);
	refpool_put(pool, never);
	assert_reported(&probe, REFPOOL_BUG_PUT_FREE, pfn, 0, "put");
	ck_assert_uint_eq(atomic_load(&never->refcount), 0);
	ck_assert_uint_eq(atomic_load(&probe.frees), 0);
	refpool_put(pool, page);
	refpool_destroy(pool);
	ck_assert_uint_eq(atomic_load(&probe.violations), 1);
}
END_TEST

START_TEST(test_get_on_a_free_page)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	refpool_put(pool, page);
	refpool_get(pool, page);
	assert_reported(&probe, REFPOOL_BUG_GET_FREE, refpool_page_to_pfn(pool, page), 0, "get");
	ck_assert_uint_eq(atomic_load(&page->refcount), 0);
	refpool_destroy(pool);
	ck_assert_uint_eq(atomic_load(&probe.violations), 1);
}
END_TEST

START_TEST(test_allocation_from_a_dying_chunk)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_page *first, *page;
	struct refpool_chunk *c0;
	uint32_t next_pfn;

	ck_assert_int_eq(refpool_alloc(pool, &first), 0);
	c0 = pool_chunk_of(pool, 0);
	/* A teardown that marked the chunk dying but left its pages in a slot:
	 * the allocator must refuse them. */
	next_pfn = refpool_page_to_pfn(pool, first) + 1;
	atomic_store(&c0->dying, true);
	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	ck_assert_uint_ge(atomic_load(&probe.violations), 1);
	ck_assert_uint_ge(refpool_page_to_pfn(pool, page), PAGES_2M);	/* from chunk 1 */

	struct refpool_violation v;

	ck_assert(refpool_first_violation(pool, &v));
	ck_assert_int_eq(v.bug, REFPOOL_BUG_ALLOC_DYING);
	ck_assert_uint_eq(v.pfn, next_pfn);
	ck_assert_uint_eq(v.count, 0);
	ck_assert_str_eq(v.op, "alloc");
	atomic_store(&c0->dying, false);
	refpool_put(pool, page);
	refpool_put(pool, first);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_counted_page_on_the_free_list)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page, *got, *bad;
	uint32_t bad_pfn;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	/* A stray reference taken on the page the allocator hands out next. */
	bad_pfn = refpool_page_to_pfn(pool, page) + 1;
	bad = refpool_pfn_to_page(pool, bad_pfn);
	atomic_store(&bad->refcount, 3);
	ck_assert_int_eq(refpool_alloc(pool, &got), 0);
	assert_reported(&probe, REFPOOL_BUG_COUNTED_FREE, bad_pfn, 3, "alloc");
	ck_assert_ptr_ne(got, bad);
	ck_assert_uint_eq(atomic_load(&bad->refcount), 3);	/* left alone */
	refpool_put(pool, got);
	refpool_put(pool, page);
	atomic_store(&bad->refcount, 0);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_page_missing_at_teardown)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page, *stolen;
	struct refpool_chunk *c0;

	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	refpool_put(pool, page);
	/* Unlink one free page from the chunk's list behind the pool's back. */
	c0 = pool_chunk_of(pool, 0);
	pthread_mutex_lock(&c0->lock);
	stolen = &pool->pages[c0->head];
	c0->head = stolen->next;
	c0->nfree--;
	pthread_mutex_unlock(&c0->lock);
	ck_assert_int_eq(refpool_kill(pool), 0);
	assert_reported(&probe, REFPOOL_BUG_LOST_PAGE, 0, 1, "teardown");
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_first_violation_is_kept)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, CHUNK_2M);
	struct refpool_page *page;
	struct refpool_violation v;

	ck_assert(!refpool_first_violation(pool, &v));
	ck_assert_int_eq(refpool_alloc(pool, &page), 0);
	refpool_put(pool, page);
	refpool_put(pool, page);
	refpool_get(pool, page);
	ck_assert_uint_eq(atomic_load(&probe.violations), 2);
	ck_assert(refpool_first_violation(pool, &v));
	ck_assert_int_eq(v.bug, REFPOOL_BUG_DOUBLE_PUT);
	ck_assert_int_eq(probe.last.bug, REFPOOL_BUG_GET_FREE);

	struct refpool_stats st;

	refpool_get_stats(pool, &st);
	ck_assert_uint_eq(st.violations, 2);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_bug_names)
{
	ck_assert_str_eq(refpool_bug_name(REFPOOL_BUG_DOUBLE_PUT), "double put");
	ck_assert_str_eq(refpool_bug_name(REFPOOL_BUG_COUNTED_FREE), "counted page on the free list");
	ck_assert_str_eq(refpool_bug_name(0), "unknown violation");
	ck_assert_str_eq(refpool_bug_name(99), "unknown violation");
}
END_TEST

static void pin_to_cpu0(void)
{
	pin_self(0);
}

static Suite *debug_suite(void)
{
	Suite *s = suite_create("refpool-debug");
	TCase *tc = tcase_create("violations");

	/* Each test expects the slot its first allocation filled. */
	tcase_add_checked_fixture(tc, pin_to_cpu0, NULL);

	tcase_add_test(tc, test_double_put);
	tcase_add_test(tc, test_put_on_a_free_page);
	tcase_add_test(tc, test_get_on_a_free_page);
	tcase_add_test(tc, test_allocation_from_a_dying_chunk);
	tcase_add_test(tc, test_counted_page_on_the_free_list);
	tcase_add_test(tc, test_page_missing_at_teardown);
	tcase_add_test(tc, test_first_violation_is_kept);
	tcase_add_test(tc, test_bug_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run(debug_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
