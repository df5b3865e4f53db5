/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_MOVED_H
#define ZDEV_LIB_MOVED_H

/* Exclusive pages that mremap moved, asked about from the SIGSEGV handler
 * over a line to zdevd of their own (moved.c). */

#include <stdbool.h>
#include <stdint.h>

/* Opens the line to zdevd at path that the SIGSEGV handler asks about moved
 * exclusive pages (once a process). Not from a signal handler. */
int moved_open(const char *path);

/* Whether zdevd saw page move while exclusive; *prot: its protection.
 * Async-signal-safe. */
bool moved_query(uintptr_t page, unsigned int *prot);

#endif
