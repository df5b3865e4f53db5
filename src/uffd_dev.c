/* SPDX-License-Identifier: MIT */
/*
 * Device-private pages on the userfaultfd side: registering a client's
 * memory, the CPU fault service (the kernel's migrate_to_ram) and the uffd
 * events that change a client's address space under zdevd's feet, with the
 * uffd primitives migrations use.
 *
 * A device-private page has its data only in device memory and no page in
 * the client: the client's virtual page is missing in a uffd-registered
 * range, so any CPU touch raises a MISSING fault that zdevd serves by copying
 * the data back (UFFDIO_COPY) and freeing the device page.
 *
 * Locking: mm->lock guards the page table. It is never held across a call
 * that can fault on the client's memory (process_vm_readv/writev), because
 * that fault may need the event loop, which takes mm->lock to serve it.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lathist.h"
#include "log.h"
#include "page.h"
#include "store.h"
#include "trace.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "vmas.h"
#include "zmm.h"

#define EAGAIN_TRIES 10000

/* Retries a uffd ioctl while non-cooperative events are pending: the kernel
 * refuses with EAGAIN until the loop has read them. */
int uffd_dev_ioctl(struct zmm *mm, unsigned long req, void *arg, bool in_loop)
{
	for (int i = 0; i < EAGAIN_TRIES; i++) {
		if (!ioctl(mm->uffd, req, arg))
			return 0;
		if (errno != EAGAIN)
			return -errno;
		/* The loop thread cannot wait for itself: it gives up and
		 * lets the fault be retried after the pending events. Nor can
		 * anyone wait once the loop has stopped. */
		if (in_loop || atomic_load_explicit(&mm->ds->events_unread, memory_order_relaxed))
			return -EAGAIN;
		usleep(20);
	}
	return -EAGAIN;
}

/* ---- bringing a page back: the kernel's migrate_to_ram ---- */

/*
 * UFFDIO_COPY of len bytes to dst. A page that is present already (EEXIST:
 * something mapped it meanwhile) keeps the CPU's copy, as after a racing
 * fault, and the copy goes on after it.
 */
static int copy_into_client(struct zmm *mm, uint64_t dst, const void *src, uint64_t len,
			    bool in_loop, uint64_t mode)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy copy = {
			.dst = dst + done,
			.src = (uint64_t)(uintptr_t)src + done,
			.len = len - done,
			.mode = mode,
		};
		int ret = uffd_dev_ioctl(mm, UFFDIO_COPY, &copy, in_loop);

		if (!ret)
			return 0;
		if (copy.copy > 0)
			done += (uint64_t)copy.copy;
		if (ret != -EEXIST)
			return ret;
		done += PG_SIZE;
	}
	return 0;
}

/*
 * Copies a device-private page back into the client and frees the device
 * page; a page of a device THP brings back its whole window, as
 * migrate_to_ram does for a PMD-mapped device folio. Caller holds mm->lock;
 * on success the entries are gone (the CPU page table changed, so every
 * device's mirror entry for them is erased too).
 */
static int bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop,
			     uint64_t *pages, struct uffd_fault_held *held)
{
	struct device *dev = &mm->ds->dev[e_dev(e)];
	struct refpool *pool = dev->pool;
	const bool hold = held && devmodel_on(&dev->model);
	uint64_t n = 1, first;
	int ret;

	if (e & E_HUGE) {
		if (zmm_thp_intact_locked(mm, win_of(vpn), &first)) {
			vpn = win_of(vpn);
			e = first;
			n = WIN_PAGES;
		} else {
			zmm_split_window_locked(mm, win_of(vpn));
			e &= ~E_HUGE;
		}
	}
	ret = copy_into_client(mm, vpn << PG_SHIFT,
			       refpool_page_mem(pool, zmm_entry_page(mm, e)), n * PG_SIZE, in_loop,
			       hold ? UFFDIO_COPY_MODE_DONTWAKE : 0);
	/* ENOENT/ESRCH: the mapping or the whole process is gone, and with it
	 * the data. */
	if (ret && ret != -ENOENT && ret != -ESRCH)
		return ret;
	zmm_forget_run_locked(mm, vpn, n, e);
	*pages = n;
	if (hold)
		*held = (struct uffd_fault_held){ .dev = dev->index, .start = vpn << PG_SHIFT,
						  .len = n * PG_SIZE };
	return 0;
}

int uffd_dev_bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop)
{
	uint64_t pages;

	return bring_back_locked(mm, vpn, e, in_loop, &pages, NULL);
}

int uffd_dev_bring_back_n_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop,
				 uint64_t *pages)
{
	return bring_back_locked(mm, vpn, e, in_loop, pages, NULL);
}

/* ---- the CPU fault service (event loop) ---- */

/* Zeros to resolve write faults from, a whole window at once. */
static const uint8_t zero_window[WIN_SIZE] __attribute__((aligned(PG_SIZE)));

/* The run from vpn to the end of its window that holds no device page. */
static uint64_t plain_run_locked(struct zmm *mm, uint64_t vpn)
{
	const uint64_t end = win_of(vpn) + WIN_PAGES;
	uint64_t n = 1;

	while (vpn + n < end && !(ptable_get(&mm->pt, vpn + n) & (E_DEVPRIV | E_BUSY)))
		n++;
	return n;
}

/*
 * A never-touched page of a registered window (not device-private). Its
 * neighbours up to the end of the window are resolved with it: first touches
 * come in runs, and one round trip per page would make registered memory
 * many times slower to fill than plain memory. Device-private pages are never
 * part of it: a CPU fault brings back exactly the page it touched.
 */
static int resolve_zero(struct zmm *mm, uint64_t addr, bool write)
{
	uint64_t n = plain_run_locked(mm, pg_vpn(addr));
	int ret;

	for (;;) {
		if (write) {
			struct uffdio_copy copy = { .dst = addr, .src = (uintptr_t)zero_window,
						    .len = n * PG_SIZE };

			ret = uffd_dev_ioctl(mm, UFFDIO_COPY, &copy, true);
			if (ret && copy.copy > 0)
				ret = 0;	/* stopped at a present page: ours is done */
		} else {
			struct uffdio_zeropage zero = { .range = { .start = addr, .len = n * PG_SIZE } };

			ret = uffd_dev_ioctl(mm, UFFDIO_ZEROPAGE, &zero, true);
			if (ret && zero.zeropage > 0)
				ret = 0;
		}
		/* The run may leave the registered mapping: then just the page. */
		if ((ret == -EINVAL || ret == -ENOENT) && n > 1) {
			n = 1;
			continue;
		}
		break;
	}
	if (ret == -EEXIST) {
		/* Present after all: a stale write-protect marker made the
		 * fault; drop it, which also wakes the faulting thread. */
		struct uffdio_writeprotect wp = { .range = { .start = addr, .len = PG_SIZE } };

		ret = uffd_dev_ioctl(mm, UFFDIO_WRITEPROTECT, &wp, true);
	}
	return ret == -ENOENT || ret == -ESRCH ? 0 : ret;
}

/* A device page a CPU access brought back: a CPU fault, or for a page held
 * exclusive, the kernel's MMU_NOTIFY_EXCLUSIVE revocation. */
static void count_bring_back(struct zmm *mm, uint64_t e)
{
	const unsigned int dev = e_dev(e);

	if ((e & E_HELD_EXCL) == E_HELD_EXCL) {
		atomic_fetch_add_explicit(&mm->cnt[dev].exclusive_revokes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&mm->ds->dev[dev].totals.exclusive_revokes, 1,
					  memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&mm->cnt[dev].cpu_faults, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&mm->ds->dev[dev].totals.cpu_faults, 1,
					  memory_order_relaxed);
	}
}

int uffd_dev_fault(struct zmm *mm, uint64_t addr, uint64_t flags, struct uffd_fault_done *done)
{
	const uint64_t vpn = pg_vpn(addr);
	uint64_t e;
	int ret;

	done->held.len = 0;
	pthread_mutex_lock(&mm->lock);
	e = ptable_get(&mm->pt, vpn);
	if (e & E_BUSY) {
		/* A migration owns the page; it wakes every waiter of its
		 * range when done, and the retried access faults again. */
		pthread_mutex_unlock(&mm->lock);
		return 0;
	}
	if ((e & E_COHERENT) && (flags & UFFD_PAGEFAULT_FLAG_WP) && zmm_entry_shared(mm, e)) {
		/* A write to a coherent page a fork shares: the kernel's
		 * copy-on-write gives the writer a system page of its own
		 * (zdev's is that already), and the device lets go of this
		 * process's hold; the write protection goes below. */
		zmm_uncharge_coherent_locked(mm, e, false);
		ptable_set(&mm->pt, vpn, 0);
	}
	if (e & E_DEVPRIV) {
		ret = bring_back_locked(mm, vpn, e, true, &done->pages, &done->held);
		if (!ret)
			count_bring_back(mm, e);
		done->dev = e_dev(e);
		done->revoked = (e & E_HELD_EXCL) == E_HELD_EXCL;
		ret = ret ?: 1;
	} else {
		ret = resolve_zero(mm, addr & ~(PG_SIZE - 1), flags & UFFD_PAGEFAULT_FLAG_WRITE);
	}
	pthread_mutex_unlock(&mm->lock);
	return ret;
}

/*
 * Zeros for [addr, its window's end) as far as no device page lies in it, or
 * for the page at addr alone where the run leaves the registered mapping;
 * for a write to a present page, its write protection dropped (a stale
 * marker). Caller holds mm->lock. 0, -EAGAIN while events are pending, or
 * -EFAULT when the page is not one of ours that is merely missing.
 */
static int resolve_for_access_locked(struct zmm *mm, uint64_t addr, bool write)
{
	uint64_t n = plain_run_locked(mm, pg_vpn(addr));
	int ret;

	for (;;) {
		struct uffdio_zeropage zero = { .range = { .start = addr, .len = n * PG_SIZE } };

		ret = uffd_dev_ioctl(mm, UFFDIO_ZEROPAGE, &zero, true);
		if (ret && zero.zeropage > 0)
			ret = 0;
		if ((ret == -EINVAL || ret == -ENOENT) && n > 1) {
			n = 1;
			continue;
		}
		break;
	}
	if (ret == -EEXIST && write) {
		/* No migration owns the page (the caller looked), so a
		 * write-protect marker on it is stale. */
		struct uffdio_writeprotect wp = { .range = { .start = addr, .len = PG_SIZE } };

		ret = uffd_dev_ioctl(mm, UFFDIO_WRITEPROTECT, &wp, true);
	}
	return ret == -EAGAIN ? ret : ret ? -EFAULT : 0;
}

int uffd_dev_resolve_for_access(struct zmm *mm, uint64_t addr, bool write)
{
	const uint64_t page = addr & ~(PG_SIZE - 1), vpn = pg_vpn(page);
	const uint64_t t0 = tracing() ? lathist_now_ns() : 0;
	uint64_t e, pages;
	int ret;

	pthread_mutex_lock(&mm->lock);
	e = ptable_get(&mm->pt, vpn);
	if (e & E_BUSY) {
		ret = -EAGAIN;
	} else if (e & E_DEVPRIV) {
		/* What the CPU fault this access would have raised does: the
		 * page comes home, never zeros in its place. */
		ret = uffd_dev_bring_back_n_locked(mm, vpn, e, true, &pages);
		if (!ret)
			count_bring_back(mm, e);
		if (!ret && tracing())
			/* The kernel's access has no thread of the client's
			 * to show: the process's own track. */
			trace_fault((e & E_HELD_EXCL) == E_HELD_EXCL ? TRACE_REVOKE_FAULT
								     : TRACE_CPU_FAULT,
				    mm->pid, 0, e_dev(e), page, pages, t0, lathist_now_ns());
	} else {
		ret = resolve_for_access_locked(mm, page, write);
	}
	pthread_mutex_unlock(&mm->lock);
	return ret == -EAGAIN ? ret : ret ? -EFAULT : 1;
}

int uffd_dev_fill_zeros(struct zmm *mm, uint64_t addr, uint64_t npages)
{
	int ret = 0;

	for (uint64_t done = 0; done < npages && !ret;) {
		const uint64_t n = npages - done < WIN_PAGES ? npages - done : WIN_PAGES;

		ret = copy_into_client(mm, addr + done * PG_SIZE, zero_window, n * PG_SIZE, false, 0);
		done += n;
	}
	return ret == -ENOENT || ret == -ESRCH ? 0 : ret;
}

void uffd_dev_fill_holes(struct zmm *mm, uint64_t addr, uint64_t npages)
{
	uint64_t *pm = calloc(npages, sizeof(*pm));

	if (!pm)
		return;
	if (!pagemap_read(mm->pagemap_fd, addr, npages, pm)) {
		pthread_mutex_lock(&mm->lock);
		for (uint64_t i = 0; i < npages; i++) {
			struct uffdio_zeropage z = { .range = { addr + i * PG_SIZE, PG_SIZE } };

			if ((pm[i] & (PM_PRESENT | PM_SWAP)) ||
			    (ptable_get(&mm->pt, pg_vpn(addr) + i) & (E_DEVPRIV | E_BUSY)))
				continue;
			/* EINVAL: not registered, the kernel faults it in
			 * itself; EAGAIN: events pending, the copy's own fault
			 * is served then. */
			ioctl(mm->uffd, UFFDIO_ZEROPAGE, &z);
		}
		pthread_mutex_unlock(&mm->lock);
	}
	free(pm);
}

/* ---- uffd events ---- */

/* munmap, MADV_DONTNEED, MADV_REMOVE: device pages of the range are freed at
 * once, mirror entries erased. */
void uffd_dev_on_remove(struct zmm *mm, uint64_t start, uint64_t end, bool unmap)
{
	zmm_drop_range(mm, pg_vpn(start), pg_vpn(pg_up(end)), unmap);
}

struct move_ctx {
	int64_t delta;		/* in pages */
	bool split;		/* the move is not by whole windows: THPs split */
	uint64_t *moved;	/* (vpn, entry) pairs, collected before re-inserting */
	size_t n, cap;
	int err;
};

static bool collect_entry(uint64_t vpn, uint64_t *e, void *arg)
{
	struct move_ctx *ctx = arg;

	if (ctx->n + 2 > ctx->cap) {
		size_t cap = ctx->cap ? 2 * ctx->cap : 256;
		uint64_t *m = realloc(ctx->moved, cap * sizeof(*m));

		if (!m) {
			ctx->err = -ENOMEM;
			return false;
		}
		ctx->moved = m;
		ctx->cap = cap;
	}
	ctx->moved[ctx->n++] = vpn;
	/* The mirrors lose the page (the CPU mapping moved); the device-private
	 * page moves with the range, and a migration in flight keeps it. */
	ctx->moved[ctx->n++] = *e & ~(E_MIRROR_ALL | E_ATOMIC_ALL | (ctx->split ? E_HUGE : 0));
	*e = 0;
	return true;
}

/* mremap: device pages and the registration move with the range. */
void uffd_dev_on_remap(struct zmm *mm, uint64_t from, uint64_t to, uint64_t len)
{
	struct move_ctx ctx = {
		.delta = (int64_t)(pg_vpn(to) - pg_vpn(from)),
		.split = (pg_vpn(to) - pg_vpn(from)) & (WIN_PAGES - 1),
	};

	pthread_mutex_lock(&mm->lock);
	zmm_split_edges_locked(mm, pg_vpn(from), pg_vpn(from + len));
	ptable_walk(&mm->pt, pg_vpn(from), pg_vpn(from + len), collect_entry, &ctx);
	for (size_t i = 0; i < ctx.n; i += 2) {
		const uint64_t to_vpn = (uint64_t)((int64_t)ctx.moved[i] + ctx.delta), e = ctx.moved[i + 1];

		if (ptable_set(&mm->pt, to_vpn, e))
			ctx.err = -ENOMEM;
		else if (e & E_DEVPRIV)
			store_note(&mm->stores, e_dev(e), e_pfn(e), to_vpn);
	}
	pthread_mutex_unlock(&mm->lock);
	if (ctx.err)
		log_err("pid %d: mremap: lost track of pages: %s", (int)mm->pid,
			 strerror(-ctx.err));
	free(ctx.moved);
}

struct fork_ctx {
	struct zmm *parent;
	struct zmm *child;
	int err;
};

static bool share_entry(uint64_t vpn, uint64_t *e, void *arg)
{
	struct fork_ctx *ctx = arg;
	uint64_t child_e;

	/* The kernel write-protects the parent's PTEs at fork, which
	 * invalidates its mirrors, and restores its device-exclusive entries;
	 * the child starts with none. */
	*e &= ~(E_MIRROR_ALL | E_ATOMIC_ALL);
	child_e = *e & ~E_BUSY;
	if (!(child_e & E_ON_DEVICE))
		return true;
	/* The page becomes shared (count 2); each side's CPU fault takes its
	 * own copy and drops its reference. */
	if (ptable_set(&ctx->child->pt, vpn, child_e)) {
		ctx->err = -ENOMEM;
		return true;
	}
	/* A coherent page is shared the same way: both processes map it
	 * read-only (FORK_PREPARE write-protected it), and each one's first
	 * write gives it a system copy and drops its hold. Its data is in
	 * both processes already: nothing for a store. */
	refpool_get(ctx->parent->ds->dev[e_dev(child_e)].pool, zmm_entry_page(ctx->parent, child_e));
	if (child_e & E_DEVPRIV)
		store_note(&ctx->child->stores, e_dev(child_e), e_pfn(child_e), vpn);
	zmm_add_device_pages(ctx->child, e_dev(child_e), 1);
	return true;
}

int uffd_dev_on_fork(struct zmm *parent, struct zmm *child)
{
	struct fork_ctx ctx = { .parent = parent, .child = child };

	pthread_mutex_lock(&parent->lock);
	pthread_mutex_lock(&child->lock);
	ptable_walk(&parent->pt, 0, UINT64_MAX >> PG_SHIFT, share_entry, &ctx);
	/* The child holds the parent's stores now: the parent's later pages
	 * go into new ones. */
	store_put_all(&parent->stores);
	child->open_devices = 0;
	memset(child->handles, 0, sizeof(child->handles));
	pthread_mutex_unlock(&child->lock);
	pthread_mutex_unlock(&parent->lock);
	return ctx.err;
}

/* ---- registration and write protection ---- */

/*
 * The client's limit on registered bytes: span more bytes in [ws, we) would
 * be registered. The running count only grows (a range registered again counts
 * again); when it would pass the limit, the kernel's own view decides.
 */
static int charge_registration(struct zmm *mm, uint64_t ws, uint64_t we, uint64_t span)
{
	const uint64_t limit = mm->ds->client_registered;
	uint64_t elsewhere;
	int ret = 0;

	if (!limit)
		return 0;
	pthread_mutex_lock(&mm->lock);
	if (mm->registered_bytes + span <= limit) {
		mm->registered_bytes += span;
		goto out_unlock;
	}
	ret = vmas_registered_bytes(mm->pid, ws, we, &elsewhere);
	if (ret)
		goto out_unlock;
	if (elsewhere + span > limit) {
		ret = -EDQUOT;
		goto out_unlock;
	}
	mm->registered_bytes = elsewhere + span;
out_unlock:
	pthread_mutex_unlock(&mm->lock);
	return ret;
}

/* The part of v to register for [start, end): the whole mapping when whole,
 * else the 2 MiB windows around the range. false when none of it is. */
static bool register_span(const struct vma *v, uint64_t start, uint64_t end, bool whole,
			  uint64_t *s, uint64_t *e)
{
	const uint64_t ws = win_down(start), we = win_up(end);

	if (!(v->flags & VMA_ANON))
		return false;
	if (whole) {
		*s = v->start;
		*e = v->end;
		return v->start < end && v->end > start;
	}
	*s = v->start > ws ? v->start : ws;
	*e = v->end < we ? v->end : we;
	return *s < *e;
}

/* Charges the registration of [start, end) whole or by windows. */
static int charge_spans(struct zmm *mm, const struct vma_list *vmas, uint64_t start, uint64_t end,
			bool whole)
{
	uint64_t span = 0, lo = UINT64_MAX, hi = 0, s, e;

	for (size_t i = 0; i < vmas->n; i++) {
		if (!register_span(&vmas->v[i], start, end, whole, &s, &e))
			continue;
		span += e - s;
		lo = s < lo ? s : lo;
		hi = e > hi ? e : hi;
	}
	return span ? charge_registration(mm, lo, hi, span) : 0;
}

/*
 * A range still registered with the uffd of a zdevd that died answers EBUSY
 * until the kernel has let go of that uffd: the dead zdevd's io_uring drops
 * its polls on it asynchronously, some time after the process is gone, and
 * the client's own copy closes only once its rescue is over. So EBUSY is
 * tried again for a while before it is taken for another uffd's (the
 * program's own), which it then is.
 */
#define REGISTER_BUSY_WAIT_US 2000
#define REGISTER_BUSY_TRIES 500

static int register_when_free(int uffd, struct uffdio_register *reg)
{
	for (int tries = 1;; tries++) {
		if (!ioctl(uffd, UFFDIO_REGISTER, reg))
			return 0;
		if (errno != EBUSY || tries == REGISTER_BUSY_TRIES)
			return -errno;
		usleep(REGISTER_BUSY_WAIT_US);
	}
}

/*
 * Every private anonymous mapping the range lies in is registered whole: a
 * registration that covered part of a mapping would split it in two VMAs,
 * and the program's mremap, which grows or moves only a range that one VMA
 * holds, would fail with EFAULT where it works without zdev. Neighbouring
 * mappings that only the range's 2 MiB windows reach meet no device and are
 * left alone. Only when the whole mappings would pass the client's limit on
 * registered bytes are the windows around the range registered instead.
 */
int uffd_dev_register(struct zmm *mm, const struct vma_list *vmas, uint64_t start, uint64_t end)
{
	bool whole = true;
	uint64_t s, e;
	int ret;

	ret = charge_spans(mm, vmas, start, end, true);
	if (ret == -EDQUOT) {
		whole = false;
		ret = charge_spans(mm, vmas, start, end, false);
	}
	if (ret)
		return ret;
	/* Registering again with the same uffd changes nothing, so nothing
	 * is cached that munmap or mremap could make stale. */
	for (size_t i = 0; i < vmas->n; i++) {
		struct uffdio_register reg = {
			.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
		};

		if (!register_span(&vmas->v[i], start, end, whole, &s, &e))
			continue;
		reg.range.start = s;
		reg.range.len = e - s;
		ret = register_when_free(mm->uffd, &reg);
		if (ret)
			return ret;
		atomic_store(&mm->registered, true);
	}
	return 0;
}

int uffd_dev_write_protect(struct zmm *mm, uint64_t start, uint64_t end, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = end - start },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return uffd_dev_ioctl(mm, UFFDIO_WRITEPROTECT, &wp, false);
}

/* Calls uffd_dev_write_protect(on) for each run of pages of [addr, addr + npages
 * pages) whose byte in sel is set. */
void uffd_dev_protect_runs(struct zmm *mm, uint64_t addr, uint64_t npages, const uint8_t *sel,
			 bool on)
{
	for (uint64_t s = 0, e = 0; run_next(sel, npages, &s, &e);)
		uffd_dev_write_protect(mm, addr + s * PG_SIZE, addr + e * PG_SIZE, on);
}

void uffd_dev_wake(struct zmm *mm, uint64_t start, uint64_t end)
{
	struct uffdio_range r = { .start = start, .len = end - start };

	ioctl(mm->uffd, UFFDIO_WAKE, &r);
}

/*
 * The kernel answers a copy through a uffd with ESRCH once the memory it
 * serves has no users left, before it looks at the range. The copy asked
 * here can never happen: its source, the second page of zdevd's address
 * space, is below mmap_min_addr and never mapped, so a live process sees
 * nothing (ENOENT where the destination is not registered, EEXIST where a
 * page is there, EFAULT where the source is read).
 */
bool uffd_dev_mm_gone(const struct zmm *mm)
{
	struct uffdio_copy copy = {
		.dst = 1ull << 30, .src = PG_SIZE, .len = PG_SIZE,
		.mode = UFFDIO_COPY_MODE_DONTWAKE,
	};

	return ioctl(mm->uffd, UFFDIO_COPY, &copy) && errno == ESRCH;
}
