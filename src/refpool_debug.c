/* SPDX-License-Identifier: MIT */
/* The pool's debug mode: violation reports and the teardown audit. */
#include "config.h"

#include "log.h"
#include "refpool-int.h"

static const char *const bug_names[] = {
	[REFPOOL_BUG_DOUBLE_PUT] = "double put",
	[REFPOOL_BUG_PUT_FREE] = "put on a free page",
	[REFPOOL_BUG_GET_FREE] = "get on a free page",
	[REFPOOL_BUG_ALLOC_DYING] = "allocation from a dying chunk",
	[REFPOOL_BUG_COUNTED_FREE] = "counted page on the free list",
	[REFPOOL_BUG_LOST_PAGE] = "free page missing from the free list",
};

const char *refpool_bug_name(enum refpool_bug bug)
{
	if ((unsigned int)bug >= sizeof(bug_names) / sizeof(bug_names[0]) || !bug_names[bug])
		return "unknown violation";
	return bug_names[bug];
}

void refpool_report(struct refpool *pool, enum refpool_bug bug, uint32_t pfn, uint32_t count,
		    const char *op)
{
	const struct refpool_violation v = { .bug = bug, .pfn = pfn, .count = count, .op = op };
	bool first;

	atomic_fetch_add_explicit(&pool->violations, 1, memory_order_relaxed);
	pthread_mutex_lock(&pool->violation_lock);
	first = !pool->have_first;
	if (first) {
		pool->first = v;
		pool->have_first = true;
	}
	pthread_mutex_unlock(&pool->violation_lock);

	if (pool->ops->violation)
		pool->ops->violation(pool, &v, pool->arg);
	else if (first)
		log_err("%s: %s: pfn %u, count %u, in %s (further violations only counted)",
			 pool->name, refpool_bug_name(bug), pfn, count, op);
}

bool refpool_first_violation(struct refpool *pool, struct refpool_violation *v)
{
	bool have;

	pthread_mutex_lock(&pool->violation_lock);
	have = pool->have_first;
	if (have)
		*v = pool->first;
	pthread_mutex_unlock(&pool->violation_lock);
	return have;
}

void refpool_dbg_set(struct refpool *pool, uint32_t pfn, enum refpool_dbg_state state)
{
	atomic_store_explicit(&pool->dbg[pfn], (uint8_t)state, memory_order_relaxed);
}

/*
 * Run once the chunk's counter is 0: every page must have count 0 and be on
 * the chunk's list exactly once (the slots were emptied when it started dying).
 */
void refpool_dbg_audit_chunk(struct refpool *pool, struct refpool_chunk *c)
{
	const uint32_t end = c->first_pfn + pool->chunk_pages;
	uint32_t listed = 0;

	for (uint32_t pfn = c->first_pfn; pfn < end; pfn++) {
		uint32_t count = atomic_load_explicit(&pool->pages[pfn].refcount,
						      memory_order_relaxed);

		if (count)
			refpool_report(pool, REFPOOL_BUG_COUNTED_FREE, pfn, count, "teardown");
	}
	pthread_mutex_lock(&c->lock);
	/* Walk at most chunk_pages links, so a corrupt list cannot loop. */
	for (uint32_t pfn = c->head; pfn != REFPOOL_NO_PFN && listed <= pool->chunk_pages;
	     pfn = pool->pages[pfn].next)
		listed++;
	if (listed != c->nfree || c->nfree != pool->chunk_pages)
		/* count: how many of the chunk's pages the list is short of */
		refpool_report(pool, REFPOOL_BUG_LOST_PAGE, c->first_pfn,
			       pool->chunk_pages - (listed < c->nfree ? listed : c->nfree),
			       "teardown");
	pthread_mutex_unlock(&c->lock);
}
