/* SPDX-License-Identifier: MIT */
/*
 * Device-exclusive ranges and their revocation, on zdevd's side.
 *
 * The kernel makes a page device-exclusive by replacing its PTE with a
 * non-present entry; any CPU access faults and restores it, and the driver
 * drops its ATOMIC mapping when told. zdevd cannot touch a client's page
 * tables, so the client does both halves itself: its memory is made PROT_NONE
 * on our request, and its SIGSEGV handler restores the protection and marks
 * the page revoked in its exclusive-page map (xmap_layout.h) without sending
 * anything. That map is the truth for the CPU side; the E_ATOMIC(dev) tag in
 * our page table is the device's side. A tag is valid only while the map
 * says the page is still exclusive to that device and its mapping is still
 * PROT_NONE, so before every use of tags over a range we read the map and
 * the mappings and drop the tags that are no longer backed ("sync") — that is
 * how revocations reach the device, one read later, off the CPU's path.
 *
 * A device atomic is done through /proc/PID/mem while the client holds the
 * page PROT_NONE and pinned (XS_BUSY): no CPU thread can touch the page then,
 * and a thread that tries waits in the handler until the pin is gone, so the
 * device's read-modify-write never interleaves with a CPU's.
 *
 * mremap moves PROT_NONE pages to where the client's map has no record of
 * them; the event loop marks them (E_EXCL, with the protection to give back)
 * and the client's handler asks for that on a fault it has no record of.
 *
 * Locking: mm->lock guards the page table and is never held while the client
 * is asked something or its memory read (see uffd_dev.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_mem.h"
#include "exclusive_map.h"
#include "page.h"
#include "trace.h"
#include "uffd_dev.h"
#include "vmas.h"
#include "xmap_layout.h"
#include "zdev.h"
#include "zmm.h"

/* Pages looked at at once: a view costs 10 bytes a page. */
#define XMAP_WINDOW (1ull << 18)
/* Reads of the mappings for one view while a page of it falls in a hole. */
#define VIEW_READS 4

/* The range as it is now: its mappings and the client's map. */
struct xview {
	uint64_t addr, npages;
	struct vma_list vmas;	/* covering the 2 MiB windows around the range */
	const struct vma **vma;	/* per page, NULL in a hole */
	uint16_t *st;		/* per page */
};

/* The client's map over the range; pages outside every leaf read as 0. */
static int read_states(struct zmm *mm, uint64_t vpn, uint64_t n, uint16_t *st)
{
	uint64_t first = vpn >> XMAP_LEAF_SHIFT, last = (vpn + n - 1) >> XMAP_LEAF_SHIFT;
	uint64_t *leaves;
	int ret;

	memset(st, 0, n * sizeof(*st));
	if (!mm->xmap_dir || first >= XMAP_DIR_ENTRIES)
		return 0;
	if (last >= XMAP_DIR_ENTRIES)
		last = XMAP_DIR_ENTRIES - 1;
	leaves = calloc(last - first + 1, sizeof(*leaves));
	if (!leaves)
		return -ENOMEM;
	ret = client_mem_read(mm, leaves, mm->xmap_dir + first * sizeof(uint64_t),
			  (last - first + 1) * sizeof(uint64_t));
	for (uint64_t l = first; !ret && l <= last; l++) {
		uint64_t lo = l << XMAP_LEAF_SHIFT, hi = lo + XMAP_LEAF_PAGES;

		if (!leaves[l - first])
			continue;
		lo = lo > vpn ? lo : vpn;
		hi = hi < vpn + n ? hi : vpn + n;
		ret = client_mem_read(mm, st + (lo - vpn),
				  leaves[l - first] + (lo & (XMAP_LEAF_PAGES - 1)) * sizeof(*st),
				  (hi - lo) * sizeof(*st));
	}
	free(leaves);
	return ret;
}

static void view_free(struct xview *v)
{
	vmas_free(&v->vmas);
	free(v->vma);
	free(v->st);
	v->vma = NULL;
	v->st = NULL;
}

/* Each page's mapping, NULL in a hole; false if a page is in a hole. */
static bool pages_to_vmas(struct xview *v)
{
	bool mapped = true;
	size_t k = 0;

	/* Pages and mappings are both in address order: one pass. */
	for (uint64_t i = 0; i < v->npages; i++) {
		uint64_t a = v->addr + i * PG_SIZE;

		while (k < v->vmas.n && v->vmas.v[k].end <= a)
			k++;
		v->vma[i] = k < v->vmas.n && v->vmas.v[k].start <= a ? &v->vmas.v[k] : NULL;
		mapped &= v->vma[i] != NULL;
	}
	return mapped;
}

static int view_read(struct zmm *mm, uint64_t addr, uint64_t npages, struct xview *v)
{
	const uint64_t win = 1ull << WIN_SHIFT, end = addr + npages * PG_SIZE;
	int ret;

	*v = (struct xview){ .addr = addr, .npages = npages };
	v->vma = calloc(npages, sizeof(*v->vma));
	v->st = calloc(npages, sizeof(*v->st));
	if (!v->vma || !v->st) {
		ret = -ENOMEM;
		goto err_free;
	}
	/*
	 * /proc/PID/maps is no snapshot: it comes in several read() calls,
	 * and the kernel walks it under per-VMA locks, so a mapping that an
	 * mprotect splits or merges meanwhile can be left out, and pages
	 * mapped all along then show in no mapping. The client's threads
	 * mprotect single pages all the time (revocations), and a page in
	 * no mapping would be taken for unmapped: a grant would fail with
	 * EFAULT, and a hold would be forgotten though still PROT_NONE. A
	 * real hole is there on every read, a torn one hardly ever twice:
	 * read again, a few times at most.
	 */
	for (int tries = 1;; tries++) {
		ret = vmas_read(mm->pid, addr & ~(win - 1), (end + win - 1) & ~(win - 1),
				&v->vmas);
		if (ret)
			goto err_free;
		if (pages_to_vmas(v) || tries == VIEW_READS)
			break;
		vmas_free(&v->vmas);
	}
	ret = read_states(mm, addr >> PG_SHIFT, npages, v->st);
	if (ret)
		goto err_free;
	return 0;

err_free:
	view_free(v);
	return ret;
}

static bool vma_none(const struct vma *m)
{
	return m && !(m->flags & (VMA_READ | VMA_WRITE | VMA_EXEC));
}

/* The CPU side still backs dev's exclusive hold on page i. */
static bool held(const struct xview *v, uint64_t i, unsigned int dev)
{
	return (v->st[i] & XS_EXCL) && xs_dev(v->st[i]) == dev && vma_none(v->vma[i]);
}

struct sync_walk {
	struct zmm *mm;
	const struct xview *v;
	uint64_t revoked[ZDEV_MAX_DEVICES];
};

static bool sync_entry(uint64_t vpn, uint64_t *entry, void *arg)
{
	struct sync_walk *w = arg;
	const uint64_t i = vpn - (w->v->addr >> PG_SHIFT), e = *entry;
	uint64_t keep = e;

	/* A moved page's protection is the program's again. */
	if ((e & E_HELD_EXCL) == E_EXCL && !vma_none(w->v->vma[i]))
		keep &= ~(E_EXCL | E_PFN_MASK);
	for (unsigned int d = 0; d < ZDEV_MAX_DEVICES && (e & E_ATOMIC_ALL); d++) {
		if (!(e & E_ATOMIC(d)) || held(w->v, i, d))
			continue;
		/* The CPU got the page back (the kernel's MMU_NOTIFY_CLEAR):
		 * the device's entry goes. */
		keep &= ~(E_ATOMIC(d) | E_MIRROR(d) | E_MIRROR_W(d));
		atomic_fetch_add_explicit(&w->mm->cnt[d].exclusive_revokes, 1,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&w->mm->ds->dev[d].totals.exclusive_revokes, 1,
					  memory_order_relaxed);
		w->revoked[d]++;
	}
	*entry = keep;
	return true;
}

/* Drops the tags the client's map no longer backs: the revocations its
 * handler made since we last looked. Only pages with an entry can hold a
 * tag, so a sparse range costs what it has, not what it spans. Caller
 * holds mm->lock. */
static void sync_locked(struct zmm *mm, const struct xview *v)
{
	const uint64_t vpn0 = v->addr >> PG_SHIFT;
	struct sync_walk w = { .mm = mm, .v = v };

	ptable_walk(&mm->pt, vpn0, vpn0 + v->npages, sync_entry, &w);
	if (tracing())
		for (unsigned int d = 0; d < ZDEV_MAX_DEVICES; d++)
			if (w.revoked[d])
				trace_mark(TRACE_REVOKE, mm->pid, (int)d, v->addr, 0, w.revoked[d]);
}

static unsigned int prot_of(const struct vma *m)
{
	return (m->flags & VMA_READ ? PROT_READ : 0) | (m->flags & VMA_WRITE ? PROT_WRITE : 0) |
	       (m->flags & VMA_EXEC ? PROT_EXEC : 0);
}

/* A page's protection as the program set it: its mapping's, unless we made
 * it PROT_NONE and a revocation is on its way (the client's map has it). */
static unsigned int page_prot(const struct xview *v, uint64_t i)
{
	if (vma_none(v->vma[i]) && (v->st[i] & (XS_EXCL | XS_REVOKING | XS_WAS)))
		return v->st[i] & XS_PROT_MASK;
	return v->vma[i] ? prot_of(v->vma[i]) : 0;
}

/* Pages i and j may share one GRANT: one mapping, one protection. */
static bool same_grant(const struct xview *v, uint64_t i, uint64_t j)
{
	return v->vma[j] == v->vma[i] && page_prot(v, j) == page_prot(v, i);
}

/* A run of pages to ask for: selected ones, and for a GRANT, which carries
 * one protection, of one mapping with one protection. */
struct run_sel {
	const struct xview *v;
	const uint8_t *sel;
	bool grant;
};

static bool run_joins(const void *ctx, uint64_t first, uint64_t i)
{
	const struct run_sel *r = ctx;

	return r->sel[i] && (!r->grant || same_grant(r->v, first, i));
}

/*
 * Asks the client to apply op to each run of selected pages: 0, or the
 * first -errno (-EFAULT for a GRANT cut short). *prefix: pages from the
 * start that were done before the first failure.
 */
static int ask_runs(const struct xview *v, const uint8_t *sel, uint64_t n, uint32_t op,
		    unsigned int dev, uint32_t flags, excl_call_fn call, void *ctx,
		    uint64_t *prefix)
{
	const struct run_sel runs = { v, sel, op == XMAP_GRANT };

	*prefix = n;
	for (uint64_t i = 0, j = 0; run_next_by(n, &i, &j, run_joins, &runs);) {
		struct zmsg_xmap ask = {
			.op = op, .device = dev, .flags = flags, .addr = v->addr + i * PG_SIZE,
			.len = (j - i) * PG_SIZE, .prot = page_prot(v, i),
		};
		uint64_t done = 0;
		int ret = call(ctx, &ask, &done);

		if (ret || (op == XMAP_GRANT && done < ask.len)) {
			*prefix = i + done / PG_SIZE;
			return ret ?: -EFAULT;
		}
	}
	return 0;
}

/*
 * Restores the CPU's access to every exclusive page of the range that is not
 * dev's valid hold (keep_own: dev's holds stay), and forgets records whose
 * mapping the program changed itself. Reads the view again if it asked.
 */
static int clear_foreign(struct zmm *mm, struct xview *v, unsigned int dev, bool keep_own,
			 excl_call_fn call, void *ctx)
{
	uint8_t *revoke = calloc(v->npages, 1), *forget = calloc(v->npages, 1);
	uint64_t nrevoke = 0, nforget = 0, prefix;
	int ret = 0;

	if (!revoke || !forget) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (uint64_t i = 0; i < v->npages; i++) {
		if (!(v->st[i] & (XS_EXCL | XS_BUSY)) || (keep_own && held(v, i, dev)))
			continue;
		if (vma_none(v->vma[i])) {
			revoke[i] = 1;
			nrevoke++;
		} else {
			/* Not PROT_NONE any more: the program's own mprotect
			 * or a new mapping. Its protection is the program's;
			 * only the record goes. */
			forget[i] = 1;
			nforget++;
		}
	}
	if (nrevoke)
		ret = ask_runs(v, revoke, v->npages, XMAP_REVOKE, dev, 0, call, ctx, &prefix);
	if (!ret && nforget)
		ret = ask_runs(v, forget, v->npages, XMAP_FORGET, dev, 0, call, ctx, &prefix);
	if (!ret && (nrevoke || nforget)) {
		uint64_t addr = v->addr, npages = v->npages;

		view_free(v);
		ret = view_read(mm, addr, npages, v);
		if (!ret) {
			pthread_mutex_lock(&mm->lock);
			sync_locked(mm, v);
			pthread_mutex_unlock(&mm->lock);
		}
	}
out_free:
	free(revoke);
	free(forget);
	return ret;
}

static void note_dir(struct zmm *mm, uint64_t dir)
{
	pthread_mutex_lock(&mm->lock);
	if (dir && !mm->xmap_dir)
		mm->xmap_dir = dir;
	pthread_mutex_unlock(&mm->lock);
}

/* A view of the range with dev's stale tags dropped and foreign holds
 * restored to the CPU. */
static int view_synced(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		       bool keep_own, excl_call_fn call, void *ctx, struct xview *v)
{
	int ret = view_read(mm, addr, npages, v);

	if (ret)
		return ret;
	pthread_mutex_lock(&mm->lock);
	sync_locked(mm, v);
	pthread_mutex_unlock(&mm->lock);
	ret = clear_foreign(mm, v, dev, keep_own, call, ctx);
	if (ret)
		view_free(v);
	return ret;
}

/*
 * The kernel's make_device_exclusive, page by page: a page must be mapped
 * writable (GUP with FOLL_WRITE: -EFAULT otherwise) and be private anonymous
 * memory (-EOPNOTSUPP otherwise); the first failure stops the walk and the
 * pages before it stay exclusive. The client populates each run writable
 * (which brings device-private pages back, as GUP's fault would), records
 * it and makes it PROT_NONE. flags XMAP_F_BUSY also pins every page.
 */
static int grant(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		 uint32_t flags, excl_call_fn call, void *ctx, uint64_t *cpages)
{
	const uint64_t vpn0 = addr >> PG_SHIFT;
	uint64_t k, ok, granted = 0;
	struct xview v;
	uint8_t *sel;
	int err = 0, ret;

	*cpages = 0;
	ret = view_synced(mm, dev, addr, npages, true, call, ctx, &v);
	if (ret)
		return ret;
	sel = calloc(npages, 1);
	if (!sel) {
		ret = -ENOMEM;
		goto out_free_view;
	}
	for (k = 0; k < npages; k++) {
		const struct vma *m = v.vma[k];

		if (held(&v, k, dev)) {
			/* Already dev's: a pin is all an atomic needs. */
			sel[k] = (flags & XMAP_F_BUSY) != 0;
			continue;
		}
		/* A page a CPU thread is revoking right now is writable to
		 * the program; the client waits for the revocation to end. */
		if (!m || !(page_prot(&v, k) & PROT_WRITE)) {
			err = -EFAULT;
			break;
		}
		if ((m->flags & VMA_SHARED) || !(m->flags & VMA_ANON)) {
			err = -EOPNOTSUPP;
			break;
		}
		sel[k] = 1;
	}
	/* Registered, so that munmap, mremap and fork of the range reach us. */
	ret = k ? uffd_dev_register(mm, &v.vmas, addr, addr + k * PG_SIZE) : 0;
	if (!ret)
		ret = ask_runs(&v, sel, k, XMAP_GRANT, dev, flags, call, ctx, &ok);
	if (ret) {
		err = ret;
		k = ok;
	}
	pthread_mutex_lock(&mm->lock);
	/* Every page before k is dev's now: granted, or held already (a
	 * hold whose tag a fork dropped gets it back). */
	for (uint64_t i = 0; i < k; i++) {
		uint64_t e = ptable_get(&mm->pt, vpn0 + i);

		if (e & E_ATOMIC(dev))
			continue;
		if ((e & E_HELD_EXCL) == E_EXCL)
			e &= ~(E_EXCL | E_PFN_MASK);	/* the map knows it again */
		ptable_set(&mm->pt, vpn0 + i, e | E_ATOMIC(dev) | E_MIRROR(dev) | E_MIRROR_W(dev));
		atomic_fetch_add_explicit(&mm->cnt[dev].exclusive_grants, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&mm->ds->dev[dev].totals.exclusive_grants, 1,
					  memory_order_relaxed);
		granted++;
	}
	pthread_mutex_unlock(&mm->lock);
	if (tracing() && granted)
		trace_mark(TRACE_GRANT, mm->pid, (int)dev, addr, 0, granted);
	*cpages = k;
	ret = err;
	free(sel);
out_free_view:
	view_free(&v);
	return ret;
}

int excl_make_exclusive(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			uint64_t dir, excl_call_fn call, void *ctx, uint64_t *cpages)
{
	if ((addr >> XMAP_ADDR_BITS) || ((addr + npages * PG_SIZE - 1) >> XMAP_ADDR_BITS))
		return -EOPNOTSUPP;	/* beyond what the client's map covers */
	note_dir(mm, dir);
	if (!mm->xmap_dir)
		return -EINVAL;
	*cpages = 0;
	for (uint64_t done = 0; done < npages;) {
		uint64_t n = npages - done < XMAP_WINDOW ? npages - done : XMAP_WINDOW, c;
		int ret = grant(mm, dev, addr + done * PG_SIZE, n, 0, call, ctx, &c);

		*cpages += c;
		if (ret)
			return ret;
		done += n;
	}
	return 0;
}

struct atomic_find {
	unsigned int dev;
	bool found;
};

/* Stops at the first entry the device holds for atomics. */
static bool find_atomic(uint64_t vpn, uint64_t *entry, void *arg)
{
	struct atomic_find *f = arg;

	(void)vpn;
	f->found = *entry & E_ATOMIC(f->dev);
	return !f->found;
}

/* A look only: other devices' holds stay as they are. */
static int check_window(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages)
{
	const uint64_t vpn0 = addr >> PG_SHIFT;
	struct atomic_find find = { .dev = dev };
	struct xview v;
	int ret;

	ret = view_read(mm, addr, npages, &v);
	if (ret)
		return ret;
	pthread_mutex_lock(&mm->lock);
	sync_locked(mm, &v);
	ptable_walk(&mm->pt, vpn0, vpn0 + npages, find_atomic, &find);
	ret = find.found ? -EPERM : 0;
	pthread_mutex_unlock(&mm->lock);
	view_free(&v);
	return ret;
}

static bool found_entry(uint64_t vpn, uint64_t *entry, void *arg)
{
	(void)entry;
	*(uint64_t *)arg = vpn;
	return false;
}

/* The first page in [vpn, end) with an entry, or end. */
static uint64_t next_entry(struct zmm *mm, uint64_t vpn, uint64_t end)
{
	uint64_t found = end;

	pthread_mutex_lock(&mm->lock);
	ptable_walk(&mm->pt, vpn, end, found_entry, &found);
	pthread_mutex_unlock(&mm->lock);
	return found;
}

/*
 * Only a page with an entry can be held for atomics, or have a tag to drop:
 * the windows start at such pages, so that a range costs what it holds, not
 * what it spans (a range may span terabytes; the kernel's driver looks up
 * each page, in memory, where we read the client's mappings).
 */
int excl_check_exclusive(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			 uint64_t dir)
{
	const uint64_t end = (addr >> PG_SHIFT) + npages;
	uint64_t vpn = addr >> PG_SHIFT;
	int ret = 0;

	note_dir(mm, dir);
	while (!ret && (vpn = next_entry(mm, vpn, end)) < end) {
		uint64_t n = end - vpn < XMAP_WINDOW ? end - vpn : XMAP_WINDOW;

		ret = check_window(mm, dev, vpn << PG_SHIFT, n);
		vpn += n;
	}
	return ret;
}

/* /proc/PID/mem reads and writes pages whatever their protection (the
 * kernel's FOLL_FORCE), which is how the device reaches a PROT_NONE page. */
static int mem_rw(struct zmm *mm, bool write, void *buf, uint64_t addr, size_t len)
{
	int fd;

	pthread_mutex_lock(&mm->lock);
	if (mm->mem_fd < 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/mem", (int)mm->pid);
		mm->mem_fd = open(path, O_RDWR | O_CLOEXEC);
	}
	fd = mm->mem_fd;
	pthread_mutex_unlock(&mm->lock);
	if (fd < 0)
		return -errno;
	/* A page zapped since it became exclusive is missing in registered
	 * memory, where /proc/PID/mem fails rather than wait for a uffd. */
	uffd_dev_fill_holes(mm, addr & ~(PG_SIZE - 1),
			    ((addr + len + PG_SIZE - 1) & ~(PG_SIZE - 1)) / PG_SIZE - addr / PG_SIZE);
	return client_mem_access(mm, fd, write, buf, addr, len);
}

int excl_atomic_add(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t delta,
		    uint64_t dir, excl_call_fn call, void *ctx, uint64_t *old)
{
	const uint64_t page = addr & ~(PG_SIZE - 1);
	uint64_t e, val, c;
	uint16_t st;
	int ret;

	if (addr & 7)
		return -EINVAL;
	if (addr >> XMAP_ADDR_BITS)
		return -EOPNOTSUPP;
	note_dir(mm, dir);
	if (!mm->xmap_dir)
		return -EINVAL;
	ret = read_states(mm, page >> PG_SHIFT, 1, &st);
	if (ret)
		return ret;
	pthread_mutex_lock(&mm->lock);
	e = ptable_get(&mm->pt, page >> PG_SHIFT);
	pthread_mutex_unlock(&mm->lock);
	/* Pinned by the client and still ours: nobody can have revoked it,
	 * since a revocation has to clear XS_EXCL, which a pin forbids. */
	if (!(e & E_ATOMIC(dev)) || (st & (XS_EXCL | XS_BUSY)) != (XS_EXCL | XS_BUSY) ||
	    xs_dev(st) != dev) {
		ret = grant(mm, dev, page, 1, XMAP_F_BUSY, call, ctx, &c);
		if (ret)
			return ret;
	}
	ret = mem_rw(mm, false, &val, addr, sizeof(val));
	if (ret)
		return ret;
	*old = val;
	val += delta;
	return mem_rw(mm, true, &val, addr, sizeof(val));
}

/* The device reads its atomic mapping of the whole range into buf. */
static int read_held(struct zmm *mm, uint64_t addr, uint64_t npages, uint64_t buf)
{
	uint8_t *bounce;
	int ret;

	bounce = malloc(npages * PG_SIZE);
	if (!bounce)
		return -ENOMEM;
	ret = mem_rw(mm, false, bounce, addr, npages * PG_SIZE);
	if (!ret)
		ret = client_mem_write(mm, bounce, buf, npages * PG_SIZE);
	free(bounce);
	return ret;
}

static bool never_exclusive(struct zmm *mm)
{
	bool never;

	pthread_mutex_lock(&mm->lock);
	never = mm->xmap_dir == 0;
	pthread_mutex_unlock(&mm->lock);
	return never;
}

int excl_before_access(struct zmm *mm, unsigned int dev, int type, uint64_t addr,
		       uint64_t npages, uint64_t buf, excl_call_fn call, void *ctx,
		       uint64_t *cpages, uint64_t *faults)
{
	/* test_hmm reads through an ATOMIC entry, but it is not a writable
	 * mapping: a device write faults, which restores the CPU's page. */
	bool all_held = type == ZMSG_READ && npages <= XMAP_WINDOW;
	struct xview v;
	int ret;

	if (never_exclusive(mm))
		return 0;
	if (npages > XMAP_WINDOW) {
		/* Too large to be served from the atomic mapping at once:
		 * the CPU gets it all back, a window at a time. */
		for (uint64_t done = 0; done < npages; done += XMAP_WINDOW) {
			uint64_t n = npages - done < XMAP_WINDOW ? npages - done : XMAP_WINDOW;

			ret = view_read(mm, addr + done * PG_SIZE, n, &v);
			if (ret)
				return ret;
			pthread_mutex_lock(&mm->lock);
			sync_locked(mm, &v);
			pthread_mutex_unlock(&mm->lock);
			ret = clear_foreign(mm, &v, dev, false, call, ctx);
			view_free(&v);
			if (ret)
				return ret;
		}
		return 0;
	}
	ret = view_read(mm, addr, npages, &v);
	if (ret)
		return ret;
	pthread_mutex_lock(&mm->lock);
	sync_locked(mm, &v);
	/* A zap (MADV_DONTNEED) erased the device's entry, as the kernel's
	 * invalidation does, though the client's record stays until a touch:
	 * such a page is no hold to read through. */
	for (uint64_t i = 0; i < npages && all_held; i++)
		all_held = held(&v, i, dev) &&
			   (ptable_get(&mm->pt, (addr >> PG_SHIFT) + i) & E_ATOMIC(dev));
	pthread_mutex_unlock(&mm->lock);
	if (all_held) {
		/* Like test_hmm, the device reads what its table maps; the
		 * exclusivity stays. The mirror has it all: no fault. */
		ret = read_held(mm, addr, npages, buf);
		if (!ret) {
			*cpages = npages;
			*faults = 0;
		}
		view_free(&v);
		return ret ?: 1;
	}
	/* A write, or a mix: the CPU gets every exclusive page back first,
	 * as a device fault on an exclusive entry restores it in the kernel,
	 * and the access then goes the usual way. A migration does the same:
	 * it restores exclusive entries before it collects the pages. */
	ret = clear_foreign(mm, &v, dev, false, call, ctx);
	view_free(&v);
	return ret;
}

static int snapshot_window(struct zmm *mm, uint64_t addr, uint64_t npages, uint64_t buf)
{
	static const uint8_t none = ZDEV_PROT_NONE;
	struct xview v;
	int ret;

	ret = view_read(mm, addr, npages, &v);
	if (ret)
		return ret;
	/* The kernel's snapshot does not fault, and a device-exclusive entry
	 * is not present to it: NONE, whichever device holds the page (our
	 * PROT_NONE would have read as ERROR). */
	for (uint64_t i = 0; i < npages && !ret; i++)
		if ((v.st[i] & XS_EXCL) && vma_none(v.vma[i]))
			ret = client_mem_write(mm, &none, buf + i, 1);
	view_free(&v);
	return ret;
}

int excl_after_snapshot(struct zmm *mm, uint64_t addr, uint64_t npages, uint64_t buf)
{
	int ret = 0;

	if (never_exclusive(mm))
		return 0;
	for (uint64_t done = 0; done < npages && !ret; done += XMAP_WINDOW)
		ret = snapshot_window(mm, addr + done * PG_SIZE,
				      npages - done < XMAP_WINDOW ? npages - done : XMAP_WINDOW,
				      buf + done);
	return ret;
}

/* ---- mremap ---- */

void excl_on_remap(struct zmm *mm, uint64_t from, uint64_t to, uint64_t len)
{
	const uint64_t npages = len / PG_SIZE, vto = to >> PG_SHIFT;
	uint16_t *st;

	if (never_exclusive(mm) || !npages || npages > XMAP_WINDOW * 64)
		return;
	st = calloc(npages, sizeof(*st));
	/* The client's map is plain memory: reading it never waits on a fault
	 * this loop would have to serve. */
	if (!st || read_states(mm, from >> PG_SHIFT, npages, st)) {
		free(st);
		return;
	}
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t e;

		if (!(st[i] & (XS_EXCL | XS_REVOKING)))
			continue;
		e = ptable_get(&mm->pt, vto + i);
		if (e & E_DEVPRIV)
			continue;	/* never both: a held page is unmapped */
		if (e & E_COHERENT) {
			/* The page number field holds the protection from
			 * now on: the coherent device lets go of the page,
			 * whose data is in place anyway. */
			zmm_uncharge_coherent_locked(mm, e, true);
			e &= ~(E_COHERENT | E_DEV_MASK);
		}
		e &= ~E_PFN_MASK;
		ptable_set(&mm->pt, vto + i, e | E_EXCL | (st[i] & XS_PROT_MASK));
	}
	pthread_mutex_unlock(&mm->lock);
	free(st);
}

int excl_moved(struct zmm *mm, uint64_t addr, unsigned int *prot)
{
	uint64_t e;

	pthread_mutex_lock(&mm->lock);
	e = ptable_get(&mm->pt, addr >> PG_SHIFT);
	pthread_mutex_unlock(&mm->lock);
	/* The mark stays: every thread that faulted on the page asks, and
	 * each must get the same answer. A sync or a grant clears it. */
	if (!(e & E_EXCL) || (e & E_DEVPRIV))
		return -ENOENT;
	*prot = (unsigned int)(e & XS_PROT_MASK);
	return 0;
}

struct tagged {
	uint64_t *vpn;
	size_t n, cap;
};

static bool collect_tagged(uint64_t vpn, uint64_t *e, void *arg)
{
	struct tagged *t = arg;

	if (!(*e & E_ATOMIC_ALL))
		return true;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		uint64_t *p = realloc(t->vpn, cap * sizeof(*p));

		if (!p)
			return false;
		t->vpn = p;
		t->cap = cap;
	}
	t->vpn[t->n++] = vpn;
	return true;
}

void excl_sync_all(struct zmm *mm)
{
	struct tagged t = { 0 };

	pthread_mutex_lock(&mm->lock);
	if (mm->xmap_dir)
		ptable_walk(&mm->pt, 0, UINT64_MAX >> PG_SHIFT, collect_tagged, &t);
	pthread_mutex_unlock(&mm->lock);
	for (size_t i = 0; i < t.n;) {
		struct xview v;
		size_t j;

		for (j = i + 1; j < t.n && t.vpn[j] == t.vpn[j - 1] + 1; j++)
			;
		if (!view_read(mm, t.vpn[i] << PG_SHIFT, j - i, &v)) {
			pthread_mutex_lock(&mm->lock);
			sync_locked(mm, &v);
			pthread_mutex_unlock(&mm->lock);
			view_free(&v);
		}
		i = j;
	}
	free(t.vpn);
}
