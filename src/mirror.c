/* SPDX-License-Identifier: MIT */
/*
 * Device reads, writes and snapshots through a device's mirror of a client.
 * Protections are checked against the client's mappings as they are now (the
 * mirror cannot see mprotect); a page the mirror lacks costs one fault round,
 * as hmm_range_fault() does; another device's private page is brought back to
 * system memory first; this device's private pages are accessed in device
 * memory directly; a coherent device's pages, any device's, are accessed in
 * place, in the client's memory, where their data is.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "client_mem.h"
#include "mirror.h"
#include "page.h"
#include "trace.h"
#include "uffd_compat.h"
#include "uffd_dev.h"
#include "vmas.h"
#include "zdev.h"
#include "zmm.h"

/* The kernel faults a device access in with the process's protections as
 * they are now: -EFAULT for a hole or an unreadable page, -EPERM for a
 * write to a read-only one. */
static int check_access(const struct vma_list *vmas, uint64_t addr, uint64_t npages, bool write)
{
	for (uint64_t i = 0; i < npages; i++) {
		const struct vma *v = vmas_find(vmas, addr + i * PG_SIZE);

		if (!v || !(v->flags & VMA_READ))
			return -EFAULT;
	}
	if (write)
		for (uint64_t i = 0; i < npages; i++)
			if (!(vmas_find(vmas, addr + i * PG_SIZE)->flags & VMA_WRITE))
				return -EPERM;
	return 0;
}

/* One device read or write of [addr, addr + npages pages); the data passes
 * through bounce, page i at i * PG_SIZE. */
struct access {
	struct zmm *mm;
	unsigned int dev;
	uint64_t addr, npages;
	bool write;
	uint64_t need;		/* the mirror bits the access needs */
	uint8_t *bounce;
	uint8_t *local;		/* page i is in this device's memory: accessed there */
	uint64_t missing;	/* pages the mirror lacked */
};

/* The pages in this device's memory, accessed there, under mm->lock: 0, or
 * the -errno of bringing another device's page back. */
static int access_device_pages(struct access *a)
{
	struct zmm *mm = a->mm;
	struct refpool *pool = mm->ds->dev[a->dev].pool;
	int ret = 0;

	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < a->npages && !ret; i++) {
		const uint64_t vpn = pg_vpn(a->addr) + i;
		uint64_t e = ptable_get(&mm->pt, vpn);

		if ((e & a->need) != a->need)
			a->missing++;
		if ((e & E_COHERENT) && !(e & E_BUSY) && a->write && zmm_entry_shared(mm, e)) {
			/* A coherent page a fork shares: the write's
			 * copy-on-write gives this process a system page of
			 * its own (the copy below writes it), and the device
			 * lets go of this process's hold. */
			zmm_uncharge_coherent_locked(mm, e, false);
			ptable_set(&mm->pt, vpn, 0);
			e = 0;
		}
		if ((e & E_DEVPRIV) && !(e & E_BUSY) &&
		    (e_dev(e) != a->dev || (a->write && zmm_entry_shared(mm, e)))) {
			/* Another device's page comes back to RAM first; so
			 * does, for a write, a page a fork shares, which gives
			 * this process a copy of its own, as the write fault's
			 * copy-on-write does. */
			uint64_t pages;

			ret = uffd_dev_bring_back_n_locked(mm, vpn, e, false, &pages);
			if (!ret && tracing())
				trace_mark(TRACE_ACCESS_BACK, mm->pid, (int)e_dev(e), vpn << PG_SHIFT,
					   pages, 1);
			e = 0;
		}
		if (!ret && (e & E_DEVPRIV) && !(e & E_BUSY)) {
			void *mem = refpool_page_mem(pool, refpool_pfn_to_page(pool, e_pfn(e)));

			a->local[i] = 1;
			if (a->write)
				memcpy(mem, a->bounce + i * PG_SIZE, PG_SIZE);
			else
				memcpy(a->bounce + i * PG_SIZE, mem, PG_SIZE);
		}
	}
	pthread_mutex_unlock(&mm->lock);
	return ret;
}

static bool in_system_memory(const void *ctx, uint64_t first, uint64_t i)
{
	(void)first;
	return !((const uint8_t *)ctx)[i];
}

/* The other pages, in the client's memory, a run at a time: 0 or -errno. */
static int access_system_pages(struct access *a)
{
	int ret = 0;

	/* Never-touched pages of registered windows would fault into our own
	 * uffd when the copy below touches them. */
	uffd_dev_fill_holes(a->mm, a->addr, a->npages);
	for (uint64_t s = 0, e = 0;
	     !ret && run_next_by(a->npages, &s, &e, in_system_memory, a->local);)
		ret = client_mem_access(a->mm, -1, a->write, a->bounce + s * PG_SIZE,
					a->addr + s * PG_SIZE, (e - s) * PG_SIZE);
	return ret;
}

/* The mirror maps every page of the access now. */
static void mirror_map(struct access *a)
{
	struct zmm *mm = a->mm;

	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < a->npages; i++) {
		const uint64_t vpn = pg_vpn(a->addr) + i;

		ptable_set(&mm->pt, vpn, ptable_get(&mm->pt, vpn) | a->need);
	}
	pthread_mutex_unlock(&mm->lock);
}

int mirror_access(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages, uint64_t buf,
		  bool write, uint64_t *cpages, uint64_t *faults)
{
	const uint64_t end = addr + npages * PG_SIZE;
	struct access a = {
		.mm = mm, .dev = dev, .addr = addr, .npages = npages, .write = write,
		.need = E_MIRROR(dev) | (write ? E_MIRROR_W(dev) : 0),
	};
	struct vma_list vmas;
	int ret;

	ret = vmas_read(mm->pid, win_down(addr), win_up(end), &vmas);
	if (ret)
		return ret;
	ret = check_access(&vmas, addr, npages, write);
	if (ret)
		goto out_free_vmas;
	/* Registered memory tells us when it is unmapped or zapped, which is
	 * what keeps the mirror entries made below from going stale. */
	ret = uffd_dev_register(mm, &vmas, addr, end);
	if (ret)
		goto out_free_vmas;
	a.bounce = malloc(npages * PG_SIZE);
	a.local = calloc(npages, 1);
	if (!a.bounce || !a.local) {
		ret = -ENOMEM;
		goto out_free;
	}
	/* A write takes the data from the client first: reading the client's
	 * buffer may fault, so never under mm->lock. */
	if (write)
		ret = client_mem_read(mm, a.bounce, buf, npages * PG_SIZE);
	if (!ret)
		ret = access_device_pages(&a);
	if (!ret)
		ret = access_system_pages(&a);
	if (!ret && !write)
		ret = client_mem_write(mm, a.bounce, buf, npages * PG_SIZE);
	if (ret)
		goto out_free;
	mirror_map(&a);
	*cpages = npages;
	*faults = a.missing ? 1 : 0;
	atomic_fetch_add_explicit(&mm->cnt[dev].device_faults, *faults, memory_order_relaxed);
	atomic_fetch_add_explicit(&mm->ds->dev[dev].totals.device_faults, *faults,
				  memory_order_relaxed);
out_free:
	free(a.bounce);
	free(a.local);
out_free_vmas:
	vmas_free(&vmas);
	return ret;
}

/* Whether the CPU maps a present page of a writable mapping writable: the
 * kernel maps a page read-only until a write would need a copy of it. */
static bool mapped_writable(const struct vma *v, uint64_t pm)
{
	/* A private mapping's file page (never written, so never copied). */
	if (!(v->flags & VMA_SHARED) && (pm & PM_FILE))
		return false;
	/* An anonymous page shared with another process since a fork. */
	return pm & PM_EXCLUSIVE;
}

int mirror_snapshot(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		    uint64_t buf, uint64_t *cpages)
{
	const uint64_t zero_pfn = zero_page_pfn();
	struct vma_list vmas;
	uint64_t *pm = NULL;
	uint8_t *prot = NULL, *pmd = NULL, *zero = NULL;
	int ret;

	ret = vmas_read(mm->pid, addr, addr + npages * PG_SIZE, &vmas);
	if (ret)
		return ret;
	pm = calloc(npages, sizeof(*pm));
	prot = malloc(npages);
	pmd = calloc(npages, 1);
	zero = calloc(npages, 1);
	if (!pm || !prot || !pmd || !zero) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = pagemap_read(mm->pagemap_fd, addr, npages, pm);
	if (ret)
		goto out_free;
	/* Without PAGEMAP_SCAN the CPU's huge mappings show as small ones. */
	pagemap_huge(mm->pagemap_fd, addr, npages, pmd);
	/* Without CAP_SYS_ADMIN pagemap hides every frame number, the zero
	 * page's too: PAGEMAP_SCAN still tells it. */
	if (!zero_pfn)
		pagemap_zero(mm->pagemap_fd, addr, npages, zero);
	pthread_mutex_lock(&mm->lock);
	for (uint64_t i = 0; i < npages; i++) {
		const struct vma *v = vmas_find(&vmas, addr + i * PG_SIZE);
		uint64_t e = ptable_get(&mm->pt, pg_vpn(addr) + i);
		const uint8_t rw = v && (v->flags & VMA_WRITE) ? ZDEV_PROT_WRITE : ZDEV_PROT_READ;

		if (!v || !(v->flags & VMA_READ))
			prot[i] = ZDEV_PROT_ERROR;
		else if ((e & E_COHERENT) && (pm[i] & PM_PRESENT))
			/* Mapped as any page, and any device's coherent page
			 * is visible: its own, or another's as remote. Since a
			 * fork it is read-only (write-protected) until written,
			 * as the kernel's copy-on-write PTE is. */
			prot[i] = (e_dev(e) == dev ? ZDEV_PROT_DEV_COHERENT_LOCAL
						   : ZDEV_PROT_DEV_COHERENT_REMOTE) |
				  (rw == ZDEV_PROT_WRITE &&
						   (pm[i] & (PM_EXCLUSIVE | PM_UFFD_WP)) == PM_EXCLUSIVE
					   ? ZDEV_PROT_WRITE
					   : ZDEV_PROT_READ);
		else if (e & E_DEVPRIV)
			/* Another device's private page is invisible, not remote. */
			prot[i] = e_dev(e) != dev ? ZDEV_PROT_NONE
						  : ZDEV_PROT_DEV_PRIVATE_LOCAL | rw |
						    ((e & E_HUGE) ? ZDEV_PROT_PMD : 0);
		else if (!(pm[i] & PM_PRESENT))
			prot[i] = ZDEV_PROT_NONE;
		/* The huge zero page is no zero pfn to the kernel: READ|PMD. */
		else if ((zero_pfn && (pm[i] & PM_PFN_MASK) == zero_pfn) || (zero[i] && !pmd[i]))
			prot[i] = ZDEV_PROT_ZERO | ZDEV_PROT_READ;
		else
			prot[i] = (rw == ZDEV_PROT_WRITE && mapped_writable(v, pm[i])
					   ? ZDEV_PROT_WRITE : ZDEV_PROT_READ) |
				  (pmd[i] ? ZDEV_PROT_PMD : 0);
	}
	pthread_mutex_unlock(&mm->lock);
	ret = client_mem_write(mm, prot, buf, npages);
	if (!ret)
		*cpages = npages;
out_free:
	free(pm);
	free(prot);
	free(pmd);
	free(zero);
	vmas_free(&vmas);
	return ret;
}
