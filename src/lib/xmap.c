/* SPDX-License-Identifier: MIT */
/*
 * The client's half of device-exclusive access: the exclusive-page map
 * (xmap_layout.h), granting (populate writable, record, PROT_NONE), and
 * revoking (restore the protection, record). Revocation runs in the SIGSEGV
 * handler of whichever thread touched the page, so everything it reaches is
 * lock-free and allocation-free: states change by compare-and-swap, leaves
 * are never unmapped, and waiting is a futex on one global word.
 *
 * Page states move EXCL -> REVOKING -> WAS under one CAS each; only the
 * thread that won EXCL -> REVOKING calls mprotect, so every page is restored
 * exactly once however many threads fault on it. A grant writes EXCL before
 * it makes the range PROT_NONE: a thread that faults afterwards always finds
 * the record. A pinned page (BUSY, a device atomic in flight) is never
 * revoked until the pin goes.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/moved.h"
#include "lib/xmap.h"
#include "page.h"
#include "uffd_compat.h"
#include "xmap_layout.h"

#define MAX_LEAVES 4096		/* 4 TiB of exclusive memory */
/*
 * Revoking one page inside an exclusive run splits its VMA in three; pages
 * revoked in random order could fragment a large range into one VMA a page
 * and reach vm.max_map_count, after which mprotect fails. We count the VMAs
 * our revocations may have added, and past the budget a fault revokes the
 * whole window around the page instead (whose neighbours then merge): the
 * device loses a little more exclusivity, which the kernel allows too (any
 * invalidation ends it), and the process stays far from the limit.
 */
#define VMA_BUDGET 4096

typedef _Atomic uint16_t xstate;

static _Atomic(xstate *) dir[XMAP_DIR_ENTRIES];
/* The leaves made, for fork's sweep: a short list instead of the directory. */
static uint32_t leaf_index[MAX_LEAVES];
static _Atomic unsigned int nleaves;
static pthread_mutex_t leaf_lock = PTHREAD_MUTEX_INITIALIZER;

/* Waiters on a REVOKING or BUSY page sleep on wake_gen; whoever ends such a
 * state bumps it and wakes them if any. All seq_cst: a waiter counts itself
 * before it looks at the page, the waker changes the page before it looks
 * at the count, so one of them always sees the other. */
static _Atomic uint32_t wake_gen;
static _Atomic uint32_t waiters;
/* Bumped at every revocation: tells a fault that raced one from a fault on a
 * page that really is inaccessible (see xmap_fault). */
static _Atomic uint64_t revoke_gen;
/* VMAs our single-page revocations may have added (see VMA_BUDGET). */
static _Atomic long vma_splits;
/* Our uffd serves user-mode faults only: pages are populated by touches
 * (see populate). */
static atomic_bool populate_by_touch;

uint64_t xmap_dir_addr(void)
{
	return (uint64_t)(uintptr_t)dir;
}

static xstate *state_of(uintptr_t addr)
{
	uint64_t vpn = addr >> XMAP_PAGE_SHIFT;
	xstate *leaf;

	if (vpn >> XMAP_LEAF_SHIFT >= XMAP_DIR_ENTRIES)
		return NULL;
	leaf = atomic_load_explicit(&dir[vpn >> XMAP_LEAF_SHIFT], memory_order_acquire);
	return leaf ? &leaf[vpn & (XMAP_LEAF_PAGES - 1)] : NULL;
}

int xmap_prepare(uintptr_t addr, size_t npages)
{
	uint64_t first = addr >> XMAP_PAGE_SHIFT, last = first + npages - 1;
	int ret = 0;

	if (last >> XMAP_LEAF_SHIFT >= XMAP_DIR_ENTRIES)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&leaf_lock);
	for (uint64_t l = first >> XMAP_LEAF_SHIFT; l <= last >> XMAP_LEAF_SHIFT; l++) {
		void *leaf;

		if (atomic_load_explicit(&dir[l], memory_order_relaxed))
			continue;
		if (atomic_load_explicit(&nleaves, memory_order_relaxed) == MAX_LEAVES) {
			ret = -ENOMEM;
			break;
		}
		/* Populated (512 KiB a GiB of exclusive memory): should zdevd
		 * register it with our uffd along with a neighbouring range,
		 * its event loop must still be able to read it without a
		 * fault that only that loop could serve. */
		leaf = mmap(NULL, XMAP_LEAF_PAGES * sizeof(xstate), PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (leaf == MAP_FAILED) {
			ret = -errno;
			break;
		}
		leaf_index[atomic_load_explicit(&nleaves, memory_order_relaxed)] = (uint32_t)l;
		atomic_fetch_add_explicit(&nleaves, 1, memory_order_release);
		/* release: a reader that finds the leaf finds it zeroed. */
		atomic_store_explicit(&dir[l], leaf, memory_order_release);
	}
	pthread_mutex_unlock(&leaf_lock);
	return ret;
}

/* ---- waiting, async-signal-safe ---- */

static void wait_change(xstate *sp, uint16_t seen)
{
	/* Bounded, in case a waker died between its change and its wake. */
	struct timespec ts = { 0, 2 * 1000 * 1000 };
	uint32_t gen;

	atomic_fetch_add(&waiters, 1);
	gen = atomic_load(&wake_gen);
	if (atomic_load(sp) == seen)
		syscall(SYS_futex, &wake_gen, FUTEX_WAIT_PRIVATE, gen, &ts, NULL, 0);
	atomic_fetch_sub(&waiters, 1);
}

static void wake_all(void)
{
	atomic_fetch_add(&wake_gen, 1);
	if (atomic_load(&waiters))
		syscall(SYS_futex, &wake_gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* ---- revoking ---- */

/*
 * Takes page's EXCL record for revocation (-> REVOKING). false if the page
 * is not exclusive (its state in *was). A pin makes us wait, unless zdevd
 * asked (may_unpin): only the thread that holds the connection pins, so
 * within its request any pin is that request's own.
 */
static bool claim(xstate *sp, bool may_unpin, uint16_t *was)
{
	for (;;) {
		uint16_t s = atomic_load_explicit(sp, memory_order_acquire);

		if ((s & XS_REVOKING) || ((s & XS_BUSY) && !may_unpin)) {
			wait_change(sp, s);
			continue;
		}
		*was = s;
		if (!(s & XS_EXCL))
			return false;
		if (atomic_compare_exchange_weak_explicit(sp, &s,
							  XS_REVOKING | (s & XS_PROT_MASK),
							  memory_order_acquire,
							  memory_order_relaxed))
			return true;
	}
}

/* Ends the revocation of n claimed pages from sp (forget: to "never
 * exclusive", the program's own protection stays). */
static void release_claimed(xstate *sp, size_t n, bool forget)
{
	/* Counted before any page shows WAS: a thread whose fault finds WAS
	 * must find this revocation counted too, or it would take its retry
	 * of the access, faulted before this revocation restored the page,
	 * for a second fault with none in between: a real one. */
	atomic_fetch_add(&revoke_gen, 1);
	for (size_t i = 0; i < n; i++) {
		uint16_t s = atomic_load_explicit(&sp[i], memory_order_relaxed);

		/* release: whoever sees WAS sees the protection restored,
		 * and the count above. */
		atomic_store_explicit(&sp[i], forget ? 0 : (uint16_t)(XS_WAS | (s & XS_PROT_MASK)),
				      memory_order_release);
	}
	wake_all();
}

struct revoke_walk {
	uintptr_t addr;
	bool may_unpin;
};

/*
 * run_next_by's test for revoke_range, which claims as it goes: every page
 * it says yes to is REVOKING, the caller's to release. A run is exclusive
 * pages with the first one's protection and consecutive states (one leaf),
 * which one mprotect restores; a page that does not join is given back as
 * it was, and is asked again as the start of the next run.
 */
static bool claims_run(const void *ctx, uint64_t first, uint64_t i)
{
	const struct revoke_walk *w = ctx;
	xstate *sp = state_of(w->addr + i * PG_SIZE), *first_sp;
	uint16_t s, first_s;

	if (i == first)
		return sp && claim(sp, w->may_unpin, &s);
	first_sp = state_of(w->addr + first * PG_SIZE);
	if (sp != first_sp + (i - first) || !claim(sp, w->may_unpin, &s))
		return false;
	/* REVOKING keeps the protection to restore. */
	first_s = atomic_load_explicit(first_sp, memory_order_relaxed);
	if ((s & XS_PROT_MASK) != (first_s & XS_PROT_MASK)) {
		/* Not ours to keep: give it back as it was. */
		atomic_store_explicit(sp, s, memory_order_release);
		return false;
	}
	return true;
}

/*
 * Revokes every exclusive page of [addr, addr + npages pages): one mprotect
 * for each run of claimed pages with the same protection, so a range that
 * was granted as one goes back as one VMA. forget: the records only.
 */
static int revoke_range(uintptr_t addr, size_t npages, bool may_unpin, bool forget)
{
	const struct revoke_walk w = { .addr = addr, .may_unpin = may_unpin };
	int ret = 0;

	for (uint64_t from = 0, to = 0; run_next_by(npages, &from, &to, claims_run, &w);) {
		xstate *sp = state_of(addr + from * PG_SIZE);
		int prot = atomic_load_explicit(sp, memory_order_relaxed) & XS_PROT_MASK;

		if (!forget && mprotect((void *)(addr + from * PG_SIZE), (to - from) * PG_SIZE, prot) &&
		    !ret)
			ret = -errno;
		release_claimed(sp, to - from, forget);
	}
	return ret;
}

/* Inside a run the revocation splits it in three; at its end the edge only
 * moves; alone, the page merges with both neighbours. Grants are not
 * counted, so the count stays at 0 or above. */
static void count_split(bool before, bool after)
{
	long v = atomic_load_explicit(&vma_splits, memory_order_relaxed);

	if (before && after)
		atomic_fetch_add_explicit(&vma_splits, 2, memory_order_relaxed);
	else if (!before && !after)
		while (v > 0 && !atomic_compare_exchange_weak_explicit(&vma_splits, &v, v - 2,
									memory_order_relaxed,
									memory_order_relaxed))
			;
}

static bool excl_at(uintptr_t page)
{
	xstate *sp = state_of(page);

	return sp && (atomic_load_explicit(sp, memory_order_relaxed) & XS_EXCL);
}

/* initial-exec: no lazy TLS allocation inside a signal handler. */
static __thread uintptr_t last_page __attribute__((tls_model("initial-exec")));
static __thread uint64_t last_gen __attribute__((tls_model("initial-exec")));

/* Whether this fault on page should be retried once more: not if this thread
 * faulted there already with no revocation anywhere since (a real fault). */
static bool retry_once(uintptr_t page)
{
	uint64_t gen = atomic_load(&revoke_gen);

	if (last_page == page && last_gen == gen) {
		last_page = 0;
		return false;
	}
	last_page = page;
	last_gen = gen;
	return true;
}

/* A fault where the map has no record: perhaps an exclusive page that mremap
 * moved (moved.c); zdevd knows its protection. */
static bool revoke_moved(uintptr_t page)
{
	unsigned int prot;

	if (!moved_query(page, &prot) || !retry_once(page))
		return false;
	return !mprotect((void *)page, PG_SIZE, (int)prot);
}

bool xmap_fault(uintptr_t addr)
{
	const uintptr_t page = addr & ~(PG_SIZE - 1);
	xstate *sp = state_of(page);
	uint16_t s;

	s = sp ? atomic_load_explicit(sp, memory_order_relaxed) : 0;
	if (!(s & (XS_EXCL | XS_BUSY | XS_REVOKING | XS_WAS)))
		return revoke_moved(page);
	if ((s & XS_EXCL) && excl_at(page - PG_SIZE) && excl_at(page + PG_SIZE) &&
	    atomic_load_explicit(&vma_splits, memory_order_relaxed) >= VMA_BUDGET) {
		revoke_range(win_down(page), WIN_PAGES, false, false);
		return true;	/* a real fault there comes back as one on WAS */
	}
	if (claim(sp, false, &s)) {
		const bool before = excl_at(page - PG_SIZE), after = excl_at(page + PG_SIZE);
		int err = mprotect((void *)page, PG_SIZE, s & XS_PROT_MASK);

		if (err) {
			/* No VMA left to split into: the whole block goes
			 * back, which merges instead. Should that fail too,
			 * the next fault on the page is a real one. */
			atomic_store_explicit(sp, s, memory_order_release);
			wake_all();
			revoke_range(win_down(page), WIN_PAGES, false, false);
			return true;
		}
		release_claimed(sp, 1, false);
		count_split(before, after);
		return true;
	}
	if (!(s & XS_WAS))
		return false;
	/* Revoked by someone else, perhaps after our fault but before we
	 * looked: retry the access once. A second fault on the same page with
	 * no revocation anywhere in between is a real one. */
	return retry_once(page);
}

/* run_next_by's test for xmap_revoke_all, over one leaf: the pages fork must
 * not find exclusive. In flight too: a revocation another thread has begun
 * must end before the fork, or the child would wait for a thread it lacks. */
static bool held_or_in_flight(const void *leaf, uint64_t first, uint64_t i)
{
	const xstate *states = leaf;

	(void)first;
	return atomic_load_explicit(&states[i], memory_order_relaxed) &
	       (XS_EXCL | XS_REVOKING | XS_BUSY);
}

void xmap_revoke_all(void)
{
	unsigned int n = atomic_load_explicit(&nleaves, memory_order_acquire);
	sigset_t mask;

	xmap_signals_block(&mask);
	for (unsigned int i = 0; i < n; i++) {
		uintptr_t base = (uintptr_t)leaf_index[i] << (XMAP_LEAF_SHIFT + XMAP_PAGE_SHIFT);
		xstate *leaf = atomic_load_explicit(&dir[leaf_index[i]], memory_order_acquire);

		for (uint64_t from = 0, to = 0;
		     run_next_by(XMAP_LEAF_PAGES, &from, &to, held_or_in_flight, leaf);)
			revoke_range(base + from * PG_SIZE, to - from, false, false);
	}
	xmap_signals_restore(&mask);
}

void xmap_atfork_child(void)
{
	unsigned int n = atomic_load_explicit(&nleaves, memory_order_relaxed);

	/* Only the forking thread came along: a state another thread was
	 * in the middle of changing would wait for it forever. A revocation
	 * in flight becomes exclusive again (its page revokes on touch, the
	 * protection set twice does no harm); a pin has no holder left. */
	for (unsigned int i = 0; i < n; i++) {
		xstate *leaf = atomic_load_explicit(&dir[leaf_index[i]], memory_order_relaxed);

		for (size_t p = 0; p < XMAP_LEAF_PAGES; p++) {
			uint16_t s = atomic_load_explicit(&leaf[p], memory_order_relaxed), t = s;

			if (t & XS_REVOKING)
				t = (uint16_t)((t & ~XS_REVOKING) | XS_EXCL);
			t &= (uint16_t)~XS_BUSY;
			/* Written only if changed: no copy of the whole map. */
			if (t != s)
				atomic_store_explicit(&leaf[p], t, memory_order_relaxed);
		}
	}
	atomic_store(&waiters, 0);
}

/* ---- granting ---- */

/* Records one page as dev's (keeping a hold it has, pinning if asked);
 * false if the page was dev's already (nothing to populate or protect). */
static bool record(xstate *sp, unsigned int dev, unsigned int prot, bool busy)
{
	for (;;) {
		uint16_t s = atomic_load_explicit(sp, memory_order_acquire), want;
		bool had = (s & XS_EXCL) && xs_dev(s) == dev;

		if (s & XS_REVOKING) {
			wait_change(sp, s);
			continue;
		}
		want = had ? s : xs_excl(dev, prot);
		want |= busy ? XS_BUSY : 0;
		if (atomic_compare_exchange_weak_explicit(sp, &s, want, memory_order_release,
							  memory_order_relaxed))
			return !had;
	}
}

void xmap_populate_by_touch(bool on)
{
	atomic_store_explicit(&populate_by_touch, on, memory_order_relaxed);
}

/* A write access from user mode to every page of [addr, addr + n pages)
 * that changes nothing: an atomic add of 0, so that a CPU thread's store to
 * the same word in between is never lost. */
static void touch_writable(uintptr_t addr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		__atomic_fetch_add((volatile uint64_t *)(addr + i * PG_SIZE), 0, __ATOMIC_RELAXED);
}

/* Populates [addr, addr + n pages) writable; the pages that made it. */
static size_t populate(uintptr_t addr, size_t n, int *err)
{
	/* Writable and present, COW broken, a device-private page faulted
	 * back through our uffd: what GUP with FOLL_WRITE does. */
	if (!madvise((void *)addr, n * PG_SIZE, MADV_POPULATE_WRITE))
		return n;
	/* MADV_POPULATE_WRITE faults from kernel mode, which a uffd made
	 * with UFFD_USER_MODE_ONLY fails with EFAULT instead of asking zdevd
	 * (for never-touched pages and device-private ones alike). zdevd
	 * checked that the range is writable anonymous memory, so touching
	 * it raises only the faults zdevd serves. */
	if (errno == EFAULT && atomic_load_explicit(&populate_by_touch, memory_order_relaxed)) {
		touch_writable(addr, n);
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		if (madvise((void *)(addr + i * PG_SIZE), PG_SIZE, MADV_POPULATE_WRITE)) {
			*err = errno == ENOMEM ? -EFAULT : -errno;
			return i;
		}
	}
	return n;
}

static void unpin_range(uintptr_t addr, size_t npages)
{
	for (size_t k = 0; k < npages; k++)
		atomic_fetch_and_explicit(state_of(addr + k * PG_SIZE), (uint16_t)~XS_BUSY,
					  memory_order_release);
	wake_all();
}

/* Whether the page is dev's now, once a revocation in progress has ended
 * (its page is PROT_NONE until then, and could not be populated). */
static bool settled_held(xstate *sp, unsigned int dev)
{
	for (;;) {
		uint16_t s = atomic_load_explicit(sp, memory_order_acquire);

		if (!(s & XS_REVOKING))
			return (s & XS_EXCL) && xs_dev(s) == dev;
		wait_change(sp, s);
	}
}

struct grant_walk {
	uintptr_t addr;
	unsigned int dev;
};

/* run_next_by's test for grant: a run of pages that are not dev's yet, all
 * in leaves. */
static bool not_devs_yet(const void *ctx, uint64_t first, uint64_t i)
{
	const struct grant_walk *w = ctx;
	xstate *sp = state_of(w->addr + i * PG_SIZE);

	(void)first;
	return sp && !settled_held(sp, w->dev);
}

/*
 * Gives dev [addr, addr + n pages), none of it dev's yet: populates, records
 * and protects. The pages granted from the start; *err says why not all.
 */
static size_t grant_run(uintptr_t addr, size_t n, unsigned int dev, unsigned int prot, bool busy,
			int *err)
{
	size_t ok = populate(addr, n, err);

	/* Recorded pinned until the protection is in place, so that nothing
	 * revokes a page between the two (fork's sweep in another thread
	 * would restore it, and our mprotect would then take it away again
	 * behind the record's back). */
	for (size_t k = 0; k < ok; k++)
		record(state_of(addr + k * PG_SIZE), dev, prot, true);
	/* After the records: a thread that faults from now on finds them. A
	 * thread that touched the page before did so before the grant:
	 * mprotect returns only once every CPU has flushed its TLB entries
	 * (the shootdown interrupts an atomic instruction only between
	 * instructions), so no CPU access is still in flight when the device
	 * starts. */
	if (ok && mprotect((void *)addr, ok * PG_SIZE, PROT_NONE)) {
		*err = -errno;
		revoke_range(addr, ok, true, true);
		return 0;
	}
	if (ok && !busy)
		unpin_range(addr, ok);
	return ok;
}

/* A GRANT: the pages done from the start, or the status of the failure. */
static int grant(uintptr_t addr, size_t npages, unsigned int dev, unsigned int prot, bool busy,
		 size_t *done)
{
	const struct grant_walk w = { .addr = addr, .dev = dev };
	int ret = 0;

	*done = 0;
	for (uint64_t i = 0; i < npages;) {
		xstate *sp = state_of(addr + i * PG_SIZE);
		uint64_t from = i, to = i;
		size_t ok;

		if (!sp)
			return -EINVAL;	/* xmap_prepare was not called */
		if (settled_held(sp, dev)) {
			record(sp, dev, prot, busy);
			*done = ++i;
			continue;
		}
		/* Page i is not dev's yet, and stays so (only this thread
		 * grants): the run of such pages starts there. */
		run_next_by(npages, &from, &to, not_devs_yet, &w);
		ok = grant_run(addr + from * PG_SIZE, to - from, dev, prot, busy, &ret);
		*done = from + ok;
		if (ok < to - from)
			return ret;
		i = to;
	}
	return 0;
}

void xmap_signals_block(sigset_t *old)
{
	sigset_t all;

	/* A handler of some signal that touched a page this thread holds
	 * REVOKING or pinned would wait for this very thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
}

void xmap_signals_restore(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

void xmap_serve(struct zmsg_xmap *m)
{
	const size_t npages = m->len / PG_SIZE;
	size_t done = 0;
	sigset_t mask;
	int ret;

	xmap_signals_block(&mask);
	if ((m->addr | m->len) & (PG_SIZE - 1) || m->addr + m->len < m->addr) {
		ret = -EINVAL;
	} else if (m->op == XMAP_GRANT) {
		ret = grant(m->addr, npages, m->device, m->prot, m->flags & XMAP_F_BUSY, &done);
		m->len = done * PG_SIZE;
	} else if (m->op == XMAP_REVOKE || m->op == XMAP_FORGET) {
		/* Our own pin may be in the range: zdevd re-grants it. */
		ret = revoke_range(m->addr, npages, true, m->op == XMAP_FORGET);
	} else {
		ret = -EINVAL;
	}
	xmap_signals_restore(&mask);
	m->status = ret;
	m->hdr.type = ZMSG_XMAP_DONE;
}

/* ---- device atomics ---- */

bool xmap_pin(uintptr_t page, unsigned int dev)
{
	xstate *sp = state_of(page);
	uint16_t s;

	if (!sp)
		return false;
	s = atomic_load_explicit(sp, memory_order_acquire);
	if (!(s & XS_EXCL) || xs_dev(s) != dev || (s & XS_BUSY))
		return false;
	/* acquire: the device's access comes after every CPU access that
	 * happened before the page was last made PROT_NONE. */
	return atomic_compare_exchange_strong_explicit(sp, &s, s | XS_BUSY, memory_order_acquire,
						       memory_order_relaxed);
}

void xmap_unpin(uintptr_t page)
{
	xstate *sp = state_of(page);

	if (!sp || !(atomic_load(sp) & XS_BUSY))
		return;
	/* release: a CPU thread that revokes after this sees the device's
	 * write (it went through the kernel into the same page before zdevd
	 * replied; the reply orders it before this store). */
	atomic_fetch_and_explicit(sp, (uint16_t)~XS_BUSY, memory_order_release);
	wake_all();
}
