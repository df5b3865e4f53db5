/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <check.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "pool-helpers.h"

static void probe_page_free(struct refpool *pool, struct refpool_page *page, void *arg)
{
	struct pool_probe *probe = arg;

	atomic_fetch_add(&probe->frees, 1);
	if (probe->on_free)
		probe->on_free(pool, page, probe->ctx);
}

static void probe_evict(struct refpool *pool, struct refpool_page *page, void *arg)
{
	struct pool_probe *probe = arg;

	atomic_fetch_add(&probe->evictions, 1);
	if (probe->on_evict)
		probe->on_evict(pool, page, probe->ctx);
}

static void probe_violation(struct refpool *pool, const struct refpool_violation *v, void *arg)
{
	struct pool_probe *probe = arg;

	(void)pool;
	probe->last = *v;
	atomic_fetch_add(&probe->violations, 1);
}

static int probe_adopt(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg)
{
	struct pool_probe *probe = arg;
	int ret = 0;

	if (probe->on_adopt)
		ret = probe->on_adopt(pool, first_pfn, owner_arg, probe->ctx);
	if (!ret)
		atomic_fetch_add(&probe->adopts, 1);
	return ret;
}

static void probe_release(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg)
{
	struct pool_probe *probe = arg;

	atomic_fetch_add(&probe->releases, 1);
	if (probe->on_release)
		probe->on_release(pool, first_pfn, owner_arg, probe->ctx);
}

static void probe_owner_gone(struct refpool *pool, void *owner_arg, void *arg)
{
	struct pool_probe *probe = arg;

	atomic_fetch_add(&probe->owners_gone, 1);
	if (probe->on_owner_gone)
		probe->on_owner_gone(pool, owner_arg, probe->ctx);
}

static bool probe_prefers(struct refpool *pool, uint32_t first_pfn, void *owner_arg, void *arg)
{
	struct pool_probe *probe = arg;

	return probe->on_prefers && probe->on_prefers(pool, first_pfn, owner_arg, probe->ctx);
}

static const struct refpool_ops probe_ops = {
	.page_free = probe_page_free,
	.evict = probe_evict,
	.violation = probe_violation,
	.adopt_block = probe_adopt,
	.release_block = probe_release,
	.owner_gone = probe_owner_gone,
	.prefers_block = probe_prefers,
};

struct refpool *make_pool(struct pool_probe *probe, size_t chunk, size_t limit)
{
	const struct refpool_config cfg = {
		.name = "test",
		.type = REFPOOL_MEMTYPE_PRIVATE,
		.chunk_bytes = chunk,
		.limit_bytes = limit,
		.node = 0,
		.flags = REFPOOL_DEBUG,
		.ops = &probe_ops,
		.arg = probe,
	};
	struct refpool *pool = NULL;
	int ret = refpool_create(&cfg, &pool);

	ck_assert_msg(ret == 0, "refpool_create: %s", strerror(-ret));
	return pool;
}

void fill_page(struct refpool *pool, struct refpool_page *page, uint64_t seed)
{
	uint64_t *w = refpool_page_mem(pool, page);

	for (size_t i = 0; i < REFPOOL_PAGE_SIZE / sizeof(*w); i++)
		w[i] = seed * 0x9e3779b97f4a7c15ull + i;
}

int page_holds(struct refpool *pool, struct refpool_page *page, uint64_t seed)
{
	const uint64_t *w = refpool_page_mem(pool, page);

	for (size_t i = 0; i < REFPOOL_PAGE_SIZE / sizeof(*w); i++)
		if (w[i] != seed * 0x9e3779b97f4a7c15ull + i)
			return 0;
	return 1;
}

void pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(set), &set), 0);
}
