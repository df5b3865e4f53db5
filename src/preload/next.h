/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_NEXT_H
#define ZDEV_PRELOAD_NEXT_H

/*
 * The definition of an interposed function that the shim's own hides: looked
 * up at the first call, since libraries loaded before the shim may call in
 * before its constructors ran.
 */

#include <dlfcn.h>
#include <stdatomic.h>

static inline void *next_definition(void **slot, const char *name)
{
	void *f = atomic_load_explicit((void *_Atomic *)slot, memory_order_relaxed);

	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		atomic_store_explicit((void *_Atomic *)slot, f, memory_order_relaxed);
	}
	return f;
}

/* NEXT(fn) is the next fn, through a slot named next_fn of fn's type. */
#define NEXT(fn) ((__typeof__(next_##fn))next_definition((void **)&next_##fn, #fn))

#endif
