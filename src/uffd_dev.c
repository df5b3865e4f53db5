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
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "zdevd/parallel.h"
#include "zdevd/vmas.h"
#include "zdevd/zmm.h"

#define PAGE 4096ul
#define EAGAIN_TRIES 10000
#define PARALLEL_MIN_PAGES 1024	/* 4 MiB a thread, or not worth one */

static uint64_t vpn_of(uint64_t addr)
{
	return addr >> PAGE_SHIFT_4K;
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

/* ---- bringing a page back: the kernel's migrate_to_ram ---- */

/* Forgets n device-private pages starting at vpn, once their data is back. */
static void forget_run_locked(struct zmm *mm, uint64_t vpn, uint64_t n, uint64_t e)
{
	const unsigned int dev = e_dev(e);
	struct refpool *pool = mm->d->dev[dev].pool;

	for (uint64_t i = 0; i < n; i++) {
		ptable_set(&mm->pt, vpn + i, 0);
		refpool_put(pool, refpool_pfn_to_page(pool, e_pfn(e) + (uint32_t)i));
	}
	atomic_fetch_sub_explicit(&mm->cnt[dev].device_pages, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->cnt[dev].pages_to_system, n, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->d->pages_to_system, n, memory_order_relaxed);
}

/*
 * Copies a device-private page back into the client and frees the device
 * page. Caller holds mm->lock; on success the entry is gone (the CPU page
 * table changed, so every device's mirror entry for the page is erased too).
 */
static int bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t e, bool in_loop)
{
	struct refpool *pool = mm->d->dev[e_dev(e)].pool;
	struct uffdio_copy copy = {
		.dst = vpn << PAGE_SHIFT_4K,
		.src = (uint64_t)(uintptr_t)refpool_page_mem(pool, entry_page(mm, e)),
		.len = PAGE,
	};
	int ret;

	ret = uffd_ioctl_retry(mm, UFFDIO_COPY, &copy, in_loop);
	/* EEXIST: something mapped the page meanwhile; the CPU's copy wins,
	 * as after a racing fault. ENOENT/ESRCH: the mapping or the whole
	 * process is gone, and with it the data. */
	if (ret && ret != -EEXIST && ret != -ENOENT && ret != -ESRCH)
		return ret;
	forget_run_locked(mm, vpn, 1, e);
	return 0;
}

int uffd_dev_bring_back_locked(struct zmm *mm, uint64_t vpn, uint64_t entry)
{
	return bring_back_locked(mm, vpn, entry, false);
}

/* ---- the CPU fault service (event loop) ---- */

/* Zeros to resolve write faults from, a whole window at once. */
static const uint8_t zero_window[1ul << WINDOW_SHIFT] __attribute__((aligned(4096)));

/* The run from vpn to the end of its window that holds no device page. */
static uint64_t plain_run_locked(struct zmm *mm, uint64_t vpn)
{
	const uint64_t end = (vpn | ((1ull << (WINDOW_SHIFT - PAGE_SHIFT_4K)) - 1)) + 1;
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
						    .len = n * PAGE };

			ret = uffd_ioctl_retry(mm, UFFDIO_COPY, &copy, true);
			if (ret && copy.copy > 0)
				ret = 0;	/* stopped at a present page: ours is done */
		} else {
			struct uffdio_zeropage zero = { .range = { .start = addr, .len = n * PAGE } };

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
		struct uffdio_writeprotect wp = { .range = { .start = addr, .len = PAGE } };

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
		ret = resolve_zero(mm, addr & ~(PAGE - 1), flags & UFFD_PAGEFAULT_FLAG_WRITE);
	}
	pthread_mutex_unlock(&mm->lock);
	return ret;
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

	(void)vpn;
	/* A migration zapping its own pages sees its REMOVE events here: its
	 * pages stay. An unmap ends the migration of what it covers. */
	if ((*e & E_BUSY) && !ctx->unmap)
		return true;
	if (*e & E_DEVPRIV) {
		unsigned int dev = e_dev(*e);

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

	pthread_mutex_lock(&mm->lock);
	ptable_walk(&mm->pt, vpn_of(start), vpn_of(end + PAGE - 1), drop_entry, &ctx);
	pthread_mutex_unlock(&mm->lock);
}

struct move_ctx {
	int64_t delta;		/* in pages */
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
	ctx->moved[ctx->n++] = *e & ~(E_MIRROR_ALL | E_ATOMIC_ALL);
	*e = 0;
	return true;
}

/* mremap: device pages and the registration move with the range. */
void uffd_dev_on_remap(struct zmm *mm, uint64_t from, uint64_t to, uint64_t len)
{
	struct move_ctx ctx = { .delta = (int64_t)(vpn_of(to) - vpn_of(from)) };

	pthread_mutex_lock(&mm->lock);
	ptable_walk(&mm->pt, vpn_of(from), vpn_of(from + len), collect_entry, &ctx);
	for (size_t i = 0; i < ctx.n; i += 2)
		if (ptable_set(&mm->pt, (uint64_t)((int64_t)ctx.moved[i] + ctx.delta),
			       ctx.moved[i + 1]))
			ctx.err = -ENOMEM;
	pthread_mutex_unlock(&mm->lock);
	if (ctx.err)
		zdev_err("pid %d: mremap: lost track of pages: %s", (int)mm->pid,
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
	atomic_fetch_add_explicit(&ctx->child->cnt[e_dev(child_e)].device_pages, 1,
				  memory_order_relaxed);
	return true;
}

int uffd_dev_on_fork(struct zmm *parent, struct zmm *child)
{
	struct fork_ctx ctx = { .parent = parent, .child = child };

	pthread_mutex_lock(&parent->lock);
	pthread_mutex_lock(&child->lock);
	ptable_walk(&parent->pt, 0, UINT64_MAX >> PAGE_SHIFT_4K, share_entry, &ctx);
	child->open_devices = 0;
	pthread_mutex_unlock(&child->lock);
	pthread_mutex_unlock(&parent->lock);
	return ctx.err;
}

/* ---- migration to the device ---- */

struct run {
	uint64_t start, end;	/* page addresses */
};

int uffd_dev_register(struct zmm *mm, const struct vma_list *vmas, uint64_t start, uint64_t end)
{
	const uint64_t win = 1ull << WINDOW_SHIFT;
	const uint64_t ws = start & ~(win - 1), we = (end + win - 1) & ~(win - 1);

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
		v[*n - 1].iov_len += PAGE;
		return;
	}
	v[*n].iov_base = base;
	v[*n].iov_len = PAGE;
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
		if (!(pm[i] & (PM_PRESENT | PM_SWAP))) {
			memset(mem, 0, PAGE);
			continue;
		}
		if (b->nlocal == COPY_IOV || b->nremote == COPY_IOV)
			ret = iov_flush(mm, b);
		iov_add(b->local, &b->nlocal, mem);
		iov_add(b->remote, &b->nremote, (void *)(uintptr_t)(start + i * PAGE));
		b->bytes += PAGE;
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

	return copy_in(j->mm, j->pool, j->start + lo * PAGE, j->pages + lo, j->pm + lo, hi - lo);
}

int uffd_dev_migrate_to_device(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			       uffd_dev_zap_fn zap, void *zap_ctx, uint64_t *cpages)
{
	struct refpool *pool = mm->d->dev[dev].pool;
	const uint64_t end = addr + npages * PAGE;
	struct refpool_page **pages = NULL;
	struct vma_list vmas = { 0 };
	uint64_t *pm = NULL, selected = 0, migrated = 0, on_dev = 0;
	uint8_t *sel = NULL;
	bool out_of_memory = false;
	int ret;

	ret = vmas_read(mm->pid, addr & ~((1ull << WINDOW_SHIFT) - 1),
			(end + (1ull << WINDOW_SHIFT) - 1) & ~((1ull << WINDOW_SHIFT) - 1), &vmas);
	if (ret)
		return ret;
	/* The kernel refuses a hole or a vma without VM_READ outright. */
	for (uint64_t a = addr; a < end; a += PAGE) {
		const struct vma *v = vmas_find(&vmas, a);

		if (!v || !(v->flags & VMA_READ)) {
			ret = -EINVAL;
			goto out_free_vmas;
		}
	}
	pages = calloc(npages, sizeof(*pages));
	pm = calloc(npages, sizeof(*pm));
	sel = calloc(npages, 1);
	if (!pages || !pm || !sel) {
		ret = -ENOMEM;
		goto out_free;
	}

	/* Select: private anonymous pages not already device-private. Another
	 * device's page is not selected (SELECT_SYSTEM), nor a page that a
	 * concurrent migration owns. */
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t a = addr + i * PAGE, e = ptable_get(&mm->pt, vpn_of(a));

		if (!(vmas_find(&vmas, a)->flags & VMA_ANON) || (e & (E_DEVPRIV | E_BUSY)))
			continue;
		if (ptable_set(&mm->pt, vpn_of(a), e | E_BUSY))
			break;
		sel[i] = 1;
		selected++;
	}
	pthread_mutex_unlock(&mm->lock);

	if (selected) {
		/* Registration first, so a page first touched from now on faults
		 * to us; then write-protect, so no write can slip in between
		 * the copy and the zap. */
		ret = uffd_dev_register(mm, &vmas, addr, end);
		if (!ret)
			ret = write_protect(mm, addr, end, true);
		if (ret)
			goto out_unbusy;
		for (uint64_t i = 0; i < npages && !out_of_memory; i++) {
			if (!sel[i])
				continue;
			ret = refpool_alloc(pool, &pages[i]);
			if (ret == -ENOMEM) {
				out_of_memory = true;
				ret = 0;
				break;
			}
			if (ret)
				goto out_unprotect;
			pages[i]->owner = vpn_of(addr) + i;
		}
		/* The range is frozen now: what is present stays present. */
		ret = pagemap_read(mm->pagemap_fd, addr, npages, pm);
		if (!ret) {
			struct copy_job job = { mm, pool, addr, pages, pm };

			ret = parallel_run(copy_part, &job, npages, PARALLEL_MIN_PAGES);
		}
		if (ret)
			goto out_unprotect;

		/* Zap each run of copied pages; the client's madvise raises
		 * REMOVE events that leave our busy pages alone. */
		for (uint64_t i = 0; i < npages;) {
			uint64_t j;

			if (!pages[i]) {
				i++;
				continue;
			}
			for (j = i; j < npages && pages[j]; j++)
				;
			ret = zap(zap_ctx, addr + i * PAGE, (j - i) * PAGE);
			if (ret)
				goto out_unprotect;
			i = j;
		}
	}

	/* The REMOVE events of our zaps must be handled before the pages
	 * stop being busy, or they would be taken for the program's own. */
	if (selected)
		zmm_wait_events(mm);

	/* Finalize: the copied pages are device-private on dev. */
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t a = addr + i * PAGE, vpn = vpn_of(a), e = ptable_get(&mm->pt, vpn);
		const struct vma *v = vmas_find(&vmas, a);

		if (pages[i]) {
			if (!(e & E_BUSY)) {
				/* Unmapped while we copied: the data went with it. */
				refpool_put(pool, pages[i]);
				pages[i] = NULL;
				continue;
			}
			e = e_devpriv(dev, refpool_page_to_pfn(pool, pages[i])) | E_MIRROR(dev) |
			    ((v->flags & VMA_WRITE) ? E_MIRROR_W(dev) : 0);
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
		write_protect(mm, addr, end, false);
		wake_range(mm, addr, end);
	}
	*cpages = on_dev;
	if (on_dev == npages)
		ret = 0;
	else
		ret = out_of_memory && !migrated ? -ENOMEM : -ENOENT;
	goto out_free;

out_unprotect:
	write_protect(mm, addr, end, false);
out_unbusy:
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t vpn = vpn_of(addr + i * PAGE), e = ptable_get(&mm->pt, vpn);

		if (pages[i])
			refpool_put(pool, pages[i]);
		if (sel[i] && (e & E_BUSY))
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
	}
	pthread_mutex_unlock(&mm->lock);
	wake_range(mm, addr, end);
out_free:
	free(sel);
	free(pages);
	free(pm);
out_free_vmas:
	vmas_free(&vmas);
	return ret;
}

/* ---- migration to system memory ---- */

#define RUN_MAX 512	/* pages per UFFDIO_COPY: one PMD */

/* Pages consecutive both in the process and in device memory: one copy. */
struct back_run {
	uint64_t vpn, n, e;
	uint64_t done;		/* pages the copy put in place */
	int err;
};

struct back_ctx {
	unsigned int dev;
	bool any_dev;
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
	if (r && vpn == r->vpn + r->n && e_dev(v) == e_dev(r->e) && e_pfn(v) == e_pfn(r->e) + r->n &&
	    r->n < RUN_MAX) {
		r->n++;
		return true;
	}
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
	ctx->runs[ctx->nruns++] = (struct back_run){ .vpn = vpn, .n = 1, .e = v };
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
			.dst = r->vpn << PAGE_SHIFT_4K,
			.src = (uint64_t)(uintptr_t)refpool_page_mem(pool, entry_page(j->mm, r->e)),
			.len = r->n * PAGE,
		};

		r->err = uffd_ioctl_retry(j->mm, UFFDIO_COPY, &copy, false);
		r->done = copy.copy > 0 ? (uint64_t)copy.copy / PAGE : 0;
	}
	return 0;
}

/* After the copies, with mm->lock held: forget what went back, retry what a
 * racing change stopped, leave the rest on the device. */
static int finish_run_locked(struct zmm *mm, const struct back_run *r, uint64_t *moved)
{
	int ret = 0;

	for (uint64_t i = 0; i < r->n; i++) {
		uint64_t vpn = r->vpn + i, e = ptable_get(&mm->pt, vpn);

		if (!(e & E_BUSY))
			continue;	/* unmapped meanwhile: its page went with it */
		e &= ~E_BUSY;
		ptable_set(&mm->pt, vpn, e);
		if (i < r->done) {
			forget_run_locked(mm, vpn, 1, e);
			(*moved)++;
		} else if (!ret) {
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
	ptable_walk(&mm->pt, first, end, gather_entry, &ctx);
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
		wake_range(mm, ctx.runs[i].vpn << PAGE_SHIFT_4K,
			   (ctx.runs[i].vpn + ctx.runs[i].n) << PAGE_SHIFT_4K);
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
	return bring_back_range(mm, dev, 0, UINT64_MAX >> PAGE_SHIFT_4K, moved);
}

void uffd_dev_forget_all(struct zmm *mm)
{
	/* As if the whole address space were unmapped. */
	uffd_dev_on_remove(mm, 0, UINT64_MAX & ~(PAGE - 1), true);
}
