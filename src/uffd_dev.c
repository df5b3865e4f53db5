/* SPDX-License-Identifier: MIT */
/*
 * Device-private pages: migration to the device and back, the CPU fault
 * service (the kernel's migrate_to_ram) and the uffd events that change a
 * client's address space under zdevd's feet.
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
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "page.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "zdev.h"
#include "zdevd/parallel.h"
#include "zdevd/vmas.h"
#include "zdevd/rescue.h"
#include "zdevd/zmm.h"

#define EAGAIN_TRIES 10000
#define PARALLEL_MIN_PAGES 1024	/* 4 MiB a thread, or not worth one */

static uint64_t vpn_of(uint64_t addr)
{
	return addr >> PG_SHIFT;
}

static struct refpool_page *entry_page(struct zmm *mm, uint64_t e)
{
	/* The mm's own reference keeps the page and its chunk alive: no RCU
	 * section is needed for a page we hold. */
	return refpool_pfn_to_page(mm->d->dev[e_dev(e)].pool, e_pfn(e));
}

/* Retries a uffd ioctl while non-cooperative events are pending: the kernel
 * refuses with EAGAIN until the loop has read them. */
static int uffd_ioctl_retry(struct zmm *mm, unsigned long req, void *arg, bool in_loop)
{
	for (int i = 0; i < EAGAIN_TRIES; i++) {
		if (!ioctl(mm->uffd, req, arg))
			return 0;
		if (errno != EAGAIN)
			return -errno;
		/* The loop thread cannot wait for itself: it gives up and
		 * lets the fault be retried after the pending events. */
		if (in_loop)
			return -EAGAIN;
		usleep(20);
	}
	return -EAGAIN;
}

/* ---- device THPs ---- */

static uint64_t window_of(uint64_t vpn)
{
	return vpn & ~(WIN_PAGES - 1);
}

/* The device THP of window w is no longer one: its pages stay where they
 * are, each on its own. The pool's block splits as its pages are put alone. */
static void split_window_locked(struct zmm *mm, uint64_t w)
{
	for (uint64_t i = 0; i < WIN_PAGES; i++) {
		uint64_t e = ptable_get(&mm->pt, w + i);

		if (e & E_HUGE)
			ptable_set(&mm->pt, w + i, e & ~E_HUGE);
	}
}

/* A change to [start, end) of the address space (in pages) that cuts through
 * a device THP splits it, as the kernel splits a PMD it unmaps or moves in
 * part. */
static void split_edges_locked(struct zmm *mm, uint64_t start, uint64_t end)
{
	if (start & (WIN_PAGES - 1))
		split_window_locked(mm, window_of(start));
	if (end & (WIN_PAGES - 1))
		split_window_locked(mm, window_of(end));
}

/* Whether window w holds one intact device THP whose first entry is *first. */
static bool window_intact_locked(struct zmm *mm, uint64_t w, uint64_t *first)
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

/* ---- bringing a page back: the kernel's migrate_to_ram ---- */

/*
 * UFFDIO_COPY of len bytes to dst. A page that is present already (EEXIST:
 * something mapped it meanwhile) keeps the CPU's copy, as after a racing
 * fault, and the copy goes on after it.
 */
static int copy_into_client(struct zmm *mm, uint64_t dst, const void *src, uint64_t len,
			    bool in_loop)
{
	uint64_t done = 0;

	while (done < len) {
		struct uffdio_copy copy = {
			.dst = dst + done,
			.src = (uint64_t)(uintptr_t)src + done,
			.len = len - done,
		};
		int ret = uffd_ioctl_retry(mm, UFFDIO_COPY, &copy, in_loop);

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

static void count_back(struct zmm *mm, unsigned int dev, uint64_t n)
{
	atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->cnt[dev].pages_to_system, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->d->pages_to_system, n, memory_order_relaxed);
}

/* Forgets n device-private pages starting at vpn, once their data is back;
 * a whole device THP goes back to the pool as one block. */
static void forget_run_locked(struct zmm *mm, uint64_t vpn, uint64_t n, uint64_t e)
{
	const unsigned int dev = e_dev(e);
	struct refpool *pool = mm->d->dev[dev].pool;

	for (uint64_t i = 0; i < n; i++) {
		ptable_set(&mm->pt, vpn + i, 0);
		rescue_forget(mm, dev, e_pfn(e) + (uint32_t)i);
	}
	if ((e & E_HUGE) && n == WIN_PAGES)
		refpool_put_block(pool, refpool_pfn_to_page(pool, e_pfn(e)));
	else
		refpool_put_run(pool, refpool_pfn_to_page(pool, e_pfn(e)), (uint32_t)n);
	count_back(mm, dev, n);
}

/*
 * Copies a device-private page back into the client and frees the device
 * page; a page of a device THP brings back its whole window, as
 * migrate_to_ram does for a PMD-mapped device folio. Caller holds mm->lock;
 * on success the entries are gone (the CPU page table changed, so every
 * device's mirror entry for them is erased too).
 */
static int bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop)
{
	struct refpool *pool = mm->d->dev[e_dev(e)].pool;
	uint64_t n = 1, first;
	int ret;

	if (e & E_HUGE) {
		if (window_intact_locked(mm, window_of(vpn), &first)) {
			vpn = window_of(vpn);
			e = first;
			n = WIN_PAGES;
		} else {
			split_window_locked(mm, window_of(vpn));
			e &= ~E_HUGE;
		}
	}
	ret = copy_into_client(mm, vpn << PG_SHIFT,
			       refpool_page_mem(pool, entry_page(mm, e)), n * PG_SIZE, in_loop);
	/* ENOENT/ESRCH: the mapping or the whole process is gone, and with it
	 * the data. */
	if (ret && ret != -ENOENT && ret != -ESRCH)
		return ret;
	forget_run_locked(mm, vpn, n, e);
	return 0;
}

int uffd_dev_bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t entry)
{
	return bring_back_locked(mm, vpn, entry, false);
}

/* ---- the CPU fault service (event loop) ---- */

/* Zeros to resolve write faults from, a whole window at once. */
static const uint8_t zero_window[WIN_SIZE] __attribute__((aligned(PG_SIZE)));

/* The run from vpn to the end of its window that holds no device page. */
static uint64_t plain_run_locked(struct zmm *mm, uint64_t vpn)
{
	const uint64_t end = (vpn | ((1ull << (WIN_SHIFT - PG_SHIFT)) - 1)) + 1;
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
	uint64_t n = plain_run_locked(mm, vpn_of(addr));
	int ret;

	for (;;) {
		if (write) {
			struct uffdio_copy copy = { .dst = addr, .src = (uintptr_t)zero_window,
						    .len = n * PG_SIZE };

			ret = uffd_ioctl_retry(mm, UFFDIO_COPY, &copy, true);
			if (ret && copy.copy > 0)
				ret = 0;	/* stopped at a present page: ours is done */
		} else {
			struct uffdio_zeropage zero = { .range = { .start = addr, .len = n * PG_SIZE } };

			ret = uffd_ioctl_retry(mm, UFFDIO_ZEROPAGE, &zero, true);
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

		ret = uffd_ioctl_retry(mm, UFFDIO_WRITEPROTECT, &wp, true);
	}
	return ret == -ENOENT || ret == -ESRCH ? 0 : ret;
}

int uffd_dev_fault(struct zmm *mm, uint64_t addr, uint64_t flags)
{
	const uint64_t vpn = vpn_of(addr);
	uint64_t e;
	int ret;

	pthread_mutex_lock(&mm->lock);
	e = ptable_get(&mm->pt, vpn);
	if (e & E_BUSY) {
		/* A migration owns the page; it wakes every waiter of its
		 * range when done, and the retried access faults again. */
		pthread_mutex_unlock(&mm->lock);
		return 0;
	}
	if (e & E_DEVPRIV) {
		unsigned int dev = e_dev(e);

		ret = bring_back_locked(mm, vpn, e, true);
		if (!ret) {
			atomic_fetch_add_explicit(&mm->cnt[dev].cpu_faults, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&mm->d->cpu_faults, 1, memory_order_relaxed);
		}
	} else {
		ret = resolve_zero(mm, addr & ~(PG_SIZE - 1), flags & UFFD_PAGEFAULT_FLAG_WRITE);
	}
	pthread_mutex_unlock(&mm->lock);
	return ret;
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
			    (ptable_get(&mm->pt, vpn_of(addr) + i) & (E_DEVPRIV | E_BUSY)))
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

struct drop_ctx {
	struct zmm *mm;
	bool unmap;
};

static bool drop_entry(uint64_t vpn, uint64_t *e, void *arg)
{
	struct drop_ctx *ctx = arg;
	struct zmm *mm = ctx->mm;

	/* A migration zapping its own pages sees its REMOVE events here: its
	 * pages stay. An unmap ends the migration of what it covers. */
	if ((*e & E_BUSY) && !ctx->unmap)
		return true;
	if ((*e & (E_DEVPRIV | E_HUGE)) == (E_DEVPRIV | E_HUGE)) {
		/* The edges were split first: this THP goes whole, its block
		 * with its first page, the rescue table's entries before it
		 * (once free, the block may be this process's again at once). */
		if (!(vpn & (WIN_PAGES - 1))) {
			unsigned int dev = e_dev(*e);

			for (uint32_t k = 0; k < WIN_PAGES; k++)
				rescue_forget(mm, dev, e_pfn(*e) + k);
			refpool_put_block(mm->d->dev[dev].pool, entry_page(mm, *e));
			atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, WIN_PAGES,
						  memory_order_relaxed);
		}
	} else if (*e & E_DEVPRIV) {
		unsigned int dev = e_dev(*e);

		rescue_forget(mm, dev, e_pfn(*e));
		refpool_put(mm->d->dev[dev].pool, entry_page(mm, *e));
		atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, 1, memory_order_relaxed);
	}
	*e = 0;
	return true;
}

/* munmap, MADV_DONTNEED, MADV_REMOVE: device pages of the range are freed at
 * once, mirror entries erased. */
void uffd_dev_on_remove(struct zmm *mm, uint64_t start, uint64_t end, bool unmap)
{
	struct drop_ctx ctx = { .mm = mm, .unmap = unmap };
	const uint64_t first = vpn_of(start), last = vpn_of(end + PG_SIZE - 1);

	pthread_mutex_lock(&mm->lock);
	split_edges_locked(mm, first, last);
	ptable_walk(&mm->pt, first, last, drop_entry, &ctx);
	pthread_mutex_unlock(&mm->lock);
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
		.delta = (int64_t)(vpn_of(to) - vpn_of(from)),
		.split = (vpn_of(to) - vpn_of(from)) & (WIN_PAGES - 1),
	};

	pthread_mutex_lock(&mm->lock);
	split_edges_locked(mm, vpn_of(from), vpn_of(from + len));
	ptable_walk(&mm->pt, vpn_of(from), vpn_of(from + len), collect_entry, &ctx);
	for (size_t i = 0; i < ctx.n; i += 2) {
		const uint64_t to_vpn = (uint64_t)((int64_t)ctx.moved[i] + ctx.delta), e = ctx.moved[i + 1];

		if (ptable_set(&mm->pt, to_vpn, e))
			ctx.err = -ENOMEM;
		else if (e & E_DEVPRIV)
			rescue_note(mm, e_dev(e), e_pfn(e), to_vpn);
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
	if (!(child_e & E_DEVPRIV))
		return true;
	/* The page becomes shared (count 2); each side's CPU fault takes its
	 * own copy and drops its reference. */
	if (ptable_set(&ctx->child->pt, vpn, child_e)) {
		ctx->err = -ENOMEM;
		return true;
	}
	refpool_get(ctx->parent->d->dev[e_dev(child_e)].pool, entry_page(ctx->parent, child_e));
	rescue_note(ctx->child, e_dev(child_e), e_pfn(child_e), vpn);
	atomic_fetch_add_explicit(&ctx->child->cnt[e_dev(child_e)].device_pages, 1,
				  memory_order_relaxed);
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
	rescue_stores_put(parent);
	child->open_devices = 0;
	memset(child->handles, 0, sizeof(child->handles));
	pthread_mutex_unlock(&child->lock);
	pthread_mutex_unlock(&parent->lock);
	return ctx.err;
}

/* ---- migration to the device ---- */

struct run {
	uint64_t start, end;	/* page addresses */
};

/*
 * The client's limit on registered bytes: span more bytes in [ws, we) would
 * be registered. The running count only grows (a range registered again counts
 * again); when it would pass the limit, the kernel's own view decides.
 */
static int charge_registration(struct zmm *mm, uint64_t ws, uint64_t we, uint64_t span)
{
	const uint64_t limit = mm->d->cfg.client_registered;
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

int uffd_dev_register(struct zmm *mm, const struct vma_list *vmas, uint64_t start, uint64_t end)
{
	const uint64_t win = 1ull << WIN_SHIFT;
	const uint64_t ws = start & ~(win - 1), we = (end + win - 1) & ~(win - 1);
	uint64_t span = 0;
	int ret;

	for (size_t i = 0; i < vmas->n; i++) {
		const struct vma *v = &vmas->v[i];
		uint64_t s = v->start > ws ? v->start : ws, e = v->end < we ? v->end : we;

		if (s < e && (v->flags & VMA_ANON))
			span += e - s;
	}
	ret = charge_registration(mm, ws, we, span);
	if (ret)
		return ret;

	/* Whole windows of each private anonymous mapping the range touches:
	 * neighbouring registrations stay merged into one VMA, and memory that
	 * never meets a device is never registered, so touching it costs
	 * nothing. Registering again with the same uffd changes nothing, so
	 * nothing is cached that munmap or mremap could make stale. */
	for (size_t i = 0; i < vmas->n; i++) {
		const struct vma *v = &vmas->v[i];
		struct uffdio_register reg = {
			.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
		};
		uint64_t s = v->start > ws ? v->start : ws, e = v->end < we ? v->end : we;

		if (s >= e || !(v->flags & VMA_ANON))
			continue;
		reg.range.start = s;
		reg.range.len = e - s;
		if (ioctl(mm->uffd, UFFDIO_REGISTER, &reg))
			return -errno;
		atomic_store(&mm->registered, true);
	}
	return 0;
}

static int write_protect(struct zmm *mm, uint64_t start, uint64_t end, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = end - start },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return uffd_ioctl_retry(mm, UFFDIO_WRITEPROTECT, &wp, false);
}

/* The next run [*start, *end) of set bytes of sel[0, n), looking from *end
 * on; false when there is none. */
static bool next_run(const uint8_t *sel, uint64_t n, uint64_t *start, uint64_t *end)
{
	uint64_t i = *end;

	while (i < n && !sel[i])
		i++;
	if (i == n)
		return false;
	*start = i;
	while (i < n && sel[i])
		i++;
	*end = i;
	return true;
}

/* Calls write_protect(on) for each run of pages of [addr, addr + npages
 * pages) whose byte in sel is set. */
static void protect_runs(struct zmm *mm, uint64_t addr, uint64_t npages, const uint8_t *sel,
			 bool on)
{
	for (uint64_t s = 0, e = 0; next_run(sel, npages, &s, &e);)
		write_protect(mm, addr + s * PG_SIZE, addr + e * PG_SIZE, on);
}

/*
 * A zapped page the device now holds gets a write-protect marker in its
 * empty PTE (WP_UNPOPULATED): pagemap then shows it swapped out and not
 * present, as the kernel shows a device-private entry, and any CPU access
 * still raises a MISSING fault (the kernel treats the marker as an empty
 * PTE), which UFFDIO_COPY resolves over the marker. DONTNEED and munmap drop
 * markers with the page, so none outlives its device page for long.
 */
static void mark_device_private(struct zmm *mm, uint64_t addr, uint64_t npages,
				const uint8_t *zapped)
{
	if (mm->d->uffd_features & UFFD_FEATURE_WP_UNPOPULATED)
		protect_runs(mm, addr, npages, zapped, true);
}

/* The end of a migration: write protection off on every page the device does
 * not hold, whose markers (if any) are the migration's own. */
static void unprotect_system_pages(struct zmm *mm, uint64_t addr, uint64_t npages)
{
	uint8_t *system = malloc(npages);

	if (!system) {
		write_protect(mm, addr, addr + npages * PG_SIZE, false);
		return;
	}
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++)
		system[i] = !(ptable_get(&mm->pt, vpn_of(addr) + i) & E_DEVPRIV);
	pthread_mutex_unlock(&mm->lock);
	protect_runs(mm, addr, npages, system, false);
	free(system);
}

static void wake_range(struct zmm *mm, uint64_t start, uint64_t end)
{
	struct uffdio_range r = { .start = start, .len = end - start };

	ioctl(mm->uffd, UFFDIO_WAKE, &r);
}

#define COPY_IOV 512

struct iov_batch {
	struct iovec local[COPY_IOV], remote[COPY_IOV];
	unsigned long nlocal, nremote;
	size_t bytes;
};

/* Appends one page to an iovec list, growing the last entry when adjacent. */
static void iov_add(struct iovec *v, unsigned long *n, void *base)
{
	if (*n && (char *)v[*n - 1].iov_base + v[*n - 1].iov_len == (char *)base) {
		v[*n - 1].iov_len += PG_SIZE;
		return;
	}
	v[*n].iov_base = base;
	v[*n].iov_len = PG_SIZE;
	(*n)++;
}

static int iov_flush(struct zmm *mm, struct iov_batch *b)
{
	ssize_t got;

	if (!b->bytes)
		return 0;
	/* The pages are present and write-protected: the read cannot fault
	 * into our own uffd. */
	got = process_vm_readv(mm->pid, b->local, b->nlocal, b->remote, b->nremote, 0);
	if (got < 0)
		return -errno;
	if ((size_t)got != b->bytes)
		return -EFAULT;
	b->nlocal = b->nremote = 0;
	b->bytes = 0;
	return 0;
}

/* Copies the selected pages of the range into their device pages: present
 * ones from the client, never-touched ones as zeros. */
static int copy_in(struct zmm *mm, struct refpool *pool, uint64_t start,
		   struct refpool_page **pages, const uint64_t *pm, size_t n)
{
	struct iov_batch *b = calloc(1, sizeof(*b));
	int ret = 0;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n && !ret; i++) {
		void *mem;

		if (!pages[i])
			continue;
		mem = refpool_page_mem(pool, pages[i]);
		/* A write-protect marker left in an empty PTE is no page. */
		if (!(pm[i] & (PM_PRESENT | PM_SWAP)) ||
		    (!(pm[i] & PM_PRESENT) && (pm[i] & PM_UFFD_WP))) {
			memset(mem, 0, PG_SIZE);
			continue;
		}
		if (b->nlocal == COPY_IOV || b->nremote == COPY_IOV)
			ret = iov_flush(mm, b);
		iov_add(b->local, &b->nlocal, mem);
		iov_add(b->remote, &b->nremote, (void *)(uintptr_t)(start + i * PG_SIZE));
		b->bytes += PG_SIZE;
	}
	if (!ret)
		ret = iov_flush(mm, b);
	free(b);
	return ret;
}

struct copy_job {
	struct zmm *mm;
	struct refpool *pool;
	uint64_t start;
	struct refpool_page **pages;
	const uint64_t *pm;
};

static int copy_part(void *ctx, size_t lo, size_t hi)
{
	struct copy_job *j = ctx;

	return copy_in(j->mm, j->pool, j->start + lo * PG_SIZE, j->pages + lo, j->pm + lo, hi - lo);
}

enum { SEL_NONE, SEL_PAGE, SEL_HUGE };

/*
 * Whether the selected window of pages at i0 moves as one device THP
 * (MIGRATE_VMA_SELECT_COMPOUND): a PMD-mapped THP, or a never-touched window
 * of a mapping that would get a THP on a fault (the kernel's pmd_none hole).
 */
static bool window_is_compound(struct zmm *mm, const struct vma_list *vmas, uint64_t addr,
			       uint64_t i0, const uint8_t *sel, const uint64_t *pm,
			       const uint8_t *thp)
{
	bool all_thp = true, all_empty = true;

	for (uint64_t k = 0; k < WIN_PAGES; k++) {
		if (sel[i0 + k] != SEL_PAGE)
			return false;
		all_thp &= thp[i0 + k];
		all_empty &= !(pm[i0 + k] & (PM_PRESENT | PM_SWAP));
	}
	if (all_thp)
		return true;
	return all_empty && vmas_find(vmas, addr + i0 * PG_SIZE) &&
	       vma_thp_eligible(mm->pid, addr + i0 * PG_SIZE);
}

#define ALLOC_BATCH 64	/* device pages taken from the pool at once */

/*
 * Device pages for the selected pages: one block for each compound window
 * (unless FAIL_ALLOC makes the first such allocation fail, once, or the
 * pool has no whole block: then single pages, as the driver falls back to),
 * single pages for the rest. *oom tells that the pool ran out: the pages
 * left without one stay in system memory.
 */
static int alloc_owned(struct zmm *mm, unsigned int dev, const struct vma_list *vmas,
		       uint64_t addr, uint64_t npages, uint8_t *sel, const uint64_t *pm,
		       struct refpool_page **pages, bool *oom, struct zstore *store)
{
	struct refpool *pool = mm->d->dev[dev].pool;
	const uint64_t first_win = (vpn_of(addr) + WIN_PAGES - 1) & ~(WIN_PAGES - 1);
	const uint64_t limit = mm->d->cfg.client_memory / PG_SIZE;
	const uint64_t held = atomic_load_explicit(&mm->cnt[dev].device_pages, memory_order_relaxed);
	/* The client's own limit on this device acts as a smaller pool. */
	uint64_t budget = !limit ? UINT64_MAX : held < limit ? limit - held : 0;
	uint8_t *thp = NULL;
	bool blocks = true;
	int ret;

	if (npages >= WIN_PAGES) {
		thp = calloc(npages, 1);
		if (!thp)
			return -ENOMEM;
		/* Without PAGEMAP_SCAN only never-touched windows move whole. */
		pagemap_huge(mm->pagemap_fd, addr, npages, thp);
	}
	for (uint64_t w = first_win; thp && w + WIN_PAGES <= vpn_of(addr) + npages && blocks;
	     w += WIN_PAGES) {
		const uint64_t i0 = w - vpn_of(addr);
		struct refpool_page *block;
		bool fail_once;

		if (budget < WIN_PAGES || !window_is_compound(mm, vmas, addr, i0, sel, pm, thp))
			continue;
		pthread_mutex_lock(&mm->lock);
		fail_once = mm->flags[dev] & ZDEV_FLAG_FAIL_ALLOC;
		mm->flags[dev] &= ~ZDEV_FLAG_FAIL_ALLOC;
		pthread_mutex_unlock(&mm->lock);
		if (fail_once)
			continue;
		ret = refpool_alloc_block_owned(pool, store->owner, &block);
		if (ret) {
			blocks = false;
			continue;
		}
		budget -= WIN_PAGES;
		for (uint64_t k = 0; k < WIN_PAGES; k++) {
			pages[i0 + k] = block + k;
			pages[i0 + k]->owner = w + k;
			sel[i0 + k] = SEL_HUGE;
		}
	}
	free(thp);

	for (uint64_t i = 0; i < npages;) {
		struct refpool_page *got[ALLOC_BATCH];
		uint64_t idx[ALLOC_BATCH];
		uint32_t want = 0, take;
		int n;

		for (; i < npages && want < ALLOC_BATCH; i++)
			if (sel[i] == SEL_PAGE)
				idx[want++] = i;
		if (!want)
			break;
		take = budget < want ? (uint32_t)budget : want;
		n = take ? refpool_alloc_owned_many(pool, store->owner, take, got) : -ENOMEM;
		if (n == -ENOMEM) {
			*oom = true;
			break;
		}
		if (n < 0)
			return n;
		for (int k = 0; k < n; k++) {
			pages[idx[k]] = got[k];
			got[k]->owner = vpn_of(addr) + idx[k];
		}
		budget -= (uint64_t)n;
		if ((uint32_t)n < want) {
			*oom = true;
			break;
		}
	}
	return 0;
}

/* The same in the process's own store on dev. */
static int alloc_device_pages(struct zmm *mm, unsigned int dev, const struct vma_list *vmas,
			      uint64_t addr, uint64_t npages, uint8_t *sel, const uint64_t *pm,
			      struct refpool_page **pages, bool *oom,
			      const struct uffd_dev_client *client, void *ctx)
{
	struct zstore *store;
	int ret;

	/* The process's pages go into its own store only (rescue.c), which
	 * the client holds before any of them is there. */
	pthread_mutex_lock(&mm->lock);
	ret = rescue_store_get_locked(mm, dev, &store);
	pthread_mutex_unlock(&mm->lock);
	if (ret < 0)
		return ret;
	if (ret > 0) {
		ret = client->give_store(ctx, dev, store->fd, store->id);
		if (ret) {
			/* Not handed over: the next migration makes another
			 * rather than fill one the client cannot rescue. */
			pthread_mutex_lock(&mm->lock);
			if (mm->store[dev] == store) {
				mm->store[dev] = NULL;
				rescue_store_put(store);
			}
			pthread_mutex_unlock(&mm->lock);
		}
	}
	if (!ret)
		ret = alloc_owned(mm, dev, vmas, addr, npages, sel, pm, pages, oom, store);
	rescue_store_put(store);
	return ret;
}

/* A device THP some page of which went away while it was copied (unmapped)
 * is split: its other pages stay on the device one by one. */
static void keep_whole_windows_locked(struct zmm *mm, uint64_t addr, uint64_t npages,
				      uint8_t *sel, struct refpool_page **pages)
{
	for (uint64_t i = 0; i < npages; i++) {
		bool whole = true;

		if (sel[i] != SEL_HUGE || ((vpn_of(addr) + i) & (WIN_PAGES - 1)))
			continue;
		for (uint64_t k = 0; k < WIN_PAGES && whole; k++)
			whole = pages[i + k] && (ptable_get(&mm->pt, vpn_of(addr) + i + k) & E_BUSY);
		if (whole)
			continue;
		for (uint64_t k = 0; k < WIN_PAGES; k++)
			sel[i + k] = SEL_PAGE;
	}
}

static unsigned int prot_of(unsigned int vma_flags)
{
	return ((vma_flags & VMA_READ) ? PROT_READ : 0) | ((vma_flags & VMA_WRITE) ? PROT_WRITE : 0) |
	       ((vma_flags & VMA_EXEC) ? PROT_EXEC : 0);
}

/*
 * Private file mappings: the kernel migrates their copy-on-write pages,
 * which are anonymous, and leaves the file's own. A uffd cannot register a
 * file mapping, so the client first turns each such mapping that holds
 * copy-on-write pages in the range into anonymous memory, whole (it stays
 * one mapping). Which pages were copy-on-write is read before: *leave marks
 * the others, which stay in system memory as the kernel would leave them
 * (NULL when the range has no file mapping). vmas is read again over
 * [lo, hi) after a change.
 */
static int anonymize_file_mappings(struct zmm *mm, struct vma_list *vmas, uint64_t lo,
				   uint64_t hi, uint64_t addr, uint64_t npages,
				   const struct uffd_dev_client *client, void *ctx, uint8_t **leave)
{
	const uint64_t end = addr + npages * PG_SIZE;
	uint8_t *skip = NULL;
	uint64_t *pm = NULL;
	bool changed = false;
	int ret = 0;

	for (size_t k = 0; k < vmas->n && !ret; k++) {
		const struct vma *v = &vmas->v[k];
		const uint64_t s = v->start > addr ? v->start : addr, e = v->end < end ? v->end : end;
		bool any_cow = false;

		if ((v->flags & (VMA_FILE | VMA_SHARED)) != VMA_FILE || e <= s)
			continue;
		if (!skip) {
			skip = calloc(npages, 1);
			pm = calloc(npages, sizeof(*pm));
			if (!skip || !pm) {
				ret = -ENOMEM;
				break;
			}
		}
		ret = pagemap_read(mm->pagemap_fd, s, (e - s) / PG_SIZE, pm + (s - addr) / PG_SIZE);
		for (uint64_t i = (s - addr) / PG_SIZE; i < (e - addr) / PG_SIZE && !ret; i++) {
			bool cow = (pm[i] & PM_PRESENT) && !(pm[i] & PM_FILE);

			skip[i] = !cow;
			any_cow |= cow;
		}
		if (!ret && any_cow) {
			ret = client->anonymize(ctx, v->start, v->end - v->start, prot_of(v->flags));
			changed |= !ret;
		}
	}
	if (!ret && changed) {
		vmas_free(vmas);
		ret = vmas_read(mm->pid, lo, hi, vmas);
	}
	free(pm);
	if (ret) {
		free(skip);
		skip = NULL;
	}
	*leave = skip;
	return ret;
}

/*
 * A zap of [s, e) (pages of the range) failed: the runs before it were
 * zapped and migrate. Of this run, what the madvise did not reach (a page
 * still present) is still the CPU's, and nothing after it was tried: their
 * device copies go, out of the rescue table first.
 */
static void keep_zapped_only(struct zmm *mm, struct refpool *pool, unsigned int dev, uint64_t addr,
			     uint64_t npages, uint64_t s, uint64_t e, struct refpool_page **pages,
			     uint8_t *copied)
{
	uint64_t *pm = calloc(e - s, sizeof(*pm));
	bool known = pm && (!pagemap_read(mm->pagemap_fd, addr + s * PG_SIZE, e - s, pm) ||
			    !pagemap_read(mm->pagemap_fd, addr + s * PG_SIZE, e - s, pm));

	for (uint64_t i = s; i < npages; i++) {
		/* Not knowing what the madvise reached, the device copies of
		 * this run stay: a page it emptied must not lose its only one. */
		if (!copied[i] || (i < e && (!known || !(pm[i - s] & PM_PRESENT))))
			continue;
		rescue_forget(mm, dev, refpool_page_to_pfn(pool, pages[i]));
		refpool_put(pool, pages[i]);
		pages[i] = NULL;
		copied[i] = 0;
	}
	free(pm);
}

int uffd_dev_migrate_to_device(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			       const struct uffd_dev_client *client, void *ctx, uint64_t *cpages)
{
	struct refpool *pool = mm->d->dev[dev].pool;
	const uint64_t end = addr + npages * PG_SIZE;
	struct refpool_page **pages = NULL;
	struct vma_list vmas = { 0 };
	uint64_t *pm = NULL, selected = 0, migrated = 0, on_dev = 0;
	const uint64_t lo = addr & ~(WIN_SIZE - 1);
	const uint64_t hi = (end + WIN_SIZE - 1) & ~(WIN_SIZE - 1);
	uint8_t *sel = NULL, *copied = NULL, *leave = NULL;
	bool out_of_memory = false;
	int ret;

	ret = vmas_read(mm->pid, lo, hi, &vmas);
	if (ret)
		return ret;
	/* The kernel refuses a hole or a vma without VM_READ outright. */
	for (uint64_t a = addr; a < end; a += PG_SIZE) {
		const struct vma *v = vmas_find(&vmas, a);

		if (!v || !(v->flags & VMA_READ)) {
			ret = -EINVAL;
			goto out_free_vmas;
		}
	}
	ret = anonymize_file_mappings(mm, &vmas, lo, hi, addr, npages, client, ctx, &leave);
	if (ret)
		goto out_free_vmas;
	pages = calloc(npages, sizeof(*pages));
	pm = calloc(npages, sizeof(*pm));
	sel = calloc(npages, 1);
	copied = calloc(npages, 1);
	if (!pages || !pm || !sel || !copied) {
		ret = -ENOMEM;
		goto out_free;
	}

	/* Select: private anonymous pages not already device-private. Another
	 * device's page is not selected (SELECT_SYSTEM), nor a page that a
	 * concurrent migration owns. */
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t a = addr + i * PG_SIZE, e = ptable_get(&mm->pt, vpn_of(a));

		const struct vma *v = vmas_find(&vmas, a);

		if (!v || !(v->flags & VMA_ANON) || (e & (E_DEVPRIV | E_BUSY)) || (leave && leave[i]))
			continue;
		if (ptable_set(&mm->pt, vpn_of(a), e | E_BUSY))
			break;
		sel[i] = SEL_PAGE;
		selected++;
	}
	pthread_mutex_unlock(&mm->lock);

	if (selected) {
		/* Registration first, so a page first touched from now on faults
		 * to us; then write-protect, so no write can slip in between
		 * the copy and the zap. */
		ret = uffd_dev_register(mm, &vmas, addr, end);
		if (ret)
			goto out_unbusy;
		/* What is missing stays missing now (its faults wait for us),
		 * and what is present stays present. Read before the write
		 * protection, whose markers would look like swapped pages. */
		ret = pagemap_read(mm->pagemap_fd, addr, npages, pm);
		if (!ret)
			ret = write_protect(mm, addr, end, true);
		if (ret)
			goto out_unprotect;
		ret = alloc_device_pages(mm, dev, &vmas, addr, npages, sel, pm, pages,
					 &out_of_memory, client, ctx);
		if (!ret) {
			struct copy_job job = { mm, pool, addr, pages, pm };

			ret = parallel_run(copy_part, &job, npages, PARALLEL_MIN_PAGES);
		}
		if (ret)
			goto out_unprotect;

		/* Zap each run of copied pages; the client's madvise raises
		 * REMOVE events that leave our busy pages alone. The rescue
		 * table names each page before its zap: from then on only the
		 * device has it. */
		for (uint64_t i = 0; i < npages; i++) {
			copied[i] = pages[i] != NULL;
			if (copied[i])
				rescue_note(mm, dev, refpool_page_to_pfn(pool, pages[i]),
					    vpn_of(addr) + i);
		}
		for (uint64_t s = 0, e = 0; next_run(copied, npages, &s, &e);) {
			ret = client->zap(ctx, addr + s * PG_SIZE, (e - s) * PG_SIZE);
			if (ret) {
				keep_zapped_only(mm, pool, dev, addr, npages, s, e, pages, copied);
				ret = 0;
				break;
			}
		}
	}

	/* The REMOVE events of our zaps must be handled before the pages
	 * stop being busy, or they would be taken for the program's own. */
	if (selected) {
		zmm_wait_events(mm);
		mark_device_private(mm, addr, npages, copied);
	}

	/* Finalize: the copied pages are device-private on dev. */
	pthread_mutex_lock(&mm->lock);
	keep_whole_windows_locked(mm, addr, npages, sel, pages);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t a = addr + i * PG_SIZE, vpn = vpn_of(a), e = ptable_get(&mm->pt, vpn);
		const struct vma *v = vmas_find(&vmas, a);

		if (pages[i]) {
			if (!(e & E_BUSY)) {
				/* Unmapped while we copied: the data went with it. */
				rescue_forget(mm, dev, refpool_page_to_pfn(pool, pages[i]));
				refpool_put(pool, pages[i]);
				pages[i] = NULL;
				continue;
			}
			e = e_devpriv(dev, refpool_page_to_pfn(pool, pages[i])) | E_MIRROR(dev) |
			    ((v->flags & VMA_WRITE) ? E_MIRROR_W(dev) : 0) |
			    (sel[i] == SEL_HUGE ? E_HUGE : 0);
			ptable_set(&mm->pt, vpn, e);
			pages[i] = NULL;
			migrated++;
		} else if (sel[i] && (e & E_BUSY)) {
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
		}
		if ((ptable_get(&mm->pt, vpn) & (E_DEVPRIV | E_DEV_MASK)) ==
		    (E_DEVPRIV | ((uint64_t)dev << E_DEV_SHIFT)))
			on_dev++;
	}
	pthread_mutex_unlock(&mm->lock);
	atomic_fetch_add_explicit(&mm->cnt[dev].pages_to_device, migrated, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->cnt[dev].device_pages, migrated, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->d->pages_to_device, migrated, memory_order_relaxed);
	if (selected) {
		unprotect_system_pages(mm, addr, npages);
		wake_range(mm, addr, end);
	}
	*cpages = on_dev;
	if (on_dev == npages)
		ret = 0;
	else
		ret = out_of_memory && !migrated ? -ENOMEM : -ENOENT;
	goto out_free;

out_unprotect:
	unprotect_system_pages(mm, addr, npages);
out_unbusy:
	pthread_mutex_lock(&mm->lock);
	/* Given up before the zaps (a failed copy, or a client that stopped
	 * answering): the device copies go, out of the table first. */
	for (uint64_t i = 0; i < npages; i++)
		if (pages[i])
			rescue_forget(mm, dev, refpool_page_to_pfn(pool, pages[i]));
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t vpn = vpn_of(addr + i * PG_SIZE), e = ptable_get(&mm->pt, vpn);

		if (pages[i] && sel[i] == SEL_HUGE && !(vpn & (WIN_PAGES - 1)))
			refpool_put_block(pool, pages[i]);
		else if (pages[i] && sel[i] != SEL_HUGE)
			refpool_put(pool, pages[i]);
		if (sel[i] && (e & E_BUSY))
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
	}
	pthread_mutex_unlock(&mm->lock);
	wake_range(mm, addr, end);
out_free:
	free(leave);
	free(copied);
	free(sel);
	free(pages);
	free(pm);
out_free_vmas:
	vmas_free(&vmas);
	return ret;
}

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
	unsigned int dev;
	bool any_dev;
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

	if (!(v & E_DEVPRIV) || (v & E_BUSY) || (!ctx->any_dev && e_dev(v) != ctx->dev))
		return true;
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
		struct refpool *pool = j->mm->d->dev[e_dev(r->e)].pool;
		struct uffdio_copy copy = {
			.dst = r->vpn << PG_SHIFT,
			.src = (uint64_t)(uintptr_t)refpool_page_mem(pool, entry_page(j->mm, r->e)),
			.len = r->n * PG_SIZE,
		};

		r->err = uffd_ioctl_retry(j->mm, UFFDIO_COPY, &copy, false);
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
		if (r->done == WIN_PAGES && window_intact_locked(mm, r->vpn, &first)) {
			forget_run_locked(mm, r->vpn, WIN_PAGES, first);
			*moved += WIN_PAGES;
			return 0;
		}
		/* Cut short or changed under us: page by page from here. */
		split_window_locked(mm, r->vpn);
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
			forget_run_locked(mm, vpn, k, e);
			*moved += k;
			i += k - 1;
			continue;
		}
		ptable_set(&mm->pt, vpn, e);
		if (!ret) {
			/* The copy stopped here (EEXIST: the CPU's copy wins);
			 * the page and any after it go one at a time. */
			ret = bring_back_locked(mm, vpn, e, false);
			if (!ret)
				(*moved)++;
		}
	}
	return ret;
}

static int bring_back_range(struct zmm *mm, int dev, uint64_t first, uint64_t end,
			    uint64_t *moved)
{
	struct back_ctx ctx = { .dev = dev < 0 ? 0 : (unsigned int)dev, .any_dev = dev < 0 };
	struct copy_back_job job = { .mm = mm };
	uint64_t n = 0;
	int ret = 0;

	pthread_mutex_lock(&mm->lock);
	split_edges_locked(mm, first, end);
	ptable_walk(&mm->pt, first, end, gather_entry, &ctx);
	/* FAIL_ALLOC's next large allocation is the system THP a device THP
	 * would come back into; zdev brings pages back as small pages anyway. */
	if (ctx.saw_huge && dev >= 0)
		mm->flags[dev] &= ~ZDEV_FLAG_FAIL_ALLOC;
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
		wake_range(mm, ctx.runs[i].vpn << PG_SHIFT,
			   (ctx.runs[i].vpn + ctx.runs[i].n) << PG_SHIFT);
	free(ctx.runs);
	if (moved)
		*moved = n;
	return ctx.err ?: ret;
}

int uffd_dev_migrate_to_system(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			       uint64_t *cpages)
{
	return bring_back_range(mm, (int)dev, vpn_of(addr), vpn_of(addr) + npages, cpages);
}

int uffd_dev_evict(struct zmm *mm, int dev, uint64_t *moved)
{
	return bring_back_range(mm, dev, 0, UINT64_MAX >> PG_SHIFT, moved);
}

void uffd_dev_forget_all(struct zmm *mm)
{
	/* As if the whole address space were unmapped. */
	uffd_dev_on_remove(mm, 0, UINT64_MAX & ~(PG_SIZE - 1), true);
}
