/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_XMAP_H
#define ZDEV_LIB_XMAP_H

/* The client's exclusive-page map (xmap_layout.h) and what acts on it: the
 * daemon's requests, the SIGSEGV handler, device atomics and fork. */

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Where the map's directory is, for zdevd to read it; never fails. */
uint64_t xmap_dir_addr(void);

/* Around code that holds a page REVOKING or pinned outside the handler. */
void xmap_signals_block(sigset_t *old);
void xmap_signals_restore(const sigset_t *old);

/* Makes sure the map has leaves for the range: 0; -EOPNOTSUPP beyond the
 * address bits the map covers; -ENOMEM past the leaves it can index, or the
 * -errno of a leaf's mmap. Not from a signal handler. */
int xmap_prepare(uintptr_t addr, size_t npages);

/* on: the process's uffd serves user-mode faults only (UFFD_USER_MODE_ONLY),
 * so a grant populates its pages by touching them, not with
 * MADV_POPULATE_WRITE, whose kernel-mode faults would fail. */
void xmap_populate_by_touch(bool on);

/*
 * Does what zdevd's XMAP asks and fills in the answer: status 0, or -EINVAL
 * for a range that is not page-aligned, wraps or has no leaves, or an
 * unknown op; else the -errno of the populate (-EFAULT where it met no
 * memory) or of the mprotect. For GRANT, len is what was granted from the
 * start, also on failure. Caller holds the connection's lock (as during any
 * request).
 */
void xmap_serve(struct zmsg_xmap *m);

/* A device atomic on page: pins it if it is dev's already (true), so no CPU
 * revocation can start; false when it is not dev's (or has no leaf) or is
 * pinned already. xmap_unpin ends the pin, whoever granted it. Both with the
 * connection's lock held, around the ATOMIC_ADD request. */
bool xmap_pin(uintptr_t page, unsigned int dev);
void xmap_unpin(uintptr_t page);

/* From the SIGSEGV handler: true when the fault was on an exclusive page
 * (now revoked, by us or a racing thread) and the access may be retried.
 * Async-signal-safe. */
bool xmap_fault(uintptr_t addr);

/* fork (pthread_atfork prepare): every exclusive page goes back to the CPU,
 * as the kernel restores the parent's entries when it copies them.
 * Async-signal-safe. */
void xmap_revoke_all(void);
/* In the fork child: ends what threads that did not come along had begun.
 * Async-signal-safe. */
void xmap_atfork_child(void);

#endif
