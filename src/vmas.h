/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_VMAS_H
#define ZDEV_VMAS_H

/* What a client's address space looks like now, from /proc/PID/maps and
 * /proc/PID/pagemap: zdevd checks protections at every access, as
 * hmm_range_fault() does, instead of trusting an earlier record. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VMA_READ	(1u << 0)
#define VMA_WRITE	(1u << 1)
#define VMA_SHARED	(1u << 2)
#define VMA_ANON	(1u << 3)	/* no file behind it: private anonymous memory */
#define VMA_EXEC	(1u << 4)
#define VMA_FILE	(1u << 5)	/* a mapping of a file (not a special one) */

struct vma {
	uint64_t start, end;
	unsigned int flags;
};

struct vma_list {
	struct vma *v;
	size_t n;
};

/* The mappings of pid that overlap [start, end), in order. */
int vmas_read(pid_t pid, uint64_t start, uint64_t end, struct vma_list *out);
void vmas_free(struct vma_list *l);
/* The mapping that holds addr, or NULL. */
const struct vma *vmas_find(const struct vma_list *l, uint64_t addr);

/* pagemap bits */
#define PM_PRESENT	(1ull << 63)
#define PM_SWAP		(1ull << 62)
#define PM_FILE		(1ull << 61)	/* a file page (or shared anonymous) */
#define PM_UFFD_WP	(1ull << 57)
#define PM_EXCLUSIVE	(1ull << 56)
#define PM_PFN_MASK	((1ull << 55) - 1)

/* One pagemap word per page of [addr, addr + npages pages). */
int pagemap_read(int pagemap_fd, uint64_t addr, size_t npages, uint64_t *out);

/* Marks out[i] for each page of [addr, addr + npages pages) that one PMD maps
 * (a THP, the huge zero page, a hugetlb page), with PAGEMAP_SCAN (6.7);
 * -EOPNOTSUPP on kernels without it, out untouched. */
int pagemap_huge(int pagemap_fd, uint64_t addr, size_t npages, uint8_t *out);

/* Marks out[i] for each page of the range that the shared zero page (or the
 * huge zero page) maps, with PAGEMAP_SCAN (6.7), which tells it without the
 * privilege pagemap's frame numbers need; -EOPNOTSUPP without it. */
int pagemap_zero(int pagemap_fd, uint64_t addr, size_t npages, uint8_t *out);

/* Whether the kernel would give the mapping of pid holding addr a THP on a
 * fault there (smaps' THPeligible). */
bool vma_thp_eligible(pid_t pid, uint64_t addr);

/* Bytes of pid's mappings registered with a uffd for missing faults (smaps'
 * VmFlags "um"), leaving out what lies in [skip_start, skip_end). */
int vmas_registered_bytes(pid_t pid, uint64_t skip_start, uint64_t skip_end, uint64_t *out);

/* The pfn of the shared zero page, or 0 when pagemap hides pfns or the
 * kernel maps no zero page. */
uint64_t zero_page_pfn(void);

#endif
