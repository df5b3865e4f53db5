/* SPDX-License-Identifier: MIT */
/*
 * Migration to a coherent device (the kernel's MEMORY_DEVICE_COHERENT): the
 * CPU maps coherent device memory with ordinary page table entries, so in
 * zdev a page on a coherent device is the process's own page, left where it
 * is and owned by the device. Its data never leaves the client's mapping:
 * the CPU reads and writes it without a fault, and a zdevd that dies loses
 * nothing (no store, no rescue table entry). The device's pool charges one
 * page for it, which keeps the device's memory limit, the pool's refcount
 * lifecycle and the device's totals as they are for private pages, and with
 * more than one NUMA node the page moves to the device's node.
 *
 * The phases are those of migrate.c, shorter: setup, select (private
 * anonymous pages on no device yet, marked busy), make present (a page never
 * touched gets a real zeroed one, where the kernel would map a device page),
 * allocate (one pool page each), finalize (the entries become the device's,
 * with its mirror entry). Nothing is copied, so nothing is write-protected:
 * a write racing with the migration lands in the page the device ends up
 * owning.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "lathist.h"
#include "devmodel.h"
#include "migrate.h"
#include "numa_place.h"
#include "page.h"
#include "trace.h"
#include "uffd_dev.h"
#include "vmas.h"
#include "zmm.h"

struct coherent_migration {
	struct zmm *mm;
	unsigned int dev;
	struct refpool *pool;
	uint64_t addr, npages, end;
	struct vma_list vmas;		/* of the windows around the range */
	uint8_t *leave;			/* a file's own page: stays (NULL: none) */
	uint8_t *sel;			/* selected, and busy */
	struct refpool_page **pages;	/* the pool page each one gets */
	uint64_t selected;
	bool out_of_memory;		/* the pool or the client's limit ran out */
	uint64_t t0;			/* when it began, for the trace */
};

/* Setup: the kernel refuses a hole or a mapping without VM_READ outright;
 * private file mappings give up their copy-on-write pages, as for private
 * devices (migrate.c). */
static int setup(struct coherent_migration *m, const struct migrate_client *client, void *ctx)
{
	int ret;

	/* A range with a hole is refused before anything is done, or sized
	 * by: one the address space cannot hold would take that many pages'
	 * work and memory first. The check goes by mapping, not by page. */
	ret = vmas_read(m->mm->pid, win_down(m->addr), win_up(m->end), &m->vmas);
	if (ret)
		return ret;
	for (uint64_t a = m->addr; a < m->end;) {
		const struct vma *v = vmas_find(&m->vmas, a);

		if (!v || !(v->flags & VMA_READ))
			return -EINVAL;
		a = v->end;
	}
	ret = migrate_leave_file_pages(m->mm, m->addr, m->npages, client, ctx, &m->leave);
	if (ret)
		return ret;
	/* Turning file mappings anonymous replaced them: read them again. */
	vmas_free(&m->vmas);
	ret = vmas_read(m->mm->pid, win_down(m->addr), win_up(m->end), &m->vmas);
	if (ret)
		return ret;
	m->sel = calloc(m->npages, 1);
	m->pages = calloc(m->npages, sizeof(*m->pages));
	return m->sel && m->pages ? 0 : -ENOMEM;
}

/* Select: private anonymous pages on no device (SELECT_SYSTEM: another
 * device's page, private or coherent, stays), none a concurrent migration
 * owns. A selected page is busy: ours. */
static void select_pages(struct coherent_migration *m)
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
		m->sel[i] = 1;
		m->selected++;
	}
	pthread_mutex_unlock(&mm->lock);
}

/*
 * Make present: the range is registered (so that munmap, MADV_DONTNEED,
 * mremap and fork of it reach us, and a never-touched page can be filled),
 * and each selected page that is not there gets a zeroed page of its own;
 * one that a racing first touch filled meanwhile is kept. 0 or -errno.
 */
static int make_present(struct coherent_migration *m)
{
	uint64_t *pm;
	uint8_t *missing;
	int ret;

	ret = uffd_dev_register(m->mm, &m->vmas, m->addr, m->end);
	if (ret)
		return ret;
	pm = calloc(m->npages, sizeof(*pm));
	missing = calloc(m->npages, 1);
	if (!pm || !missing) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = pagemap_read(m->mm->pagemap_fd, m->addr, m->npages, pm);
	if (ret)
		goto out_free;
	/* A swapped-out page holds data and comes back on the CPU's touch
	 * without us; a write-protect marker in an empty PTE is no page. */
	for (uint64_t i = 0; i < m->npages; i++)
		missing[i] = m->sel[i] && (!(pm[i] & (PM_PRESENT | PM_SWAP)) ||
					   (!(pm[i] & PM_PRESENT) && (pm[i] & PM_UFFD_WP)));
	for (uint64_t s = 0, e = 0; !ret && run_next(missing, m->npages, &s, &e);)
		ret = uffd_dev_fill_zeros(m->mm, m->addr + s * PG_SIZE, e - s);
out_free:
	free(missing);
	free(pm);
	return ret;
}

/* Allocate: a pool page for each selected page while the device's memory
 * and the client's own limit on it last. 0, or the pool's -errno other than
 * -ENOMEM (running out is no error: m->out_of_memory). */
static int alloc_pages(struct coherent_migration *m)
{
	const uint64_t limit = m->mm->ds->client_memory / PG_SIZE;
	const uint64_t held = atomic_load_explicit(&m->mm->cnt[m->dev].device_pages,
						   memory_order_relaxed);
	uint64_t budget = !limit ? UINT64_MAX : held < limit ? limit - held : 0;

	for (uint64_t i = 0; i < m->npages; i++) {
		int ret;

		if (!m->sel[i])
			continue;
		ret = budget ? refpool_alloc(m->pool, &m->pages[i]) : -ENOMEM;
		if (ret == -ENOMEM) {
			m->out_of_memory = true;
			return 0;
		}
		if (ret)
			return ret;
		m->pages[i]->owner = pg_vpn(m->addr) + i;
		budget--;
	}
	return 0;
}

/* With more than one node, the device's pages sit on its node. Best
 * effort: a page that cannot move is still the device's. */
static void place_pages(struct coherent_migration *m)
{
	const int node = m->mm->ds->dev[m->dev].node;
	void **addrs = malloc(m->selected * sizeof(*addrs));
	size_t n = 0;

	if (!addrs || numa_place_nodes() == 1) {
		free(addrs);
		return;
	}
	for (uint64_t i = 0; i < m->npages; i++)
		if (m->pages[i])
			addrs[n++] = (void *)(uintptr_t)(m->addr + i * PG_SIZE);
	numa_place_move(m->mm->pid, addrs, n, node);
	free(addrs);
}

/* The entry of page i once it is the device's: its mirror maps it, writable
 * as its mapping is. */
static uint64_t coherent_entry(const struct coherent_migration *m, uint64_t i)
{
	const struct vma *v = vmas_find(&m->vmas, m->addr + i * PG_SIZE);

	return e_coherent(m->dev, refpool_page_to_pfn(m->pool, m->pages[i])) | E_MIRROR(m->dev) |
	       ((v->flags & VMA_WRITE) ? E_MIRROR_W(m->dev) : 0);
}

/*
 * Finalize: the selected pages still ours (an unmap meanwhile took a page
 * with it, and its pool page goes back) are the device's; the others are
 * the CPU's again. *cpages: the pages of the range on the device now. The
 * result as migrate_to_device's.
 */
static int finalize(struct coherent_migration *m, uint64_t *cpages)
{
	struct zmm *mm = m->mm;
	const uint64_t on_dev_bits = E_COHERENT | ((uint64_t)m->dev << E_DEV_SHIFT);
	uint64_t migrated = 0, on_dev = 0;

	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < m->npages; i++) {
		const uint64_t vpn = pg_vpn(m->addr) + i, e = ptable_get(&mm->pt, vpn);

		if (m->pages[i] && !(e & E_BUSY)) {
			refpool_put(m->pool, m->pages[i]);
		} else if (m->pages[i]) {
			ptable_set(&mm->pt, vpn, coherent_entry(m, i));
			migrated++;
		} else if (m->sel[i] && (e & E_BUSY)) {
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
		}
		m->pages[i] = NULL;
		if ((ptable_get(&mm->pt, vpn) & (E_ON_DEVICE | E_DEV_MASK)) == on_dev_bits)
			on_dev++;
	}
	pthread_mutex_unlock(&mm->lock);
	atomic_fetch_add_explicit(&mm->cnt[m->dev].pages_to_device, migrated, memory_order_relaxed);
	devmodel_note(m->dev, DEVMODEL_TO_DEVICE, migrated);
	atomic_fetch_add_explicit(&mm->ds->dev[m->dev].totals.pages_to_device, migrated,
				  memory_order_relaxed);
	zmm_add_device_pages(mm, m->dev, migrated);
	if (tracing())
		trace_span(TRACE_TO_DEVICE, mm->pid, (int)m->dev, m->addr, migrated, migrated, m->t0,
			   lathist_now_ns());
	/* A CPU fault that found a page busy waits for this. */
	if (m->selected)
		uffd_dev_wake(mm, m->addr, m->end);
	*cpages = on_dev;
	if (on_dev == m->npages)
		return 0;
	return m->out_of_memory && !migrated ? -ENOMEM : -ENOENT;
}

/* Abort: the pool pages go back and the pages are the CPU's again. */
static void abort_migration(struct coherent_migration *m)
{
	struct zmm *mm = m->mm;

	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < m->npages; i++) {
		const uint64_t vpn = pg_vpn(m->addr) + i, e = ptable_get(&mm->pt, vpn);

		if (m->pages[i])
			refpool_put(m->pool, m->pages[i]);
		if (m->sel[i] && (e & E_BUSY))
			ptable_set(&mm->pt, vpn, e & ~E_BUSY);
	}
	pthread_mutex_unlock(&mm->lock);
	uffd_dev_wake(mm, m->addr, m->end);
}

int migrate_to_coherent(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
			const struct migrate_client *client, void *ctx, uint64_t *cpages)
{
	struct coherent_migration m = {
		.mm = mm, .dev = dev, .pool = mm->ds->dev[dev].pool,
		.addr = addr, .npages = npages, .end = addr + npages * PG_SIZE,
		.t0 = tracing() ? lathist_now_ns() : 0,
	};
	int ret;

	ret = setup(&m, client, ctx);
	if (ret)
		goto out_free;
	select_pages(&m);
	if (m.selected) {
		ret = make_present(&m);
		if (!ret)
			ret = alloc_pages(&m);
		if (ret) {
			abort_migration(&m);
			goto out_free;
		}
		place_pages(&m);
	}
	ret = finalize(&m, cpages);
out_free:
	free(m.pages);
	free(m.sel);
	free(m.leave);
	vmas_free(&m.vmas);
	return ret;
}

/* ---- before a fork ---- */

struct wp_runs {
	uint64_t *run;		/* (first vpn, pages) pairs */
	size_t n, cap;
	uint64_t pages;
	int err;
};

static bool collect_coherent(uint64_t vpn, uint64_t *e, void *arg)
{
	struct wp_runs *r = arg;

	if (!(*e & E_COHERENT) || (*e & E_BUSY))
		return true;
	r->pages++;
	if (r->n && r->run[r->n - 2] + r->run[r->n - 1] == vpn) {
		r->run[r->n - 1]++;
		return true;
	}
	if (r->n + 2 > r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		uint64_t *run = realloc(r->run, cap * sizeof(*run));

		if (!run) {
			r->err = -ENOMEM;
			return false;
		}
		r->run = run;
		r->cap = cap;
	}
	r->run[r->n++] = vpn;
	r->run[r->n++] = 1;
	return true;
}

int migrate_coherent_prepare_fork(struct zmm *mm, uint64_t *npages)
{
	struct wp_runs r = { 0 };
	int ret = 0;

	pthread_mutex_lock(&mm->lock);
	ptable_walk(&mm->pt, 0, UINT64_MAX >> PG_SHIFT, collect_coherent, &r);
	pthread_mutex_unlock(&mm->lock);
	/* A write after this faults to us: before the fork, the page is
	 * still the process's alone and only loses the protection; after
	 * it, the writer's hold goes (uffd_dev_fault). */
	for (size_t i = 0; i < r.n && !ret; i += 2)
		ret = uffd_dev_write_protect(mm, r.run[i] << PG_SHIFT,
					     (r.run[i] + r.run[i + 1]) << PG_SHIFT, true);
	free(r.run);
	*npages = r.pages;
	return r.err ?: ret;
}
