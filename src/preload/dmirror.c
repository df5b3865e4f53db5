/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "page.h"
#include "preload/dmirror.h"
#include "preload/fdtab.h"
#include "preload/state.h"
#include "zdev.h"

#define DMIRROR_PATH "/dev/hmm_dmirror"

/* The driver has four minors: two of device-private memory, and two of
 * device-coherent memory, which exist when the module was given the
 * physical memory for them. */
static enum dmirror_memory minor_memory(unsigned int minor)
{
	return minor < 2 ? DMIRROR_MEMORY_DEVICE_PRIVATE
	       : minor < 4 ? DMIRROR_MEMORY_DEVICE_COHERENT : DMIRROR_MEMORY_NONE;
}

/* The memory of zdevd's device behind dev. A minor opens only on a device
 * of its kind: a zdevd without coherent devices leaves /dev/hmm_dmirror2
 * and 3 absent, as a kernel without coherent memory does. */
static enum dmirror_memory device_memory(struct zdev *dev)
{
	unsigned int type;

	if (zdev_get_memory_type(dev, &type))
		return DMIRROR_MEMORY_NONE;
	return type == ZDEV_MEMORY_DEVICE_COHERENT ? DMIRROR_MEMORY_DEVICE_COHERENT
	       : type == ZDEV_MEMORY_DEVICE_PRIVATE ? DMIRROR_MEMORY_DEVICE_PRIVATE
	       : DMIRROR_MEMORY_NONE;
}

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dmirror *mirrors;

bool dmirror_path_minor(const char *path, unsigned int *minor)
{
	const char *p;
	unsigned int n = 0;

	if (strncmp(path, DMIRROR_PATH, sizeof(DMIRROR_PATH) - 1))
		return false;
	p = path + sizeof(DMIRROR_PATH) - 1;
	/* The kernel's names only: hmm_dmirror0, never hmm_dmirror00. */
	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1]) || strlen(p) > 3)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (unsigned int)(*p - '0');
	}
	*minor = n;
	return true;
}

int dmirror_copy_in(void *dst, uint64_t user_src, size_t len)
{
	struct iovec local = { dst, len }, remote = { (void *)(uintptr_t)user_src, len };

	/* Through the kernel, which answers EFAULT where a load would crash. */
	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

int dmirror_copy_out(uint64_t user_dst, const void *src, size_t len)
{
	struct iovec local = { (void *)src, len }, remote = { (void *)(uintptr_t)user_dst, len };

	return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

/*
 * The driver's mmap gives every mapping pages of its own, zeroed, put in
 * place at once (vm_insert_page): a private writable mapping of them is
 * read-only until written, as every private file page is. Each mapping gets
 * a part of the memfd no other mapping had; a read of each page maps it.
 * The driver ignores the offset, so does this, but for its alignment.
 */
static void *dmirror_mmap(struct fdtab_file *f, int fd, void *addr, size_t len, int prot,
			  int flags, off_t off)
{
	struct dmirror *d = f->priv;
	uint64_t start;
	long p;

	if (!len || (off & (off_t)(PG_SIZE - 1))) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	pthread_mutex_lock(&d->map_lock);
	start = d->map_end;
	if (ftruncate(fd, (off_t)(start + pg_up(len)))) {
		pthread_mutex_unlock(&d->map_lock);
		return MAP_FAILED;
	}
	d->map_end = start + pg_up(len);
	pthread_mutex_unlock(&d->map_lock);
	p = syscall(SYS_mmap, addr, len, prot, flags, fd, (off_t)start);
	if (p == -1)
		return MAP_FAILED;
	if (prot & PROT_READ)
		for (size_t i = 0; i < len; i += PG_SIZE)
			(void)*(volatile const char *)(p + (long)i);
	return (void *)p;
}

/*
 * The last descriptor of the file is closed: as the driver's release does,
 * the device gives back what it holds (zdev_close brings the opener's pages
 * home). In a fork child the handle is the parent's, bound to the parent's
 * connection: it is left alone, as libzdev asks of a child.
 */
static void dmirror_release(struct fdtab_file *f)
{
	struct dmirror *d = f->priv;

	pthread_mutex_lock(&list_lock);
	for (struct dmirror **p = &mirrors; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	pthread_mutex_unlock(&list_lock);
	if (d->opener == getpid()) {
		zdev_close(d->dev);
		free(d);
	}
}

static const struct fdtab_ops dmirror_ops = {
	.ioctl = dmirror_ioctl,
	.mmap = dmirror_mmap,
	.release = dmirror_release,
};

int dmirror_open(unsigned int minor, int oflags)
{
	const char *socket = shim.env.socket[0] ? shim.env.socket : NULL;
	const enum dmirror_memory memory = minor_memory(minor);
	char name[32];
	struct dmirror *d;
	int ret, fd;

	if (memory == DMIRROR_MEMORY_NONE)
		return -ENOENT;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	ret = zdev_open(socket, minor, &d->dev);
	/* No zdevd, or none with that device: no such device file. */
	if (ret == -ENODEV || ret == -ENOENT || ret == -ECONNREFUSED)
		ret = -ENOENT;
	if (ret)
		goto out_free;
	if (device_memory(d->dev) != memory) {
		ret = -ENOENT;
		goto out_close_dev;
	}
	d->minor = minor;
	d->memory = memory;
	d->opener = getpid();
	pthread_mutex_init(&d->map_lock, NULL);
	snprintf(name, sizeof(name), "zdev-hmm_dmirror%u", minor);
	fd = fdtab_open(name, oflags, &dmirror_ops, d);
	if (fd < 0) {
		ret = fd;
		goto out_close_dev;
	}
	pthread_mutex_lock(&list_lock);
	d->next = mirrors;
	mirrors = d;
	pthread_mutex_unlock(&list_lock);
	return fd;

out_close_dev:
	zdev_close(d->dev);
out_free:
	free(d);
	return ret;
}

/* A fork child has the forking thread alone: a lock another thread held
 * stays held. The list itself is never half changed: a removal or an
 * insertion is one store. */
static void list_lock_in_child(void)
{
	pthread_mutex_init(&list_lock, NULL);
}

__attribute__((constructor)) static void dmirror_init(void)
{
	pthread_atfork(NULL, NULL, list_lock_in_child);
}

void dmirror_pin_longterm(void *addr, size_t npages)
{
	struct zdev_result res;

	/* Coherent memory must never be pinned for long: the kernel moves
	 * such a page to system memory before it pins it. */
	pthread_mutex_lock(&list_lock);
	for (struct dmirror *d = mirrors; d; d = d->next)
		if (d->opener == getpid() && d->memory == DMIRROR_MEMORY_DEVICE_COHERENT)
			zdev_migrate_to_system(d->dev, addr, npages, &res);
	pthread_mutex_unlock(&list_lock);
}
