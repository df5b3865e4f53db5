/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_RANGES_H
#define ZDEV_PRELOAD_RANGES_H

/*
 * The program's managed memory: its private anonymous mappings of at least
 * ZDEV_MIN_BYTES, as the interposed calls saw them made and as a scan of
 * /proc/self/maps finds them (glibc's malloc maps its arenas and grows the
 * brk heap through calls no interposition sees). Excluded ranges are never
 * managed: stacks, alternate signal stacks, libzdev's own memory.
 * Fixed tables, a spinlock, no allocation: safe in any thread.
 */

#include <stdbool.h>
#include <stdint.h>

void ranges_add(uint64_t start, uint64_t end, uint64_t min_bytes);
/* [start, end) is no longer mapped: cut from both tables. */
void ranges_remove(uint64_t start, uint64_t end);
/* mremap moved [from, from + old_len) to [to, to + new_len). */
void ranges_move(uint64_t from, uint64_t old_len, uint64_t to, uint64_t new_len,
		 uint64_t min_bytes);
void ranges_exclude(uint64_t start, uint64_t end);
/* Whether [start, end) overlaps an excluded range. */
bool ranges_excluded(uint64_t start, uint64_t end);

/* pthread_atfork handlers: the lock is held across fork. */
void ranges_fork_prepare(void);
void ranges_fork_parent(void);
void ranges_fork_child(void);

/* Rebuilds the managed table from /proc/self/maps: 0 or -errno (the table
 * is left as it was). */
int ranges_scan(uint64_t min_bytes);

/* The managed range holding byte offset pick % (managed bytes) of all of
 * them, so a bigger range is picked more often: false when none is. */
bool ranges_pick(uint64_t pick, uint64_t *start, uint64_t *end);
/* Managed bytes now, and the most there ever were. */
uint64_t ranges_bytes(void);
uint64_t ranges_peak_bytes(void);

#endif
