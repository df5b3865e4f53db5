/* SPDX-License-Identifier: MIT */
/*
 * The device pages a process's page table holds: each device-private or
 * coherent entry holds the process's reference on its page, and a device
 * THP's entries hold its whole block. Entries are changed under mm->lock.
 */
#include "config.h"

#include "devmodel.h"
#include "page.h"
#include "store.h"
#include "zmm.h"

struct refpool_page *zmm_entry_page(struct zmm *mm, uint64_t e)
{
	/* The mm's own reference keeps the page and its chunk alive: no RCU
	 * section is needed for a page we hold. */
	return refpool_pfn_to_page(mm->ds->dev[e_dev(e)].pool, e_pfn(e));
}

bool zmm_entry_shared(struct zmm *mm, uint64_t e)
{
	/* The caller's entry holds a reference, so the count cannot reach 0
	 * under us; a racing put by the other process only makes a copy
	 * that was not needed. */
	return atomic_load_explicit(&zmm_entry_page(mm, e)->refcount, memory_order_acquire) > 1;
}

void zmm_add_device_pages(struct zmm *mm, unsigned int dev, uint64_t n)
{
	struct zmm_counters *c = &mm->cnt[dev];
	/* relaxed: counters for reports, ordered with nothing else. The sum
	 * right after our add is a value device_pages had, whatever the
	 * subtractions racing with it. */
	const uint64_t now = atomic_fetch_add_explicit(&c->device_pages, n,
						       memory_order_relaxed) + n;
	uint64_t peak = atomic_load_explicit(&c->peak_device_pages, memory_order_relaxed);

	while (now > peak &&
	       !atomic_compare_exchange_weak_explicit(&c->peak_device_pages, &peak, now,
						      memory_order_relaxed, memory_order_relaxed))
		;
}

void zmm_split_window_locked(struct zmm *mm, uint64_t w)
{
	for (uint64_t i = 0; i < WIN_PAGES; i++) {
		uint64_t e = ptable_get(&mm->pt, w + i);

		if (e & E_HUGE)
			ptable_set(&mm->pt, w + i, e & ~E_HUGE);
	}
}

void zmm_split_edges_locked(struct zmm *mm, uint64_t start, uint64_t end)
{
	if (start & (WIN_PAGES - 1))
		zmm_split_window_locked(mm, win_of(start));
	if (end & (WIN_PAGES - 1))
		zmm_split_window_locked(mm, win_of(end));
}

bool zmm_thp_intact_locked(struct zmm *mm, uint64_t w, uint64_t *first)
{
	uint64_t e0 = ptable_get(&mm->pt, w);

	if (!(e0 & E_HUGE) || (e_pfn(e0) & (REFPOOL_BLOCK_PAGES - 1)))
		return false;
	for (uint64_t i = 1; i < WIN_PAGES; i++) {
		uint64_t e = ptable_get(&mm->pt, w + i);

		if (!(e & E_HUGE) || e_dev(e) != e_dev(e0) || e_pfn(e) != e_pfn(e0) + i ||
		    (e & E_BUSY) != (e0 & E_BUSY))
			return false;
	}
	*first = e0;
	return true;
}

void zmm_forget_run_locked(struct zmm *mm, uint64_t vpn, uint64_t n, uint64_t e)
{
	const unsigned int dev = e_dev(e);
	struct refpool *pool = mm->ds->dev[dev].pool;

	for (uint64_t i = 0; i < n; i++) {
		ptable_set(&mm->pt, vpn + i, 0);
		store_forget(&mm->stores, dev, e_pfn(e) + (uint32_t)i);
	}
	if ((e & E_HUGE) && n == WIN_PAGES)
		refpool_put_block(pool, refpool_pfn_to_page(pool, e_pfn(e)));
	else
		refpool_put_run(pool, refpool_pfn_to_page(pool, e_pfn(e)), (uint32_t)n);
	atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->cnt[dev].pages_to_system, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->ds->dev[dev].totals.pages_to_system, n, memory_order_relaxed);
	devmodel_note(dev, DEVMODEL_TO_SYSTEM, n);
}

void zmm_uncharge_coherent_locked(struct zmm *mm, uint64_t e, bool to_system)
{
	const unsigned int dev = e_dev(e);

	refpool_put(mm->ds->dev[dev].pool, zmm_entry_page(mm, e));
	atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, 1, memory_order_relaxed);
	if (!to_system)
		return;
	atomic_fetch_add_explicit(&mm->cnt[dev].pages_to_system, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->ds->dev[dev].totals.pages_to_system, 1, memory_order_relaxed);
	devmodel_note(dev, DEVMODEL_TO_SYSTEM, 1);
}

struct drop_ctx {
	struct zmm *mm;
	bool unmap;
};

static bool drop_entry(uint64_t vpn, uint64_t *e, void *arg)
{
	struct drop_ctx *ctx = arg;
	struct zmm *mm = ctx->mm;
	const unsigned int dev = e_dev(*e);

	/* A migration zapping its own pages sees its REMOVE events here: its
	 * pages stay. An unmap ends the migration of what it covers. */
	if ((*e & E_BUSY) && !ctx->unmap)
		return true;
	if ((*e & (E_DEVPRIV | E_HUGE)) == (E_DEVPRIV | E_HUGE)) {
		/* The edges were split first: this THP goes whole, its block
		 * with its first page, the rescue table's entries before it
		 * (once free, the block may be this process's again at once). */
		if (!(vpn & (WIN_PAGES - 1))) {
			for (uint32_t k = 0; k < WIN_PAGES; k++)
				store_forget(&mm->stores, dev, e_pfn(*e) + k);
			refpool_put_block(mm->ds->dev[dev].pool, zmm_entry_page(mm, *e));
			atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, WIN_PAGES,
						  memory_order_relaxed);
		}
	} else if (*e & E_DEVPRIV) {
		store_forget(&mm->stores, dev, e_pfn(*e));
		refpool_put(mm->ds->dev[dev].pool, zmm_entry_page(mm, *e));
		atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, 1, memory_order_relaxed);
	} else if (*e & E_COHERENT) {
		/* The page went with the mapping, or was zapped: the device's
		 * hold on it ends, as the kernel frees a zapped coherent page. */
		zmm_uncharge_coherent_locked(mm, *e, false);
	}
	*e = 0;
	return true;
}

void zmm_drop_range(struct zmm *mm, uint64_t first, uint64_t end, bool unmap)
{
	struct drop_ctx ctx = { .mm = mm, .unmap = unmap };

	pthread_mutex_lock(&mm->lock);
	zmm_split_edges_locked(mm, first, end);
	ptable_walk(&mm->pt, first, end, drop_entry, &ctx);
	pthread_mutex_unlock(&mm->lock);
}

void zmm_drop_all(struct zmm *mm)
{
	/* As if the whole address space were unmapped. */
	zmm_drop_range(mm, 0, pg_vpn(UINT64_MAX), true);
}
