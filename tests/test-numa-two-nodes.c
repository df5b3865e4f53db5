/* SPDX-License-Identifier: MIT */
/* Two devices on two nodes: each pool's memory lands on its own node. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

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
	suite_add_tcase(s, tc);
	failed = check_run(s);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
