/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PROOF_H
#define ZDEV_PROOF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A random page-aligned address, unlikely to be mapped in any process, for
 * the client to map its proof page at. */
uint64_t proof_pick_addr(void);

/*
 * Proves that uffd serves the mm of pid: registers the page at addr through
 * the uffd, resolves it with a random token and reads the token back through
 * pid's own memory. A uffd of another process finds no mapping at the random
 * address (nothing is written anywhere) or shows a different page. 0 when
 * proven, -EPERM when not, other -errno on failure.
 */
int proof_check(int uffd, pid_t pid, uint64_t addr);

/*
 * Whether the address space uffd was made for is gone while its process may
 * live on: the process exec'd (same pid, same start time, a new mm). Asks
 * the kernel to fill a page at a random address where nothing is mapped:
 * an mm that lives answers ENOENT and nothing changes; one that is gone,
 * ESRCH.
 */
bool proof_mm_gone(int uffd);

#endif
