/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload/fdtab.h"

/*
 * Which descriptors are emulated files: one bit each, in chunks allocated
 * when the first emulated file gets a descriptor in their span, up to the
 * highest descriptor Linux allows (fs.nr_open is at most 2^30). The first
 * level is static, so a program that opens no emulated file allocates
 * nothing and fdtab_has reads one pointer.
 */
#define CHUNK_FDS	32768u
#define MAX_FDS		(1u << 30)
#define NCHUNKS		(MAX_FDS / CHUNK_FDS)

typedef _Atomic uint64_t fd_bits[CHUNK_FDS / 64];

static fd_bits *_Atomic chunks[NCHUNKS];

/* Descriptor to file, for the descriptors whose bit is set: few, so a
 * plain array. Under lock, as are the bits' changes and the refcounts. */
struct entry {
	int fd;
	struct fdtab_file *file;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static size_t nentries, capacity;
/* Files whose last reference went under the lock: released at the unlock,
 * outside it (a release talks to zdevd). */
static struct fdtab_file *pending;

bool fdtab_has(int fd)
{
	fd_bits *c;

	if ((unsigned int)fd >= MAX_FDS)
		return false;
	/* Acquire: a descriptor reaches this thread only after the open
	 * that set its bit returned, so its bit is seen set. A set bit may be
	 * stale (the program closed the descriptor by a call the shim does
	 * not see), which fdtab_get checks under the lock. */
	c = atomic_load_explicit(&chunks[(unsigned int)fd / CHUNK_FDS], memory_order_acquire);
	return c && (atomic_load_explicit(&(*c)[(unsigned int)fd % CHUNK_FDS / 64],
					  memory_order_relaxed) >> (fd % 64) & 1);
}

static int set_bit_locked(int fd, bool on)
{
	fd_bits *c;
	const uint64_t bit = 1ull << (fd % 64);

	if ((unsigned int)fd >= MAX_FDS)
		return -EMFILE;
	c = atomic_load_explicit(&chunks[(unsigned int)fd / CHUNK_FDS], memory_order_relaxed);
	if (!c) {
		if (!on)
			return 0;
		c = calloc(1, sizeof(*c));
		if (!c)
			return -ENOMEM;
		atomic_store_explicit(&chunks[(unsigned int)fd / CHUNK_FDS], c, memory_order_release);
	}
	if (on)
		atomic_fetch_or_explicit(&(*c)[(unsigned int)fd % CHUNK_FDS / 64], bit,
					 memory_order_release);
	else
		atomic_fetch_and_explicit(&(*c)[(unsigned int)fd % CHUNK_FDS / 64], ~bit,
					  memory_order_release);
	return 0;
}

static struct entry *find_locked(int fd)
{
	for (size_t i = 0; i < nentries; i++)
		if (entries[i].fd == fd)
			return &entries[i];
	return NULL;
}

static void put_locked(struct fdtab_file *f)
{
	if (--f->refs)
		return;
	f->release_next = pending;
	pending = f;
}

/* Removes fd's entry, if any, dropping its reference. */
static void remove_locked(int fd)
{
	struct entry *e = find_locked(fd);

	set_bit_locked(fd, false);
	if (!e)
		return;
	put_locked(e->file);
	*e = entries[--nentries];
}

static int add_locked(int fd, struct fdtab_file *f)
{
	int ret;

	remove_locked(fd);
	if (nentries == capacity) {
		size_t n = capacity ? capacity * 2 : 16;
		struct entry *e = realloc(entries, n * sizeof(*e));

		if (!e)
			return -ENOMEM;
		entries = e;
		capacity = n;
	}
	ret = set_bit_locked(fd, true);
	if (ret)
		return ret;
	entries[nentries++] = (struct entry){ .fd = fd, .file = f };
	f->refs++;
	return 0;
}

void fdtab_lock(void)
{
	pthread_mutex_lock(&lock);
}

void fdtab_unlock(void)
{
	struct fdtab_file *f = pending;

	pending = NULL;
	pthread_mutex_unlock(&lock);
	while (f) {
		struct fdtab_file *next = f->release_next;

		f->ops->release(f);
		free(f);
		f = next;
	}
}

int fdtab_open(const char *name, int oflags, const struct fdtab_ops *ops, void *priv)
{
	struct fdtab_file *f = calloc(1, sizeof(*f));
	struct stat st;
	int fd, ret;

	if (!f)
		return -ENOMEM;
	fd = memfd_create(name, (oflags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (fd < 0) {
		ret = -errno;
		goto out_free_file;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out_close_memfd;
	}
	*f = (struct fdtab_file){ .ops = ops, .priv = priv, .opener = getpid(),
				  .st_dev = st.st_dev, .st_ino = st.st_ino };
	fdtab_lock();
	ret = add_locked(fd, f);
	fdtab_unlock();
	if (ret)
		goto out_close_memfd;
	return fd;

out_close_memfd:
	syscall(SYS_close, fd);
out_free_file:
	free(f);
	return ret;
}

/* Whether fd still is f's memfd: the program may have closed it behind
 * the shim's back (close_range, a raw system call) and opened another file
 * under the same number. */
static bool still_same(int fd, const struct fdtab_file *f)
{
	struct stat st;

	return !fstat(fd, &st) && st.st_dev == f->st_dev && st.st_ino == f->st_ino;
}

struct fdtab_file *fdtab_get(int fd)
{
	struct fdtab_file *f = NULL;
	struct entry *e;

	fdtab_lock();
	e = find_locked(fd);
	if (e && still_same(fd, e->file)) {
		f = e->file;
		f->refs++;
	} else {
		remove_locked(fd);
	}
	fdtab_unlock();
	return f;
}

void fdtab_put(struct fdtab_file *f)
{
	fdtab_lock();
	put_locked(f);
	fdtab_unlock();
}

bool fdtab_mmap(int fd, void *addr, size_t len, int prot, int flags, off_t off, void **out)
{
	struct fdtab_file *f = fdtab_get(fd);

	if (!f)
		return false;
	*out = f->ops->mmap(f, fd, addr, len, prot, flags, off);
	fdtab_put(f);
	return true;
}

int fdtab_close(int fd, int (*real_close)(int))
{
	int ret;

	/* The entry goes before the descriptor: until the close, no other
	 * thread's open can get this number and meet the entry. */
	fdtab_lock();
	remove_locked(fd);
	ret = real_close(fd);
	fdtab_unlock();
	return ret;
}

void fdtab_dup_locked(int oldfd, int newfd)
{
	struct entry *e;

	if (oldfd == newfd)
		return;
	e = find_locked(oldfd);
	if (e)
		add_locked(newfd, e->file);
	else
		remove_locked(newfd);
}

void fdtab_forget(int fd)
{
	fdtab_lock();
	remove_locked(fd);
	fdtab_unlock();
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&lock);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) static void fdtab_init(void)
{
	/* No thread may hold the table's lock across a fork: the child
	 * would find it locked by a thread it does not have. */
	pthread_atfork(fork_prepare, fork_done, fork_done);
}
