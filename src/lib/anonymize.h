/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_ANONYMIZE_H
#define ZDEV_LIB_ANONYMIZE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Turns the private file mapping [start, start + len) into anonymous memory
 * with the same contents and protection prot, in place: zdevd asks for it
 * before it migrates the mapping's copy-on-write pages, since a uffd cannot
 * register a file mapping. 0 or -errno (the mapping is unchanged then).
 */
int anonymize_mapping(uint64_t start, uint64_t len, unsigned int prot);

/* From the SIGSEGV handler: a write that met the mapping while it was being
 * copied waits until it is anonymous, and then retries (true). */
bool anonymize_fault(uintptr_t addr);

#endif
