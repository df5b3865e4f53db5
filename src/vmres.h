/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_VMRES_H
#define ZDEV_VMRES_H

#include <stddef.h>

/*
 * Address-space reservations: a range is reserved PROT_NONE once, and parts of
 * it are committed and given back without the range ever becoming free for
 * other mappings, so an address computed from an index stays valid (and a
 * stale access to a given-back part faults instead of reading reused memory).
 */
/* Each returns 0 or the -errno of its mmap, mprotect or munmap. */
int vmres_reserve(size_t len, void **out);
/* Private anonymous read-write memory over [addr, addr+len) of a reservation. */
int vmres_commit_anon(void *addr, size_t len);
/* [addr, addr+len) is reserved (PROT_NONE, no memory) again. */
int vmres_give_back(void *addr, size_t len);
int vmres_unreserve(void *addr, size_t len);

#endif
