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

/*
 * Each allocation takes at least this much address space (no memory until
 * touched): a small mapping would land in whatever hole the program left in
 * its own memory, where the program (the kernel's hmm-tests among them)
 * expects to find nothing mapped.
 */
#define OWN_MIN_SPAN	(1ul << 20)

static size_t span_of(size_t len)
{
	return len < OWN_MIN_SPAN ? OWN_MIN_SPAN : pg_up(len);
}

void *own_alloc(size_t len)
{
	const size_t span = span_of(len);
	void *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* Best effort: kernels without CONFIG_ANON_VMA_NAME refuse it. */
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, span, (unsigned long)"zdev-lib");
	return p;
}

void own_free(void *p, size_t len)
{
	if (p)
		munmap(p, span_of(len));
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
