/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <unistd.h>

#include "page.h"
#include "uffd_compat.h"
#include "vmas.h"

static bool path_is_anon(const char *path)
{
	/* Private anonymous memory shows no path, or one of the kernel's names. */
	return !*path || !strcmp(path, "[heap]") || !strcmp(path, "[stack]") ||
	       !strncmp(path, "[anon:", 6) || !strncmp(path, "[stack:", 7);
}

int vmas_read(pid_t pid, uint64_t start, uint64_t end, struct vma_list *out)
{
	char name[64], line[512];
	size_t cap = 0;
	FILE *f;
	int ret = 0;

	out->v = NULL;
	out->n = 0;
	snprintf(name, sizeof(name), "/proc/%d/maps", (int)pid);
	f = fopen(name, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char perms[5] = "", path[256] = "";
		uint64_t s, e, off;
		struct vma *v;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %4s %" SCNx64 " %*s %*s %255[^\n]", &s, &e,
			   perms, &off, path) < 4)
			continue;
		if (e <= start)
			continue;
		if (s >= end)
			break;
		if (out->n == cap) {
			cap = cap ? 2 * cap : 16;
			v = realloc(out->v, cap * sizeof(*v));
			if (!v) {
				ret = -ENOMEM;
				break;
			}
			out->v = v;
		}
		v = &out->v[out->n++];
		v->start = s;
		v->end = e;
		v->flags = (perms[0] == 'r' ? VMA_READ : 0) | (perms[1] == 'w' ? VMA_WRITE : 0) |
			   (perms[2] == 'x' ? VMA_EXEC : 0) | (perms[3] == 's' ? VMA_SHARED : 0);
		/* the path field starts after spaces */
		const char *p = path;

		while (*p == ' ')
			p++;
		if (perms[3] == 'p' && path_is_anon(p))
			v->flags |= VMA_ANON;
		else if (*p == '/')
			v->flags |= VMA_FILE;
	}
	fclose(f);
	if (ret)
		vmas_free(out);
	return ret;
}

void vmas_free(struct vma_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

const struct vma *vmas_find(const struct vma_list *l, uint64_t addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (addr >= l->v[i].start && addr < l->v[i].end)
			return &l->v[i];
	return NULL;
}

int pagemap_read(int pagemap_fd, uint64_t addr, size_t npages, uint64_t *out)
{
	size_t done = 0;

	while (done < npages) {
		ssize_t n = pread(pagemap_fd, out + done, (npages - done) * 8,
				  (off_t)(pg_vpn(addr) + done) * 8);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n / 8;
	}
	return 0;
}

static uint64_t probe_zero_page_pfn(void)
{
	volatile char *p;
	uint64_t word[2] = { 0, 0 };
	uint64_t pfn = 0;
	int fd;

	p = mmap(NULL, 2 * PG_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	/* A read fault maps the shared zero page, unless the kernel keeps
	 * none (a guest booted with pvm_no_zero_page=1) and gives each page a
	 * frame of its own, which goes back to the allocator at the munmap
	 * below and may then be any process's page. Only the same frame
	 * under both pages is the zero page. */
	(void)p[0];
	(void)p[PG_SIZE];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pagemap_read(fd, (uint64_t)(uintptr_t)p, 2, word) == 0 &&
		    (word[0] & word[1] & PM_PRESENT) &&
		    (word[0] & PM_PFN_MASK) == (word[1] & PM_PFN_MASK))
			pfn = word[0] & PM_PFN_MASK;
		close(fd);
	}
	munmap((void *)p, 2 * PG_SIZE);
	return pfn;
}

uint64_t zero_page_pfn(void)
{
	/* Workers of zdevd snapshot at once: the first ones may each probe,
	 * and each finds the same frame, so a relaxed store of the finished
	 * answer is all the sharing needs. */
	static _Atomic uint64_t cached = UINT64_MAX;
	uint64_t pfn = atomic_load_explicit(&cached, memory_order_relaxed);

	if (pfn != UINT64_MAX)
		return pfn;
	pfn = probe_zero_page_pfn();
	atomic_store_explicit(&cached, pfn, memory_order_relaxed);
	return pfn;
}

/* Marks out[i] for each page of the range in every category of mask. */
static int pagemap_scan_mark(int pagemap_fd, uint64_t addr, size_t npages, uint64_t mask,
			     uint8_t *out)
{
	const uint64_t end = addr + npages * PG_SIZE;
	struct page_region regions[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = addr,
		.end = end,
		.vec = (uint64_t)(uintptr_t)regions,
		.vec_len = 64,
		.category_mask = mask,
		.return_mask = mask,
	};

	while (arg.start < end) {
		long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return errno == ENOTTY || errno == EINVAL ? -EOPNOTSUPP : -errno;
		for (long r = 0; r < n; r++)
			for (uint64_t a = regions[r].start; a < regions[r].end; a += PG_SIZE)
				out[pg_vpn(a - addr)] = 1;
		/* The scan stops where its vector filled up, or at the end. */
		if (arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	return 0;
}

int pagemap_huge(int pagemap_fd, uint64_t addr, size_t npages, uint8_t *out)
{
	return pagemap_scan_mark(pagemap_fd, addr, npages, PAGE_IS_HUGE, out);
}

int pagemap_zero(int pagemap_fd, uint64_t addr, size_t npages, uint8_t *out)
{
	return pagemap_scan_mark(pagemap_fd, addr, npages, PAGE_IS_PFNZERO, out);
}

bool vma_thp_eligible(pid_t pid, uint64_t addr)
{
	char name[64], line[512];
	bool inside = false, eligible = false;
	FILE *f;

	snprintf(name, sizeof(name), "/proc/%d/smaps", (int)pid);
	f = fopen(name, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		uint64_t s, e;
		int v;

		/* A mapping's first line is its range; its fields follow. */
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &s, &e) == 2 && strchr(line, '-') <
		    strchr(line, ' ')) {
			if (inside)
				break;
			inside = addr >= s && addr < e;
			continue;
		}
		if (inside && sscanf(line, "THPeligible: %d", &v) == 1) {
			eligible = v == 1;
			break;
		}
	}
	fclose(f);
	return eligible;
}

int vmas_registered_bytes(pid_t pid, uint64_t skip_start, uint64_t skip_end, uint64_t *out)
{
	char name[64], line[512];
	uint64_t s = 0, e = 0, total = 0;
	FILE *f;

	snprintf(name, sizeof(name), "/proc/%d/smaps", (int)pid);
	f = fopen(name, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		uint64_t ns, ne;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " ", &ns, &ne) == 2) {
			s = ns;
			e = ne;
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) || !strstr(line, " um"))
			continue;
		/* The part of [s, e) outside the skipped range. */
		total += e - s;
		if (skip_start < e && skip_end > s)
			total -= (skip_end < e ? skip_end : e) - (skip_start > s ? skip_start : s);
	}
	fclose(f);
	*out = total;
	return 0;
}
