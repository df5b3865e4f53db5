/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "ptable.h"

/* Five levels of 9 bits cover 45-bit page numbers: 57-bit (LA57) addresses. */
#define LEVELS 5
#define BITS 9
#define FANOUT (1u << BITS)

struct pt_node {
	void *slot[FANOUT];	/* the last level holds uint64_t entries instead */
};

static unsigned int index_at(uint64_t vpn, int level)
{
	return (unsigned int)(vpn >> (BITS * (LEVELS - 1 - level))) & (FANOUT - 1);
}

void ptable_init(struct ptable *t)
{
	t->root = NULL;
}

static void free_node(void *node, int level)
{
	struct pt_node *n = node;

	if (!n)
		return;
	if (level < LEVELS - 1)
		for (unsigned int i = 0; i < FANOUT; i++)
			free_node(n->slot[i], level + 1);
	free(n);
}

void ptable_destroy(struct ptable *t)
{
	free_node(t->root, 0);
	t->root = NULL;
}

uint64_t ptable_get(const struct ptable *t, uint64_t vpn)
{
	void *node = t->root;

	if (vpn >> (BITS * LEVELS))
		return 0;
	for (int level = 0; level < LEVELS - 1; level++) {
		if (!node)
			return 0;
		node = ((struct pt_node *)node)->slot[index_at(vpn, level)];
	}
	return node ? ((uint64_t *)node)[index_at(vpn, LEVELS - 1)] : 0;
}

int ptable_set(struct ptable *t, uint64_t vpn, uint64_t entry)
{
	void **slot = &t->root;

	if (vpn >> (BITS * LEVELS))
		return -EINVAL;
	for (int level = 0; level < LEVELS; level++) {
		if (!*slot) {
			if (!entry)
				return 0;
			*slot = calloc(1, sizeof(struct pt_node));
			if (!*slot)
				return -ENOMEM;
		}
		if (level == LEVELS - 1)
			break;
		slot = &((struct pt_node *)*slot)->slot[index_at(vpn, level)];
	}
	((uint64_t *)*slot)[index_at(vpn, LEVELS - 1)] = entry;
	return 0;
}

/* Walks node (covering vpns from base) over [start, end); false: stopped. */
static bool walk_node(void *node, int level, uint64_t base, uint64_t start, uint64_t end,
		      ptable_fn fn, void *arg)
{
	const uint64_t span = 1ull << (BITS * (LEVELS - 1 - level));

	for (unsigned int i = 0; i < FANOUT; i++) {
		uint64_t lo = base + i * span, hi = lo + span;

		if (hi <= start)
			continue;
		if (lo >= end)
			break;
		if (level == LEVELS - 1) {
			uint64_t *e = &((uint64_t *)node)[i];

			if (*e && !fn(lo, e, arg))
				return false;
			continue;
		}
		if (((struct pt_node *)node)->slot[i] &&
		    !walk_node(((struct pt_node *)node)->slot[i], level + 1, lo, start, end, fn, arg))
			return false;
	}
	return true;
}

void ptable_walk(struct ptable *t, uint64_t start, uint64_t end, ptable_fn fn, void *arg)
{
	if (t->root && start < end)
		walk_node(t->root, 0, 0, start, end, fn, arg);
}
