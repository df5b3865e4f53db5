/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_MOVED_H
#define ZDEV_LIB_MOVED_H

/* Exclusive pages that mremap moved, asked about from the SIGSEGV handler
 * over a line to zdevd of their own (moved.c). */

#include <stdbool.h>
#include <stdint.h>

/* Opens the line to zdevd at path that the SIGSEGV handler asks about moved
 * exclusive pages (once a process). 0, also when this process has it open
 * already; else the -errno of the connect or the handshake, or zdevd's
 * error status (-EPROTO: an answer of the wrong type). Not from a signal
 * handler. */
int moved_open(const char *path);

/* Closes this process's line, whose zdevd is gone, so that moved_open opens
 * one to the zdevd of a new session: true if it had one. Not from a signal
 * handler. */
bool moved_close(void);

/* True when zdevd saw page move while exclusive, with its protection in
 * *prot; false when it did not, when this process has no line of its own
 * or the exchange failed. Async-signal-safe. */
bool moved_query(uintptr_t page, unsigned int *prot);

#endif
