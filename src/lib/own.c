/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "lib/own.h"
#include "page.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA		0x53564d41
#define PR_SET_VMA_ANON_NAME	0
#endif

void *own_alloc(size_t len)
{
	const size_t span = pg_up(len);
	void *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Best effort: kernels without CONFIG_ANON_VMA_NAME refuse it. */
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, span, (unsigned long)"zdev-lib");
	return p;
}

void own_free(void *p, size_t len)
{
	if (p)
		munmap(p, pg_up(len));
}

void *own_realloc(void *p, size_t len, size_t new_len)
{
	void *q = own_alloc(new_len);

	if (!q)
		return NULL;
	if (p)
		memcpy(q, p, len < new_len ? len : new_len);
	own_free(p, len);
	return q;
}
