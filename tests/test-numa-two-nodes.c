/* SPDX-License-Identifier: MIT */
/* Two devices on two nodes: each pool's memory lands on its own node. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "numa_place.h"
#include "pool-helpers.h"
#include "check-run.h"

static void *evict_nothing_arg;

static void evict_nothing(struct refpool *pool, struct refpool_page *page, void *arg)
{
	(void)pool;
	(void)page;
	evict_nothing_arg = arg;
}

static const struct refpool_ops ops = { .evict = evict_nothing };

START_TEST(test_each_pool_on_its_node)
{
	for (int node = 0; node < 2; node++) {
		const struct refpool_config cfg = {
			.name = "node", .type = REFPOOL_MEMTYPE_PRIVATE,
			.chunk_bytes = CHUNK_2M, .limit_bytes = CHUNK_2M,
			.node = node, .flags = REFPOOL_DEBUG, .ops = &ops,
		};
		struct refpool *pool;
		struct refpool_page *page;

		ck_assert_int_eq(refpool_create(&cfg, &pool), 0);
		ck_assert_int_eq(refpool_alloc(pool, &page), 0);
		fill_page(pool, page, 1);
		ck_assert_int_eq(numa_place_node_of(refpool_page_mem(pool, page)), node);
		refpool_put(pool, page);
		refpool_destroy(pool);
	}
}
END_TEST

/* A coherent device's pages are the process's own, moved to the device's
 * node (numa_place_move, migrate_coherent.c). */
START_TEST(test_process_pages_move_to_a_node)
{
	const size_t len = 2 * 4096;
	char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *pages[2];

	ck_assert_ptr_ne(mem, MAP_FAILED);
	memset(mem, 1, len);
	pages[0] = mem;
	pages[1] = mem + 4096;
	for (int node = 1; node >= 0; node--) {
		ck_assert_int_eq(numa_place_move(0, pages, 2, node), 0);
		ck_assert_int_eq(numa_place_node_of(pages[0]), node);
		ck_assert_int_eq(numa_place_node_of(pages[1]), node);
	}
	munmap(mem, len);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;
	int failed;

	if (numa_place_nodes() < 2)
		return check_skip_all("this machine has %d NUMA node(s); placing two devices on "
				      "two nodes needs 2", numa_place_nodes());
	s = suite_create("numa-two-nodes");
	tc = tcase_create("placement");
	tcase_add_test(tc, test_each_pool_on_its_node);
	tcase_add_test(tc, test_process_pages_move_to_a_node);
	suite_add_tcase(s, tc);
	failed = check_run(s);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
