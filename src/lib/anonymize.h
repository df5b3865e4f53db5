/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_ANONYMIZE_H
#define ZDEV_LIB_ANONYMIZE_H

/* Private file mappings made anonymous in place, for zdevd (anonymize.c). */

#include <stdbool.h>
#include <stdint.h>

/*
 * Turns the private file mapping [start, start + len) into anonymous memory
 * with the same contents and protection prot, in place: zdevd asks for it
 * before it migrates the mapping's copy-on-write pages, since a uffd cannot
 * register a file mapping. anonymize_fault must be among the SIGSEGV
 * handler's claimers. 0; -EINVAL for a range that is empty, wraps or is not
 * page-aligned; else the -errno of the step that failed (the mapping is
 * unchanged then).
 */
int anonymize_mapping(uint64_t start, uint64_t len, unsigned int prot);

/* A claimer (segv.h): a write that met the mapping while it was being copied
 * waits until it is anonymous; true then, and the write retries. Also true,
 * once, for a fault in a change just ended. Async-signal-safe. */
bool anonymize_fault(uintptr_t addr);

#endif
