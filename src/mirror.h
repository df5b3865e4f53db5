/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_MIRROR_H
#define ZDEV_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

struct zmm;

/*
 * Device accesses through device dev's mirror of mm (the kernel's
 * hmm_range_fault + test_hmm READ/WRITE/SNAPSHOT) of [addr, addr + npages
 * pages); buf is in the client. See docs/errors.md.
 */

/* A read into buf or a write from it: 0 with *cpages = npages and *faults =
 * 1 if the mirror lacked a page (0 if it had them all); -EFAULT for a hole
 * or an unreadable page, -EPERM for a write to a read-only one, -EDQUOT past
 * the client's registration limit, -ENOMEM, or the -errno of a copy. */
int mirror_access(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages, uint64_t buf,
		  bool write, uint64_t *cpages, uint64_t *faults);
/* One ZDEV_PROT_* byte a page into buf: 0 with *cpages = npages, -ENOMEM,
 * or the -errno of reading the maps or writing buf. */
int mirror_snapshot(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		    uint64_t buf, uint64_t *cpages);

#endif
