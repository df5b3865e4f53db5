/* SPDX-License-Identifier: MIT */
/*
 * A private file mapping made anonymous. Its pages are copied into a fresh
 * anonymous mapping, which then replaces it with one mremap: the range stays
 * one mapping, so mremap and munmap of it work as before. While the copy runs
 * the old mapping is read-only, so that no write is lost; a write that meets
 * it then takes a SIGSEGV, which waits here and retries on the new mapping.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/anonymize.h"
#include "lib/segv.h"
#include "page.h"

#define COPY_CHUNK (1ul << 20)

static pthread_mutex_t anonymize_lock = PTHREAD_MUTEX_INITIALIZER;
/* The range being copied, [start, end); end 0: none. */
static _Atomic uint64_t copying_start, copying_end;

/*
 * The last changes done, for a write that faulted during one but whose
 * handler runs only after it ended: it retries once per change. A ring the
 * handler reads without a lock; a slot being overwritten can only make a
 * late fault miss its change, which then reaches the program's handler as
 * it would have anyway.
 */
#define DONE_RING 8
static struct {
	_Atomic uint64_t start, end;
} done_ring[DONE_RING];
static _Atomic uint64_t done_count;
static __thread uintptr_t retried_addr __attribute__((tls_model("initial-exec")));
static __thread uint64_t retried_at __attribute__((tls_model("initial-exec")));

bool anonymize_fault(uintptr_t addr)
{
	/* acquire: pairs with the release that publishes the range, and with
	 * the one that ends it after the mremap, so the retried access finds
	 * the anonymous mapping. */
	uint64_t end = atomic_load_explicit(&copying_end, memory_order_acquire), count;

	if (end && addr >= atomic_load_explicit(&copying_start, memory_order_relaxed) && addr < end) {
		while (atomic_load_explicit(&copying_end, memory_order_acquire) == end)
			sched_yield();
		return true;
	}
	count = atomic_load_explicit(&done_count, memory_order_acquire);
	for (uint64_t k = count > DONE_RING ? count - DONE_RING : 0; k < count; k++) {
		uint64_t s = atomic_load_explicit(&done_ring[k % DONE_RING].start, memory_order_relaxed);
		uint64_t e = atomic_load_explicit(&done_ring[k % DONE_RING].end, memory_order_relaxed);

		if (addr < s || addr >= e)
			continue;
		/* A second fault at the same address after the same change is
		 * the program's own. */
		if (retried_addr == addr && retried_at == count)
			return false;
		retried_addr = addr;
		retried_at = count;
		return true;
	}
	return false;
}

static void note_done(uint64_t start, uint64_t end)
{
	uint64_t k = atomic_load_explicit(&done_count, memory_order_relaxed);

	atomic_store_explicit(&done_ring[k % DONE_RING].start, start, memory_order_relaxed);
	atomic_store_explicit(&done_ring[k % DONE_RING].end, end, memory_order_relaxed);
	/* release: a handler that sees the count sees the slot. */
	atomic_store_explicit(&done_count, k + 1, memory_order_release);
}

/*
 * Copies with process_vm_readv on ourselves: a page past the end of the file
 * gives EFAULT instead of SIGBUS, and stays zero in the copy.
 */
static int copy_contents(uint8_t *to, uint64_t from, uint64_t len)
{
	const pid_t self = getpid();

	for (uint64_t off = 0; off < len; off += COPY_CHUNK) {
		uint64_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;
		struct iovec local = { to + off, n }, remote = { (void *)(uintptr_t)(from + off), n };
		ssize_t got = process_vm_readv(self, &local, 1, &remote, 1, 0);

		if (got == (ssize_t)n)
			continue;
		if (got < 0 && errno != EFAULT)
			return -errno;
		/* Short: page by page from where it stopped. */
		for (uint64_t p = got > 0 ? (uint64_t)got & ~(PG_SIZE - 1) : 0; p < n; p += PG_SIZE) {
			struct iovec l = { to + off + p, PG_SIZE }, r = { (void *)(uintptr_t)(from + off + p), PG_SIZE };

			if (process_vm_readv(self, &l, 1, &r, 1, 0) < 0 && errno != EFAULT)
				return -errno;
		}
	}
	return 0;
}

/*
 * MREMAP_FIXED takes down what is at the target before it moves, and the move
 * can still fail (ENOMEM): then the mapping is a hole, and its contents live
 * on in copy only. They go back in place before copy goes.
 */
static void put_back(void *addr, const void *copy, uint64_t len, unsigned int prot)
{
	void *p;

	if (!mprotect(addr, len, prot) || errno != ENOMEM)
		return;
	p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (p != addr)
		return;
	memcpy(addr, copy, len);
	mprotect(addr, len, prot);
}

/* The signals a handler of the program's could take on this thread while the
 * mapping is read-only: a write of its there would wait for us for good. */
static void block_async_signals(sigset_t *old)
{
	sigset_t set;

	sigfillset(&set);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

int anonymize_mapping(uint64_t start, uint64_t len, unsigned int prot)
{
	void *addr = (void *)(uintptr_t)start, *copy;
	sigset_t old;
	int ret;

	if ((start | len) & (PG_SIZE - 1) || !len || start + len < start)
		return -EINVAL;
	ret = segv_install();
	if (ret)
		return ret;
	pthread_mutex_lock(&anonymize_lock);
	copy = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (copy == MAP_FAILED) {
		ret = -errno;
		goto out_unlock;
	}
	block_async_signals(&old);
	atomic_store_explicit(&copying_start, start, memory_order_relaxed);
	atomic_store_explicit(&copying_end, start + len, memory_order_release);
	if ((prot & PROT_WRITE) && mprotect(addr, len, prot & ~PROT_WRITE)) {
		ret = -errno;
		/* A part may have changed before the failure. */
		mprotect(addr, len, prot);
		goto out_unmap_copy;
	}
	ret = copy_contents(copy, start, len);
	if (ret) {
		mprotect(addr, len, prot);
		goto out_unmap_copy;
	}
	if (mprotect(copy, len, prot) ||
	    mremap(copy, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, addr) == MAP_FAILED) {
		ret = -errno;
		put_back(addr, copy, len, prot);
		goto out_unmap_copy;
	}
	ret = 0;
	goto out_end_copy;

out_unmap_copy:
	munmap(copy, len);
out_end_copy:
	/* Also after a failure: a write that faulted in the window retries,
	 * even if its handler runs only after the window is over. */
	note_done(start, start + len);
	atomic_store_explicit(&copying_end, 0, memory_order_release);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
out_unlock:
	pthread_mutex_unlock(&anonymize_lock);
	return ret;
}
