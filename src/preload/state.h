/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_STATE_H
#define ZDEV_PRELOAD_STATE_H

/*
 * What every part of the shim shares: the configuration, the device handle,
 * the address-space lock, and which code and data are the shim's and
 * libzdev's own rather than the program's.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "preload/env.h"

struct zdev;
struct shim {
	struct env env;
	struct zdev *dev;		/* NULL: no zdevd, nothing moves */
	bool ready;			/* set up: the interposed calls may track */
	/*
	 * A migration must not overlap a change of the address space it
	 * covers: zdevd copies the pages, then the client empties them where
	 * they were, so a range unmapped and mapped again (or moved) in
	 * between would lose what was written there. The program's changes
	 * (munmap, mremap, madvise, free and realloc, which may trim or move
	 * mappings through calls no interposition sees) take it shared; the
	 * policy's migrations take it exclusive.
	 */
	pthread_rwlock_t as_lock;
	atomic_bool moving;		/* a policy that moves pages runs */
	uint64_t start_ns;		/* CLOCK_MONOTONIC at start-up */
};

extern struct shim shim;
/* stderr as it was at start-up (-1: none): the program may close its own. */
extern int shim_stderr;

/* Finds libzdev and the shim in the process: their code, and their data,
 * which is excluded from the managed ranges, as is a sanitizer's shadow. */
void state_find_ours(void);
/* Whether the return address ra lies in libzdev or the shim, whose own
 * mappings and signal handling are never the program's. */
bool state_is_ours(const void *ra);

/* Around a change of the address space: begin says whether it took the
 * lock (not while nothing moves), end gets that answer. */
bool state_as_begin(void);
void state_as_end(bool locked);

#endif
