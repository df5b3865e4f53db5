/* SPDX-License-Identifier: MIT */
/*
 * Migration to the device, in the phases of the kernel's migrate_vma:
 * setup (the range checked, private file mappings made anonymous), select
 * (the pages that can move, marked busy: migrate_vma_collect), protect
 * (registered and write-protected, so no write slips past the copy),
 * allocate and copy (the driver's alloc_and_copy), zap (the client empties
 * its pages: from then on only the device has them: migrate_vma_pages) and
 * finalize (migrate_vma_finalize), or abort before the zap.
 *
 * Locking as in uffd_dev.c: mm->lock is never held across a copy from the
 * client.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "lathist.h"
#include "devmodel.h"
#include "migrate.h"
#include "page.h"
#include "parallel.h"
#include "store.h"
#include "trace.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "vmas.h"
#include "warm.h"
#include "zdev.h"
#include "zmm.h"

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
	if (mm->ds->uffd_features & UFFD_FEATURE_WP_UNPOPULATED)
		uffd_dev_protect_runs(mm, addr, npages, zapped, true);
}

/* The end of a migration: write protection off on every page the device does
 * not hold, whose markers (if any) are the migration's own, but for coherent
 * pages a fork shares, whose protection is the fork's (FORK_PREPARE) and
 * must stay until each process's first write. */
static void unprotect_system_pages(struct zmm *mm, uint64_t addr, uint64_t npages)
{
	uint8_t *system = malloc(npages);

	if (!system) {
		uffd_dev_write_protect(mm, addr, addr + npages * PG_SIZE, false);
		return;
	}
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		const uint64_t e = ptable_get(&mm->pt, pg_vpn(addr) + i);

		system[i] = !(e & E_DEVPRIV) && !((e & E_COHERENT) && zmm_entry_shared(mm, e));
	}
	pthread_mutex_unlock(&mm->lock);
	uffd_dev_protect_runs(mm, addr, npages, system, false);
	free(system);
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
	struct device *dev;
	struct refpool *pool;
	uint64_t start;
	struct refpool_page **pages;
	const uint64_t *pm;
};

/* Populates one run of adjacent device pages within one block, if the block
 * may have pages without memory; a run over the whole block leaves it
 * filled. */
static void populate_run(struct device *dev, uint32_t pfn, char *mem, size_t npages)
{
	if (!store_block_unfilled(dev, pfn))
		return;
	if (!madvise(mem, npages * PG_SIZE, MADV_POPULATE_WRITE) && npages == REFPOOL_BLOCK_PAGES)
		store_block_filled(dev, pfn);
}

/*
 * Gives the device pages their memory before the copy writes them, one
 * call for each run of adjacent pages in a block a store came under
 * lately. A device page's first write in its store otherwise faults in a
 * fresh memfd page inside the copy, one at a time, and fresh memory costs
 * several times the copy where the host backs the guest lazily. A kernel
 * without MADV_POPULATE_WRITE, or one short of memory now, leaves the
 * faults to the copy as before: nothing depends on it.
 */
static void populate_device_pages(struct device *dev, struct refpool *pool,
				  struct refpool_page **pages, size_t n)
{
	uint32_t run_pfn = 0;
	char *run = NULL;
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		uint32_t pfn;
		char *mem;

		if (!pages[i])
			continue;
		pfn = refpool_page_to_pfn(pool, pages[i]);
		mem = refpool_page_mem(pool, pages[i]);
		if (run && pfn == run_pfn + len && pfn % REFPOOL_BLOCK_PAGES &&
		    run + len * PG_SIZE == mem) {
			len++;
			continue;
		}
		if (run)
			populate_run(dev, run_pfn, run, len);
		run = mem;
		run_pfn = pfn;
		len = 1;
	}
	if (run)
		populate_run(dev, run_pfn, run, len);
}

static int copy_part(void *ctx, size_t lo, size_t hi)
{
	struct copy_job *j = ctx;

	populate_device_pages(j->dev, j->pool, j->pages + lo, hi - lo);
	return copy_in(j->mm, j->pool, j->start + lo * PG_SIZE, j->pages + lo, j->pm + lo, hi - lo);
}

/* What became of each page of the range. */
enum {
	SEL_NONE,	/* stays where it is */
	SEL_PAGE,	/* moves as a page of its own */
	SEL_HUGE,	/* moves as a page of a device THP */
};

/* One migration to the device, shared by its phases. Arrays have a slot for
 * each page of the range. */
struct migration {
	struct zmm *mm;
	unsigned int dev;
	struct refpool *pool;
	const struct migrate_client *client;
	void *ctx;
	uint64_t addr, npages, end;
	uint64_t lo, hi;		/* the windows around the range */
	struct vma_list vmas;		/* of [lo, hi), as they are now */
	uint8_t *leave;			/* a file's own page: stays (NULL: none) */
	uint8_t *sel;			/* SEL_* */
	uint64_t *pm;			/* pagemap, before the write protection */
	struct refpool_page **pages;	/* the device page each one gets */
	uint8_t *copied;		/* in device memory, named in the rescue table */
	uint64_t selected;
	bool registered;		/* write protection may be on */
	bool held_exclusive;		/* pages end as E_HELD_EXCL */
	bool out_of_memory;		/* the pool or the client's limit ran out */
	uint64_t t0;			/* when it began, for the trace */
};

/*
 * Whether the selected window of pages at i0 moves as one device THP
 * (MIGRATE_VMA_SELECT_COMPOUND): a PMD-mapped THP, or a never-touched window
 * of a mapping that would get a THP on a fault (the kernel's pmd_none hole).
 */
static bool window_is_compound(const struct migration *m, uint64_t i0, const uint8_t *thp)
{
	const uint64_t a = m->addr + i0 * PG_SIZE;
	bool all_thp = true, all_empty = true;

	for (uint64_t k = 0; k < WIN_PAGES; k++) {
		if (m->sel[i0 + k] != SEL_PAGE)
			return false;
		all_thp &= thp[i0 + k];
		all_empty &= !(m->pm[i0 + k] & (PM_PRESENT | PM_SWAP));
	}
	if (all_thp)
		return true;
	return all_empty && vmas_find(&m->vmas, a) && vma_thp_eligible(m->mm->pid, a);
}

/* ZDEV_FLAG_FAIL_ALLOC makes the next large allocation fail, once. */
static bool fail_alloc_once(struct zmm *mm, unsigned int dev)
{
	bool fail;

	pthread_mutex_lock(&mm->lock);
	fail = mm->flags[dev] & ZDEV_FLAG_FAIL_ALLOC;
	mm->flags[dev] &= ~ZDEV_FLAG_FAIL_ALLOC;
	pthread_mutex_unlock(&mm->lock);
	return fail;
}

/*
 * One block for each compound window, while *budget lasts: a window without
 * one (FAIL_ALLOC, or no whole free block in the pool) moves page by page,
 * as the driver falls back to. 0 or -ENOMEM.
 */
static int alloc_blocks(struct migration *m, struct store *store, uint64_t *budget)
{
	const uint64_t vpn0 = pg_vpn(m->addr);
	uint8_t *thp;

	if (m->npages < WIN_PAGES)
		return 0;
	thp = calloc(m->npages, 1);
	if (!thp)
		return -ENOMEM;
	/* Without PAGEMAP_SCAN only never-touched windows move whole. */
	pagemap_huge(m->mm->pagemap_fd, m->addr, m->npages, thp);
	for (uint64_t w = win_of(vpn0 + WIN_PAGES - 1); w + WIN_PAGES <= vpn0 + m->npages;
	     w += WIN_PAGES) {
		const uint64_t i0 = w - vpn0;
		struct refpool_page *block;

		if (*budget < WIN_PAGES || !window_is_compound(m, i0, thp) ||
		    fail_alloc_once(m->mm, m->dev))
			continue;
		if (refpool_alloc_block_owned(m->pool, store->owner, &block))
			break;
		*budget -= WIN_PAGES;
		for (uint64_t k = 0; k < WIN_PAGES; k++) {
			m->pages[i0 + k] = block + k;
			m->pages[i0 + k]->owner = w + k;
			m->sel[i0 + k] = SEL_HUGE;
		}
	}
	free(thp);
	return 0;
}

#define ALLOC_BATCH 64	/* device pages taken from the pool at once */

/* Single pages for the other selected pages, while *budget lasts: the pages
 * left without one when the pool runs out stay in system memory. 0, or the
 * pool's -errno other than -ENOMEM. */
static int alloc_singles(struct migration *m, struct store *store, uint64_t *budget)
{
	for (uint64_t i = 0; i < m->npages;) {
		struct refpool_page *got[ALLOC_BATCH];
		uint64_t idx[ALLOC_BATCH];
		uint32_t want = 0, take;
		int n;

		for (; i < m->npages && want < ALLOC_BATCH; i++)
			if (m->sel[i] == SEL_PAGE)
				idx[want++] = i;
		if (!want)
			break;
		take = *budget < want ? (uint32_t)*budget : want;
		n = take ? refpool_alloc_owned_many(m->pool, store->owner, take, got) : -ENOMEM;
		if (n == -ENOMEM) {
			m->out_of_memory = true;
			break;
		}
		if (n < 0)
			return n;
		for (int k = 0; k < n; k++) {
			m->pages[idx[k]] = got[k];
			got[k]->owner = pg_vpn(m->addr) + idx[k];
		}
		*budget -= (uint64_t)n;
		if ((uint32_t)n < want) {
			m->out_of_memory = true;
			break;
		}
	}
	return 0;
}

/* The process's store on the device, handed to the client first if new
 * (store.c): its pages go there only. With a reference, or -errno. */
static int get_store(struct migration *m, struct store **out)
{
	struct zmm *mm = m->mm;
	struct store *store;
	int ret;

	pthread_mutex_lock(&mm->lock);
	ret = store_get_locked(&mm->stores, m->dev, &store);
	pthread_mutex_unlock(&mm->lock);
	if (ret <= 0)
		goto out;
	ret = m->client->give_store(m->ctx, m->dev, store->fd, store->id);
	if (ret) {
		/* Not handed over: the next migration makes another rather
		 * than fill one the client cannot rescue. */
		pthread_mutex_lock(&mm->lock);
		store_drop_locked(&mm->stores, m->dev, store);
		pthread_mutex_unlock(&mm->lock);
		store_put(store);
	}
out:
	*out = ret ? NULL : store;
	return ret;
}

/* Allocate: device pages for the selected pages, in the process's own store
 * on the device; the client's own limit on the device acts as a smaller
 * pool. 0 or -errno; running out is no error (m->out_of_memory). */
static int migration_alloc(struct migration *m)
{
	const uint64_t limit = m->mm->ds->client_memory / PG_SIZE;
	const uint64_t held = atomic_load_explicit(&m->mm->cnt[m->dev].device_pages,
						   memory_order_relaxed);
	uint64_t budget = !limit ? UINT64_MAX : held < limit ? limit - held : 0;
	struct store *store;
	int ret;

	ret = get_store(m, &store);
	if (ret)
		return ret;
	ret = alloc_blocks(m, store, &budget);
	if (!ret)
		ret = alloc_singles(m, store, &budget);
	store_put(store);
	return ret;
}

/* Copy: the selected pages into their device pages, on every CPU (the
 * client waits for us, so its CPU is free too). */
static int migration_copy(struct migration *m)
{
	struct copy_job job = { m->mm, &m->mm->ds->dev[m->dev], m->pool, m->addr, m->pages, m->pm };

	return parallel_run(copy_part, &job, m->npages, PARALLEL_MIN_PAGES);
}

static unsigned int prot_of(unsigned int vma_flags)
{
	return ((vma_flags & VMA_READ) ? PROT_READ : 0) | ((vma_flags & VMA_WRITE) ? PROT_WRITE : 0) |
	       ((vma_flags & VMA_EXEC) ? PROT_EXEC : 0);
}

/* Marks in m->leave the pages of the private file mapping [s, e) that are
 * the file's own: true if some page there is copy-on-write. */
static int mark_file_pages(struct migration *m, uint64_t s, uint64_t e, bool *any_cow)
{
	const uint64_t i0 = (s - m->addr) / PG_SIZE, n = (e - s) / PG_SIZE;
	int ret;

	ret = pagemap_read(m->mm->pagemap_fd, s, n, m->pm + i0);
	for (uint64_t i = i0; i < i0 + n && !ret; i++) {
		bool cow = (m->pm[i] & PM_PRESENT) && !(m->pm[i] & PM_FILE);

		m->leave[i] = !cow;
		*any_cow |= cow;
	}
	return ret;
}

/*
 * Private file mappings: the kernel migrates their copy-on-write pages,
 * which are anonymous, and leaves the file's own. A uffd cannot register a
 * file mapping, so the client first turns each such mapping that holds
 * copy-on-write pages in the range into anonymous memory, whole (it stays
 * one mapping). Which pages were copy-on-write is read before: m->leave
 * marks the others, which stay in system memory as the kernel would leave
 * them (NULL when the range has no file mapping). 0 or -errno.
 */
static int anonymize_file_mappings(struct migration *m)
{
	bool changed = false;
	int ret = 0;

	for (size_t k = 0; k < m->vmas.n && !ret; k++) {
		const struct vma *v = &m->vmas.v[k];
		const uint64_t s = v->start > m->addr ? v->start : m->addr;
		const uint64_t e = v->end < m->end ? v->end : m->end;
		bool any_cow = false;

		if ((v->flags & (VMA_FILE | VMA_SHARED)) != VMA_FILE || e <= s)
			continue;
		if (!m->leave) {
			m->leave = calloc(m->npages, 1);
			if (!m->leave)
				return -ENOMEM;
		}
		ret = mark_file_pages(m, s, e, &any_cow);
		if (!ret && any_cow) {
			ret = m->client->anonymize(m->ctx, v->start, v->end - v->start,
						   prot_of(v->flags));
			changed |= !ret;
		}
	}
	if (!ret && changed) {
		vmas_free(&m->vmas);
		ret = vmas_read(m->mm->pid, m->lo, m->hi, &m->vmas);
	}
	return ret;
}

/* Setup: the range as it is now. The kernel refuses a hole or a mapping
 * without VM_READ outright: -EINVAL. 0 or -errno. */
static int migration_setup(struct migration *m)
{
	int ret;

	ret = vmas_read(m->mm->pid, m->lo, m->hi, &m->vmas);
	if (ret)
		return ret;
	for (uint64_t a = m->addr; a < m->end; a += PG_SIZE) {
		const struct vma *v = vmas_find(&m->vmas, a);

		if (!v || !(v->flags & VMA_READ))
			return -EINVAL;
	}
	m->pm = calloc(m->npages, sizeof(*m->pm));
	m->pages = calloc(m->npages, sizeof(*m->pages));
	m->sel = calloc(m->npages, 1);
	m->copied = calloc(m->npages, 1);
	if (!m->pm || !m->pages || !m->sel || !m->copied)
		return -ENOMEM;
	return anonymize_file_mappings(m);
}

/* Select: private anonymous pages on no device yet. Another device's page,
 * private or coherent, is not selected (SELECT_SYSTEM), nor a page that a
 * concurrent migration owns. A selected page is busy: ours. */
static void migration_select(struct migration *m)
{
	struct zmm *mm = m->mm;

	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < m->npages; i++) {
		const uint64_t a = m->addr + i * PG_SIZE, e = ptable_get(&mm->pt, pg_vpn(a));
		const struct vma *v = vmas_find(&m->vmas, a);

		if (!v || !(v->flags & VMA_ANON) || (e & (E_ON_DEVICE | E_BUSY)) ||
		    (m->leave && m->leave[i]))
			continue;
		if (ptable_set(&mm->pt, pg_vpn(a), e | E_BUSY))
			break;
		m->sel[i] = SEL_PAGE;
		m->selected++;
	}
	pthread_mutex_unlock(&mm->lock);
}

/* Protect: registration first, so a page first touched from now on faults
 * to us; then write protection, so no write can slip in between the copy
 * and the zap. 0 or -errno. */
static int migration_protect(struct migration *m)
{
	int ret;

	ret = uffd_dev_register(m->mm, &m->vmas, m->addr, m->end);
	if (ret)
		return ret;
	m->registered = true;
	/* What is missing stays missing now (its faults wait for us), and
	 * what is present stays present. Read before the write protection,
	 * whose markers would look like swapped pages. */
	ret = pagemap_read(m->mm->pagemap_fd, m->addr, m->npages, m->pm);
	if (!ret)
		ret = uffd_dev_write_protect(m->mm, m->addr, m->end, true);
	return ret;
}

/*
 * A zap of [s, e) (pages of the range) failed: the runs before it were
 * zapped and migrate. Of this run, what the madvise did not reach (a page
 * still present) is still the CPU's, and nothing after it was tried: their
 * device copies go, out of the rescue table first.
 */
static void keep_zapped_only(struct migration *m, uint64_t s, uint64_t e)
{
	struct zmm *mm = m->mm;
	uint64_t *pm = calloc(e - s, sizeof(*pm));
	bool known = pm && (!pagemap_read(mm->pagemap_fd, m->addr + s * PG_SIZE, e - s, pm) ||
			    !pagemap_read(mm->pagemap_fd, m->addr + s * PG_SIZE, e - s, pm));

	for (uint64_t i = s; i < m->npages; i++) {
		/* Not knowing what the madvise reached, the device copies of
		 * this run stay: a page it emptied must not lose its only one. */
		if (!m->copied[i] || (i < e && (!known || !(pm[i - s] & PM_PRESENT))))
			continue;
		store_forget(&mm->stores, m->dev, refpool_page_to_pfn(m->pool, m->pages[i]));
		refpool_put(m->pool, m->pages[i]);
		m->pages[i] = NULL;
		m->copied[i] = 0;
	}
	free(pm);
}

/*
 * Zap: the client empties each run of copied pages; its madvise raises
 * REMOVE events that leave our busy pages alone. The rescue table names each
 * page before its zap: from then on only the device has it. A zap that fails
 * ends the migration there, with what was zapped before it.
 */
static void migration_zap(struct migration *m)
{
	for (uint64_t i = 0; i < m->npages; i++) {
		m->copied[i] = m->pages[i] != NULL;
		if (m->copied[i])
			store_note(&m->mm->stores, m->dev, refpool_page_to_pfn(m->pool, m->pages[i]),
				   pg_vpn(m->addr) + i);
	}
	for (uint64_t s = 0, e = 0; run_next(m->copied, m->npages, &s, &e);) {
		if (m->client->zap(m->ctx, m->addr + s * PG_SIZE, (e - s) * PG_SIZE)) {
			keep_zapped_only(m, s, e);
			break;
		}
	}
	/* The REMOVE events of our zaps must be handled before the pages stop
	 * being busy, or they would be taken for the program's own. */
	zmm_wait_events(m->mm);
	mark_device_private(m->mm, m->addr, m->npages, m->copied);
}

/* A device THP some page of which went away while it was copied (unmapped)
 * is split: its other pages stay on the device one by one. */
static void keep_whole_windows_locked(struct migration *m)
{
	const uint64_t vpn0 = pg_vpn(m->addr);

	for (uint64_t i = 0; i < m->npages; i++) {
		bool whole = true;

		if (m->sel[i] != SEL_HUGE || ((vpn0 + i) & (WIN_PAGES - 1)))
			continue;
		for (uint64_t k = 0; k < WIN_PAGES && whole; k++)
			whole = m->pages[i + k] && (ptable_get(&m->mm->pt, vpn0 + i + k) & E_BUSY);
		if (whole)
			continue;
		for (uint64_t k = 0; k < WIN_PAGES; k++)
			m->sel[i + k] = SEL_PAGE;
	}
}

/* The entry of page i once it is device-private on m->dev. */
static uint64_t device_entry(const struct migration *m, uint64_t i)
{
	const struct vma *v = vmas_find(&m->vmas, m->addr + i * PG_SIZE);

	return e_devpriv(m->dev, refpool_page_to_pfn(m->pool, m->pages[i])) | E_MIRROR(m->dev) |
	       ((v->flags & VMA_WRITE) ? E_MIRROR_W(m->dev) : 0) |
	       (m->sel[i] == SEL_HUGE ? E_HUGE : 0);
}

/*
 * Finalize: the pages copied and still ours are device-private on the
 * device, with this device's mirror entry (writable as their mapping is);
 * a page unmapped while we copied went with its data, and its device copy
 * goes too. *cpages: the pages of the range on the device now. The result
 * of the whole migration (see migrate.h).
 */
static int migration_finalize(struct migration *m, uint64_t *cpages)
{
	struct zmm *mm = m->mm;
	const uint64_t on_dev_bits = E_DEVPRIV | ((uint64_t)m->dev << E_DEV_SHIFT);
	uint64_t migrated = 0, on_dev = 0;

	pthread_mutex_lock(&mm->lock);
	keep_whole_windows_locked(m);
	for (uint64_t i = 0; i < m->npages; i++) {
		const uint64_t vpn = pg_vpn(m->addr) + i, e = ptable_get(&mm->pt, vpn);

		if (m->pages[i] && !(e & E_BUSY)) {
			/* Unmapped while we copied: the data went with it. */
			store_forget(&mm->stores, m->dev, refpool_page_to_pfn(m->pool, m->pages[i]));
			refpool_put(m->pool, m->pages[i]);
			m->pages[i] = NULL;
			continue;
		}
		if (m->pages[i]) {
			ptable_set(&mm->pt, vpn,
				   device_entry(m, i) | (m->held_exclusive ? E_HELD_EXCL : 0));
			m->pages[i] = NULL;
			migrated++;
		} else if (m->sel[i] && (e & E_BUSY)) {
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
		}
		if ((ptable_get(&mm->pt, vpn) & (E_DEVPRIV | E_DEV_MASK)) == on_dev_bits)
			on_dev++;
	}
	pthread_mutex_unlock(&mm->lock);
	if (m->held_exclusive) {
		atomic_fetch_add_explicit(&mm->cnt[m->dev].exclusive_grants, migrated,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&mm->ds->dev[m->dev].totals.exclusive_grants, migrated,
					  memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&mm->cnt[m->dev].pages_to_device, migrated,
					  memory_order_relaxed);
		atomic_fetch_add_explicit(&mm->ds->dev[m->dev].totals.pages_to_device, migrated,
					  memory_order_relaxed);
	}
	zmm_add_device_pages(mm, m->dev, migrated);
	if (tracing())
		trace_span(m->held_exclusive ? TRACE_GRANT_HELD : TRACE_TO_DEVICE, mm->pid,
			   (int)m->dev, m->addr, migrated, migrated, m->t0, lathist_now_ns());
	devmodel_note(m->dev, DEVMODEL_TO_DEVICE, migrated);
	if (m->selected) {
		unprotect_system_pages(mm, m->addr, m->npages);
		uffd_dev_wake(mm, m->addr, m->end);
	}
	*cpages = on_dev;
	if (on_dev == m->npages)
		return 0;
	return m->out_of_memory && !migrated ? -ENOMEM : -ENOENT;
}

/* Abort, before any zap (a failed copy, or a client that stopped
 * answering): the device copies go, out of the rescue table first, and the
 * pages are the CPU's again. */
static void migration_abort(struct migration *m)
{
	struct zmm *mm = m->mm;

	if (m->registered)
		unprotect_system_pages(mm, m->addr, m->npages);
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < m->npages; i++)
		if (m->pages[i])
			store_forget(&mm->stores, m->dev, refpool_page_to_pfn(m->pool, m->pages[i]));
	for (uint64_t i = 0; i < m->npages; i++) {
		const uint64_t vpn = pg_vpn(m->addr) + i, e = ptable_get(&mm->pt, vpn);

		if (m->pages[i] && m->sel[i] == SEL_HUGE && !(vpn & (WIN_PAGES - 1)))
			refpool_put_block(m->pool, m->pages[i]);
		else if (m->pages[i] && m->sel[i] != SEL_HUGE)
			refpool_put(m->pool, m->pages[i]);
		if (m->sel[i] && (e & E_BUSY))
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
	}
	pthread_mutex_unlock(&mm->lock);
	uffd_dev_wake(mm, m->addr, m->end);
}

static void migration_free(struct migration *m)
{
	free(m->leave);
	free(m->copied);
	free(m->sel);
	free(m->pages);
	free(m->pm);
	vmas_free(&m->vmas);
}

static int migrate(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		   const struct migrate_client *client, void *ctx, bool held_exclusive,
		   uint64_t *cpages)
{
	struct migration m = {
		.mm = mm, .dev = dev, .pool = mm->ds->dev[dev].pool,
		.client = client, .ctx = ctx,
		.addr = addr, .npages = npages, .end = addr + npages * PG_SIZE,
		.lo = win_down(addr), .hi = win_up(addr + npages * PG_SIZE),
		.held_exclusive = held_exclusive,
		.t0 = tracing() ? lathist_now_ns() : 0,
	};
	int ret;

	ret = migration_setup(&m);
	if (ret)
		goto out_free;
	migration_select(&m);
	if (m.selected) {
		ret = migration_protect(&m);
		if (!ret)
			ret = migration_alloc(&m);
		if (!ret)
			ret = migration_copy(&m);
		if (ret) {
			migration_abort(&m);
			goto out_free;
		}
		migration_zap(&m);
	}
	ret = migration_finalize(&m, cpages);
out_free:
	migration_free(&m);
	return ret;
}

int migrate_leave_file_pages(struct zmm *mm, uint64_t addr, uint64_t npages,
			     const struct migrate_client *client, void *ctx, uint8_t **leave)
{
	struct migration m = {
		.mm = mm, .client = client, .ctx = ctx,
		.addr = addr, .npages = npages, .end = addr + npages * PG_SIZE,
		.lo = win_down(addr), .hi = win_up(addr + npages * PG_SIZE),
	};
	int ret;

	ret = vmas_read(mm->pid, m.lo, m.hi, &m.vmas);
	if (ret)
		return ret;
	m.pm = calloc(npages, sizeof(*m.pm));
	ret = m.pm ? anonymize_file_mappings(&m) : -ENOMEM;
	if (!ret) {
		*leave = m.leave;
		m.leave = NULL;
	}
	migration_free(&m);
	return ret;
}

int migrate_to_device(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		      const struct migrate_client *client, void *ctx, uint64_t *cpages)
{
	/* (EXCLUSIVE_HELD below takes the pages away from the CPU whatever the
	 * device's type: that is what it is for.) */
	struct device *device = &mm->ds->dev[dev];
	int ret;

	if (device->memtype == REFPOOL_MEMTYPE_COHERENT)
		return migrate_to_coherent(mm, dev, addr, npages, client, ctx, cpages);
	warm_device_busy(device);
	ret = migrate(mm, dev, addr, npages, client, ctx, false, cpages);
	warm_device_done(device);
	return ret;
}

int migrate_to_device_held_exclusive(struct zmm *mm, unsigned int dev, uint64_t addr,
				     uint64_t npages, const struct migrate_client *client,
				     void *ctx, uint64_t *cpages)
{
	struct device *device = &mm->ds->dev[dev];
	int ret;

	warm_device_busy(device);
	ret = migrate(mm, dev, addr, npages, client, ctx, true, cpages);
	warm_device_done(device);
	return ret;
}
