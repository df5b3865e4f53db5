/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "preload/dmirror.h"
#include "preload/fdtab.h"
#include "preload/gup_test.h"

bool gup_test_path(const char *path)
{
	return !strcmp(path, GUP_TEST_PATH);
}

/* The mapping of /proc/self/maps that holds an address. */
struct vma {
	uint64_t start, end;
	bool read, write, special;
};

/* The mapping holding addr into *v: false when none does. */
static bool find_vma(uint64_t addr, struct vma *v)
{
	char buf[4096], *line, *nl;
	size_t have = 0;
	bool found = false;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);

		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
		for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
			char perms[5] = "";
			unsigned long s, e;

			*nl = '\0';
			if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) != 3 || addr < s || addr >= e)
				continue;
			*v = (struct vma){ .start = s, .end = e, .read = perms[0] == 'r',
					   .write = perms[1] == 'w',
					   /* GUP refuses the kernel's special mappings */
					   .special = strstr(line, "[vvar]") || strstr(line, "[vsyscall]") };
			found = true;
			goto out_close;
		}
		have = strlen(line);
		memmove(buf, line, have);
	}
out_close:
	close(fd);
	return found;
}

/*
 * Gets nr pages from addr on as get_user_pages does: each is faulted in as
 * the CPU would (a write fault with FOLL_WRITE, which breaks copy-on-write),
 * which brings a device-private page home. The pages got, or -EFAULT when
 * the first cannot be.
 */
static long get_pages(uint64_t addr, long nr, uint32_t flags)
{
	const bool write = flags & GUP_FOLL_WRITE;
	struct vma v = { 0 };
	long done;

	for (done = 0; done < nr; done++, addr += PG_SIZE) {
		if (addr < v.start || addr >= v.end) {
			if (!find_vma(addr, &v) || v.special)
				break;
		}
		/* FOLL_FORCE's access past the protection (ptrace's) has no
		 * user-space counterpart: such a page is refused. */
		if (write ? !v.write : !v.read)
			break;
		if (write)
			/* A write access that changes nothing: adding 0 atomically
			 * races with no other thread's store. */
			__atomic_fetch_add((volatile char *)(uintptr_t)addr, 0, __ATOMIC_RELAXED);
		else
			(void)*(volatile const char *)(uintptr_t)addr;
	}
	if (done && (flags & GUP_FOLL_LONGTERM))
		dmirror_pin_longterm((void *)(uintptr_t)(addr - (uint64_t)done * PG_SIZE), (size_t)done);
	return done ? done : -EFAULT;
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The kernel's loop: nr_pages_per_call pages a call, stopping at the first
 * call that gets fewer; size becomes what the loop got through. Pages
 * "put back" cost nothing here: no reference was taken. */
static void run(unsigned long req, struct gup_test_cmd *g)
{
	const uint64_t end = g->addr + g->size;
	uint32_t flags = g->gup_flags;
	uint64_t addr, next, start;
	long nr = g->nr_pages_per_call, got = 0;

	if (req == PIN_LONGTERM_BENCHMARK)
		flags |= GUP_FOLL_LONGTERM;
	start = now_usec();
	for (addr = g->addr; addr < end; addr = next) {
		if (nr != (long)g->nr_pages_per_call)
			break;
		next = addr + (uint64_t)nr * PG_SIZE;
		if (next > end) {
			next = end;
			nr = (long)((next - addr) / PG_SIZE);
		}
		nr = nr > 0 ? get_pages(addr, nr, flags) : 0;
		if (nr <= 0)
			break;
		got += nr;
	}
	g->get_delta_usec = now_usec() - start;
	g->size = addr - g->addr;
	if (req == DUMP_USER_PAGES_TEST)
		/* Nothing to dump but the kernel's clean-up of the indices. */
		for (unsigned int i = 0; i < 8; i++)
			if (g->which_pages[i] > (uint64_t)got)
				g->which_pages[i] = 0;
	start = now_usec();
	g->put_delta_usec = now_usec() - start;
}

static long gup_test_ioctl(struct fdtab_file *f, unsigned long req, void *arg)
{
	struct gup_test_cmd g;
	int ret;

	(void)f;
	switch (req) {
	case GUP_FAST_BENCHMARK:
	case PIN_FAST_BENCHMARK:
	case PIN_LONGTERM_BENCHMARK:
	case GUP_BASIC_TEST:
	case PIN_BASIC_TEST:
	case DUMP_USER_PAGES_TEST:
		break;
	default:
		/* The kernel's answer, also for its PIN_LONGTERM_TEST_*
		 * commands, which hold pins across calls: not emulated. */
		return -EINVAL;
	}
	ret = dmirror_copy_in(&g, (uint64_t)(uintptr_t)arg, sizeof(g));
	if (ret)
		return ret;
	run(req, &g);
	return dmirror_copy_out((uint64_t)(uintptr_t)arg, &g, sizeof(g));
}

/* The kernel's file has no mmap. */
static void *gup_test_mmap(struct fdtab_file *f, int fd, void *addr, size_t len, int prot,
			   int flags, off_t off)
{
	(void)f, (void)fd, (void)addr, (void)len, (void)prot, (void)flags, (void)off;
	errno = ENODEV;
	return MAP_FAILED;
}

static void gup_test_release(struct fdtab_file *f)
{
	(void)f;
}

static const struct fdtab_ops gup_test_ops = {
	.ioctl = gup_test_ioctl,
	.mmap = gup_test_mmap,
	.release = gup_test_release,
};

int gup_test_open(int oflags)
{
	return fdtab_open("zdev-gup_test", oflags, &gup_test_ops, NULL);
}
