/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_FDTAB_H
#define ZDEV_PRELOAD_FDTAB_H

/*
 * The device files the shim emulates (zdev-preload(7), "The kernel's test
 * driver"): each open of one is a memfd, so that the program holds a real
 * file descriptor that fstat, fcntl, poll and close understand, and this
 * table says which descriptors are such files and which emulated file each
 * one is. Like the kernel's open file description, an emulated file is
 * shared by every descriptor dup, dup2, dup3 and fcntl(F_DUPFD) make of it,
 * and released when the last of them in the process is closed.
 *
 * fdtab_has() is what every interposed call on a descriptor asks first: a
 * bit in a table indexed by descriptor, no lock, no system call, so that a
 * program that opens no such file pays next to nothing.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct fdtab_file;

struct fdtab_ops {
	/* A command: 0 (or a count) or -errno; arg is the program's pointer. */
	long (*ioctl)(struct fdtab_file *f, unsigned long req, void *arg);
	/* mmap(2) of the file through descriptor fd: the address, or
	 * MAP_FAILED with errno set. */
	void *(*mmap)(struct fdtab_file *f, int fd, void *addr, size_t len, int prot, int flags,
		      off_t off);
	/* The last descriptor is closed, and no call is under way. */
	void (*release)(struct fdtab_file *f);
};

struct fdtab_file {
	const struct fdtab_ops *ops;
	void *priv;
	pid_t opener;		/* the process that opened it (a fork child inherits it) */
	dev_t st_dev;		/* the memfd's identity, checked before each use */
	ino_t st_ino;
	unsigned int refs;	/* descriptors and calls under way; under the table's lock */
	struct fdtab_file *release_next; /* the table's list of files to release */
};

/* Whether fd may be an emulated file: false for every other descriptor. */
bool fdtab_has(int fd);

/* A new emulated file: a memfd named name (O_CLOEXEC from oflags), entered
 * for ops and priv. Its descriptor, or -errno (ops->release is not called). */
int fdtab_open(const char *name, int oflags, const struct fdtab_ops *ops, void *priv);

/* The emulated file behind fd with a reference, or NULL (fd is another
 * file, perhaps since the program closed it by a call the shim does not
 * see). Give it back with fdtab_put. */
struct fdtab_file *fdtab_get(int fd);
void fdtab_put(struct fdtab_file *f);

/* mmap(2) of fd: false when fd is no emulated file, else true with the
 * file's answer in *out (MAP_FAILED with errno set on failure). */
bool fdtab_mmap(int fd, void *addr, size_t len, int prot, int flags, off_t off, void **out);

/* fd is closed by the program: real_close(fd)'s answer. */
int fdtab_close(int fd, int (*real_close)(int));
/* A descriptor was duplicated: newfd now is what oldfd is (an emulated file
 * or not). Call under fdtab_lock, after the duplicating call succeeded. */
void fdtab_dup_locked(int oldfd, int newfd);
/* fd was just returned by a call that opened another file: any entry left
 * for it by a close the shim did not see goes. */
void fdtab_forget(int fd);

/* Around a duplicating call and fdtab_dup_locked: a descriptor freed by the
 * call (dup2 onto an open one) is never reused meanwhile by another thread's
 * open. Files whose last descriptor went are released by the unlock. */
void fdtab_lock(void);
void fdtab_unlock(void);

#endif
