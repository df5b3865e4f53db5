/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_PIDFILE_H
#define ZDEV_ZDEVD_PIDFILE_H

#include <sys/types.h>

/*
 * --pidfile. zdevd holds a lock on the file as long as it runs, so that a
 * second zdevd started with the same file refuses to start instead of
 * overwriting it; a file left by a zdevd that died is taken over.
 */

/* Opens and locks path: a descriptor, or -errno (-EEXIST: a running
 * process holds it) with a message on standard error. */
int pidfile_claim(const char *path);

/* Writes pid into the claimed file: 0, or -errno with a message on
 * standard error. */
int pidfile_write(int fd, const char *path, pid_t pid);

/* At exit: removes the file, then lets go of the lock. */
void pidfile_remove(int fd, const char *path);

#endif
