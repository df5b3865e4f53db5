/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <sys/mman.h>

#include "vmres.h"

int vmres_reserve(size_t len, void **out)
{
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int vmres_commit_anon(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

int vmres_give_back(void *addr, size_t len)
{
	/* A fresh PROT_NONE mapping drops the memory and keeps the hole reserved. */
	void *p = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		       -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

int vmres_unreserve(void *addr, size_t len)
{
	return munmap(addr, len) ? -errno : 0;
}
