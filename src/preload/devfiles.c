/* SPDX-License-Identifier: MIT */
/*
 * The calls on files that the emulated device files (fdtab.h) need: opens
 * of their paths, and every call that closes or duplicates a descriptor or
 * sends it a command. Each asks fdtab_has first, so that for any other file
 * it costs a bit test and goes straight to the next definition.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "preload/dmirror.h"
#include "preload/fdtab.h"
#include "preload/gup_test.h"
#include "preload/next.h"
#include "preload/state.h"

#define EXPORT __attribute__((visibility("default")))

static bool emulating(const char *path)
{
	/* Only absolute paths name the emulated files: a check that costs
	 * one byte for every other path. */
	return path && path[0] == '/' && shim.ready && shim.env.dmirror;
}

/* An open of the driver's files: true with the answer in *ret. */
static bool open_emulated(const char *path, int flags, int *ret)
{
	unsigned int minor;
	int fd;

	if (!emulating(path) || !dmirror_path_minor(path, &minor))
		return false;
	fd = dmirror_open(minor, flags);
	if (fd < 0) {
		errno = -fd;
		fd = -1;
	}
	*ret = fd;
	return true;
}

/* After the real open: the GUP test file is emulated where the kernel's
 * cannot be opened, and a descriptor the shim once knew as emulated, closed
 * by a call it did not see, is forgotten. */
static int opened(int fd, const char *path, int flags)
{
	int saved = errno, emulated;

	if (fd >= 0) {
		if (fdtab_has(fd))
			fdtab_forget(fd);
		return fd;
	}
	if (!emulating(path) || !gup_test_path(path))
		return fd;
	emulated = gup_test_open(flags);
	if (emulated >= 0)
		return emulated;
	errno = saved;
	return -1;
}

/* open(2)'s mode argument is there only with O_CREAT or O_TMPFILE. */
#define MODE_ARG(flags, mode)						\
	do {								\
		if ((flags) & O_CREAT || ((flags) & O_TMPFILE) == O_TMPFILE) {	\
			va_list ap;					\
			va_start(ap, flags);				\
			mode = va_arg(ap, int);				\
			va_end(ap);					\
		}							\
	} while (0)

static int (*next_open)(const char *, int, ...);
static int (*next_open64)(const char *, int, ...);
static int (*next_openat)(int, const char *, int, ...);
static int (*next_openat64)(int, const char *, int, ...);
static int (*next___open_2)(const char *, int);
static int (*next___open64_2)(const char *, int);
static int (*next___openat_2)(int, const char *, int);
static int (*next___openat64_2)(int, const char *, int);

EXPORT int open(const char *path, int flags, ...)
{
	int mode = 0, ret;

	MODE_ARG(flags, mode);
	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(open)(path, flags, mode), path, flags);
}

EXPORT int open64(const char *path, int flags, ...)
{
	int mode = 0, ret;

	MODE_ARG(flags, mode);
	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(open64)(path, flags, mode), path, flags);
}

/* A relative path never names an emulated file, whatever dirfd is. */
EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	int mode = 0, ret;

	MODE_ARG(flags, mode);
	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(openat)(dirfd, path, flags, mode), path, flags);
}

EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	int mode = 0, ret;

	MODE_ARG(flags, mode);
	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(openat64)(dirfd, path, flags, mode), path, flags);
}

/* glibc's fortified opens (_FORTIFY_SOURCE), which take no mode; its
 * headers declare them only when fortifying. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

EXPORT int __open_2(const char *path, int flags)
{
	int ret;

	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(__open_2)(path, flags), path, flags);
}

EXPORT int __open64_2(const char *path, int flags)
{
	int ret;

	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(__open64_2)(path, flags), path, flags);
}

EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	int ret;

	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(__openat_2)(dirfd, path, flags), path, flags);
}

EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	int ret;

	if (open_emulated(path, flags, &ret))
		return ret;
	return opened(NEXT(__openat64_2)(dirfd, path, flags), path, flags);
}

static int (*next_close)(int);
static int (*next_dup)(int);
static int (*next_dup2)(int, int);
static int (*next_dup3)(int, int, int);
static int (*next_fcntl)(int, int, ...);
static int (*next_fcntl64)(int, int, ...);
static int (*next_ioctl)(int, unsigned long, ...);

EXPORT int close(int fd)
{
	if (!fdtab_has(fd))
		return NEXT(close)(fd);
	return fdtab_close(fd, NEXT(close));
}

EXPORT int dup(int fd)
{
	int ret;

	if (!fdtab_has(fd))
		return NEXT(dup)(fd);
	fdtab_lock();
	ret = NEXT(dup)(fd);
	if (ret >= 0)
		fdtab_dup_locked(fd, ret);
	fdtab_unlock();
	return ret;
}

/* newfd may be an emulated file too, which the call closes. */
EXPORT int dup2(int fd, int newfd)
{
	int ret;

	if (!fdtab_has(fd) && !fdtab_has(newfd))
		return NEXT(dup2)(fd, newfd);
	fdtab_lock();
	ret = NEXT(dup2)(fd, newfd);
	if (ret >= 0)
		fdtab_dup_locked(fd, ret);
	fdtab_unlock();
	return ret;
}

EXPORT int dup3(int fd, int newfd, int flags)
{
	int ret;

	if (!fdtab_has(fd) && !fdtab_has(newfd))
		return NEXT(dup3)(fd, newfd, flags);
	fdtab_lock();
	ret = NEXT(dup3)(fd, newfd, flags);
	if (ret >= 0)
		fdtab_dup_locked(fd, ret);
	fdtab_unlock();
	return ret;
}

/* fcntl's one argument, whatever its type, is passed on as a pointer: the
 * calling convention gives an int or a pointer the same register. */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	int ret;

	if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || !fdtab_has(fd))
		return real(fd, cmd, arg);
	fdtab_lock();
	ret = real(fd, cmd, arg);
	if (ret >= 0)
		fdtab_dup_locked(fd, ret);
	fdtab_unlock();
	return ret;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(NEXT(fcntl), fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(NEXT(fcntl64), fd, cmd, arg);
}

/* The commands the kernel's VFS answers for every file before its driver
 * sees them: the memfd answers them the same. */
static bool vfs_command(unsigned long req)
{
	const unsigned int cmd = (unsigned int)req;

	return cmd == FIOCLEX || cmd == FIONCLEX || cmd == FIONBIO || cmd == FIOASYNC;
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct fdtab_file *f;
	va_list ap;
	void *arg;
	long ret;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (!fdtab_has(fd) || vfs_command(req) || !(f = fdtab_get(fd)))
		return NEXT(ioctl)(fd, req, arg);
	/* The kernel takes the command as an unsigned int: a caller that
	 * passed a negative int (sign-extended) means the same command. */
	ret = f->ops->ioctl(f, (unsigned int)req, arg);
	fdtab_put(f);
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return (int)ret;
}
