/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_MIRROR_H
#define ZDEV_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

struct zmm;

/* Device accesses through device dev's mirror of mm (the kernel's
 * hmm_range_fault + test_hmm READ/WRITE/SNAPSHOT). buf is in the client. */
int mirror_access(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages, uint64_t buf,
		  bool write, uint64_t *cpages, uint64_t *faults);
int mirror_snapshot(struct zmm *mm, unsigned int dev, uint64_t addr, uint64_t npages,
		    uint64_t buf, uint64_t *cpages);

#endif
