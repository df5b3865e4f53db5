/* SPDX-License-Identifier: MIT */
/*
 * Migration back to system memory (the driver's migrate_to_system, and the
 * eviction of a release, a last handle's close or zdevd's exit): runs of
 * device-private pages are marked busy, copied back into place on every CPU
 * with UFFDIO_COPY, then given back to the pool. A coherent device's page
 * has its data in place: the device only lets go of it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "lathist.h"
#include "migrate.h"
#include "page.h"
#include "parallel.h"
#include "trace.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "warm.h"
#include "zdev.h"
#include "zmm.h"

/* ---- migration to system memory ---- */

#define RUN_MAX WIN_PAGES	/* pages per UFFDIO_COPY: one PMD */

/* Pages consecutive both in the process and in device memory: one copy. */
struct back_run {
	uint64_t vpn, n, e;
	bool huge;		/* one whole device THP */
	uint64_t done;		/* pages the copy put in place */
	int err;
};

struct back_ctx {
	struct zmm *mm;
	unsigned int dev;
	bool any_dev;
	uint64_t coherent;	/* coherent pages that left their device */
	bool saw_huge;
	struct back_run *runs;
	size_t nruns, cap;
	int err;
};

static bool gather_entry(uint64_t vpn, uint64_t *e, void *arg)
{
	struct back_ctx *ctx = arg;
	struct back_run *r = ctx->nruns ? &ctx->runs[ctx->nruns - 1] : NULL;
	uint64_t v = *e;

	if (!(v & E_ON_DEVICE) || (v & E_BUSY) || (!ctx->any_dev && e_dev(v) != ctx->dev))
		return true;
	if (v & E_COHERENT) {
		/* Its data is in place already: the device lets go of it, and
		 * the entry goes, as the driver erases its table's entry. */
		zmm_uncharge_coherent_locked(ctx->mm, v, true);
		*e = 0;
		ctx->coherent++;
		return true;
	}
	/* Busy while it is copied: a CPU fault on it waits for the wake-up
	 * at the end instead of copying it a second time. */
	*e = v | E_BUSY;
	/* A device THP is a run of its own, from its first page: the edges of
	 * the range were split, so its window is whole. */
	if (r && vpn == r->vpn + r->n && e_dev(v) == e_dev(r->e) && e_pfn(v) == e_pfn(r->e) + r->n &&
	    r->n < RUN_MAX && r->huge == !!(v & E_HUGE) && (vpn & (WIN_PAGES - 1))) {
		r->n++;
		return true;
	}
	if (v & E_HUGE)
		ctx->saw_huge = true;
	if (ctx->nruns == ctx->cap) {
		size_t cap = ctx->cap ? 2 * ctx->cap : 64;
		struct back_run *runs = realloc(ctx->runs, cap * sizeof(*runs));

		if (!runs) {
			*e = v;
			ctx->err = -ENOMEM;
			return false;
		}
		ctx->runs = runs;
		ctx->cap = cap;
	}
	ctx->runs[ctx->nruns++] = (struct back_run){ .vpn = vpn, .n = 1, .e = v,
						     .huge = !!(v & E_HUGE) };
	return true;
}

struct copy_back_job {
	struct zmm *mm;
	struct back_run *runs;
};

static int copy_back_part(void *ctx, size_t lo, size_t hi)
{
	struct copy_back_job *j = ctx;

	for (size_t i = lo; i < hi; i++) {
		struct back_run *r = &j->runs[i];
		struct refpool *pool = j->mm->ds->dev[e_dev(r->e)].pool;
		struct uffdio_copy copy = {
			.dst = r->vpn << PG_SHIFT,
			.src = (uint64_t)(uintptr_t)refpool_page_mem(pool, zmm_entry_page(j->mm, r->e)),
			.len = r->n * PG_SIZE,
		};

		r->err = uffd_dev_ioctl(j->mm, UFFDIO_COPY, &copy, false);
		r->done = copy.copy > 0 ? (uint64_t)copy.copy / PG_SIZE : 0;
	}
	return 0;
}

/* After the copies, with mm->lock held: forget what went back, retry what a
 * racing change stopped, leave the rest on the device. */
static int finish_run_locked(struct zmm *mm, const struct back_run *r, uint64_t *moved)
{
	uint64_t first;
	int ret = 0;

	if (r->huge) {
		if (r->done == WIN_PAGES && zmm_thp_intact_locked(mm, r->vpn, &first)) {
			zmm_forget_run_locked(mm, r->vpn, WIN_PAGES, first);
			*moved += WIN_PAGES;
			return 0;
		}
		/* Cut short or changed under us: page by page from here. */
		zmm_split_window_locked(mm, r->vpn);
	}

	for (uint64_t i = 0; i < r->n; i++) {
		uint64_t vpn = r->vpn + i, e = ptable_get(&mm->pt, vpn), k = 1;

		if (!(e & E_BUSY))
			continue;	/* unmapped meanwhile: its page went with it */
		e &= ~E_BUSY;
		if (i < r->done) {
			/* Back, with the copied pages after it that are still
			 * there: one stretch of the pool to give back. */
			while (i + k < r->done &&
			       (ptable_get(&mm->pt, vpn + k) & (E_BUSY | E_DEVPRIV | E_DEV_MASK | E_PFN_MASK)) ==
				       (E_BUSY | E_DEVPRIV | (e & E_DEV_MASK) | (e_pfn(e) + k)))
				k++;
			zmm_forget_run_locked(mm, vpn, k, e);
			*moved += k;
			i += k - 1;
			continue;
		}
		ptable_set(&mm->pt, vpn, e);
		if (!ret) {
			/* The copy stopped here (EEXIST: the CPU's copy wins);
			 * the page and any after it go one at a time. */
			ret = uffd_dev_bring_back_locked(mm, vpn, e, false);
			if (!ret)
				(*moved)++;
		}
	}
	return ret;
}

static int bring_back_range(struct zmm *mm, int dev, uint64_t first, uint64_t end,
			    uint64_t *moved)
{
	struct back_ctx ctx = { .mm = mm, .dev = dev < 0 ? 0 : (unsigned int)dev, .any_dev = dev < 0 };
	struct copy_back_job job = { .mm = mm };
	uint64_t n;
	int ret = 0;

	pthread_mutex_lock(&mm->lock);
	zmm_split_edges_locked(mm, first, end);
	ptable_walk(&mm->pt, first, end, gather_entry, &ctx);
	/* FAIL_ALLOC's next large allocation is the system THP a device THP
	 * would come back into; zdev brings pages back as small pages anyway. */
	if (ctx.saw_huge && dev >= 0)
		mm->flags[dev] &= ~ZDEV_FLAG_FAIL_ALLOC;
	n = ctx.coherent;
	pthread_mutex_unlock(&mm->lock);

	/* The copies run unlocked, on every CPU: the client waits for us. */
	job.runs = ctx.runs;
	if (ctx.nruns)
		parallel_run(copy_back_part, &job, ctx.nruns, PARALLEL_MIN_PAGES / RUN_MAX);

	pthread_mutex_lock(&mm->lock);
	for (size_t i = 0; i < ctx.nruns; i++) {
		int r = finish_run_locked(mm, &ctx.runs[i], &n);

		if (r && !ret)
			ret = r;
	}
	pthread_mutex_unlock(&mm->lock);
	for (size_t i = 0; i < ctx.nruns; i++)
		uffd_dev_wake(mm, ctx.runs[i].vpn << PG_SHIFT,
			   (ctx.runs[i].vpn + ctx.runs[i].n) << PG_SHIFT);
	free(ctx.runs);
	if (moved)
		*moved = n;
	return ctx.err ?: ret;
}

int migrate_to_system(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		      uint64_t *cpages)
{
	struct device *device = &mm->ds->dev[dev];
	const uint64_t t0 = tracing() ? lathist_now_ns() : 0;
	int ret;

	warm_device_busy(device);
	ret = bring_back_range(mm, (int)dev, pg_vpn(addr), pg_vpn(addr) + npages, cpages);
	warm_device_done(device);
	if (tracing())
		trace_span(TRACE_TO_SYSTEM, mm->pid, (int)dev, addr, *cpages, *cpages, t0,
			   lathist_now_ns());
	return ret;
}

int migrate_evict(struct zmm *mm, int dev, uint64_t *moved)
{
	const uint64_t t0 = tracing() ? lathist_now_ns() : 0;
	uint64_t n = 0;
	int ret;

	ret = bring_back_range(mm, dev, 0, UINT64_MAX >> PG_SHIFT, &n);
	/* An eviction that found nothing to move is no event. */
	if (tracing() && n)
		trace_span(TRACE_EVICT, mm->pid, dev, 0, n, n, t0, lathist_now_ns());
	if (moved)
		*moved = n;
	return ret;
}
