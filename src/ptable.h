/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PTABLE_H
#define ZDEV_PTABLE_H

/*
 * A sparse table of 64-bit entries keyed by virtual page number: a radix tree
 * of 512-way nodes, the shape of a page table. An entry of 0 is empty. No
 * locking: the owner serialises access.
 */

#include <stdbool.h>
#include <stdint.h>

struct ptable {
	void *root;
};

void ptable_init(struct ptable *t);
void ptable_destroy(struct ptable *t);

/* The entry of vpn, 0 when empty. */
uint64_t ptable_get(const struct ptable *t, uint64_t vpn);

/* 0 or -ENOMEM (setting 0 never fails). */
int ptable_set(struct ptable *t, uint64_t vpn, uint64_t entry);

/* Calls fn for every non-empty entry in [start, end) in order; fn may change
 * the entry through the pointer (0 erases it) and returns false to stop. */
typedef bool (*ptable_fn)(uint64_t vpn, uint64_t *entry, void *arg);
void ptable_walk(struct ptable *t, uint64_t start, uint64_t end, ptable_fn fn, void *arg);

#endif
