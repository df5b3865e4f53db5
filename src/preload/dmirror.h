/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_DMIRROR_H
#define ZDEV_PRELOAD_DMIRROR_H

/*
 * The kernel's HMM test driver, emulated: /dev/hmm_dmirrorN opens a libzdev
 * handle of zdevd's device N, and the driver's ioctls and mmap act on it as
 * test_hmm.ko's do (zdev-preload(7), "The kernel's test driver"). Each open
 * file is one mirror of the process that opened it, as in the kernel; a
 * fork child that wants one opens the device itself.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "preload/dmirror_uapi.h"

struct fdtab_file;
struct zdev;

struct dmirror {
	unsigned int minor;
	enum dmirror_memory memory;
	struct zdev *dev;		/* the opener's handle of zdevd's device minor */
	pid_t opener;
	pthread_mutex_t map_lock;
	uint64_t map_end;		/* bytes of the memfd that mmap has handed out */
	struct dmirror *next;		/* the process's open mirrors */
};

/* Whether path names one of the driver's files; its minor into *minor. */
bool dmirror_path_minor(const char *path, unsigned int *minor);

/* Opens minor with open(2)'s flags: a descriptor, or -errno (-ENOENT for a
 * minor the driver or zdevd does not have). */
int dmirror_open(unsigned int minor, int oflags);

/* The driver's commands on an open file (dmirror_ioctl.c). */
long dmirror_ioctl(struct fdtab_file *f, unsigned long req, void *arg);

/* Copies between the program's memory and ours as the kernel's
 * copy_from_user and copy_to_user do: -EFAULT for a bad address, never a
 * crash. */
int dmirror_copy_in(void *dst, uint64_t user_src, size_t len);
int dmirror_copy_out(uint64_t user_dst, const void *src, size_t len);

/* A long-term pin of the pages: those on a device-coherent device of the
 * process come back to system memory (device-private pages came back when
 * the pin faulted them in). */
void dmirror_pin_longterm(void *addr, size_t npages);

#endif
