/* SPDX-License-Identifier: MIT */
/* Device memory lands on the node its pool was placed on. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "numa_place.h"
#include "pool-helpers.h"
#include "check-run.h"

START_TEST(test_chunk_memory_is_on_the_pool_node)
{
	struct pool_probe probe = { 0 };
	struct refpool *pool = make_pool(&probe, CHUNK_2M, 2 * CHUNK_2M);
	struct refpool_page *first, *last;
	struct refpool_page *held[PAGES_2M + 1];

	for (size_t i = 0; i <= PAGES_2M; i++) {
		ck_assert_int_eq(refpool_alloc(pool, &held[i]), 0);
		fill_page(pool, held[i], i);
	}
	first = held[0];
	last = held[PAGES_2M];		/* from the second chunk */
	ck_assert_int_eq(numa_place_node_of(refpool_page_mem(pool, first)), 0);
	ck_assert_int_eq(numa_place_node_of(refpool_page_mem(pool, last)), 0);
	for (size_t i = 0; i <= PAGES_2M; i++)
		refpool_put(pool, held[i]);
	refpool_destroy(pool);
}
END_TEST

START_TEST(test_nodes_are_resolved)
{
	ck_assert_int_ge(numa_place_nodes(), 1);
	ck_assert_int_eq(numa_place_resolve(0), 0);
	ck_assert_int_ge(numa_place_resolve(ZDEV_NODE_LOCAL), 0);
	ck_assert_int_lt(numa_place_resolve(ZDEV_NODE_LOCAL), numa_place_nodes());
	ck_assert_int_eq(numa_place_resolve(numa_place_nodes()), -EINVAL);
	ck_assert_int_eq(numa_place_resolve(-2), -EINVAL);
}
END_TEST

/* The process's own pages move to the node asked (the caller's: the only
 * one on a machine of one node), their data with them. */
START_TEST(test_pages_move_to_the_local_node)
{
	char *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const int node = numa_place_resolve(ZDEV_NODE_LOCAL);
	void *page = mem;

	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_int_ge(node, 0);
	mem[0] = 1;
	ck_assert_int_eq(numa_place_move(0, &page, 1, node), 0);
	ck_assert_int_eq(numa_place_node_of(page), node);
	ck_assert_int_eq(mem[0], 1);
	munmap(mem, 4096);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("numa-place");
	TCase *tc = tcase_create("placement");
	int failed;

	tcase_add_test(tc, test_chunk_memory_is_on_the_pool_node);
	tcase_add_test(tc, test_nodes_are_resolved);
	tcase_add_test(tc, test_pages_move_to_the_local_node);
	suite_add_tcase(s, tc);
	failed = check_run(s);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
