/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_SEGV_H
#define ZDEV_LIB_SEGV_H

/* libzdev's SIGSEGV handler, which offers faults to the claimers the modules
 * above it register; the entry points the preload shim uses are in
 * zdevpriv.h. */

#include <stdbool.h>
#include <stdint.h>

/*
 * A claimer looks at a fault the kernel reported at addr: true if the fault
 * was its own and it has dealt with it, so that the access is retried; false
 * leaves it to the next claimer and then to the handler we chain to. Called
 * from the SIGSEGV handler, on whichever thread faulted: async-signal-safe.
 */
typedef bool (*segv_claimer)(uintptr_t addr);

/* Adds a claimer, asked after those added before it (adding one twice keeps
 * its first place). 0, or -ENOSPC when every slot is taken. Not from a
 * signal handler. */
int segv_add_claimer(segv_claimer fn);

/* Installs libzdev's SIGSEGV handler once, chaining to the one before it.
 * 0, or the -errno of the sigaction that failed (every later call returns
 * it too). */
int segv_install(void);

#endif
