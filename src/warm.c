/* SPDX-License-Identifier: MIT */
/*
 * Warm device memory.
 *
 * A device page's memory is its process's store (store.c), mapped under the
 * pool block the page lies in. A store made at a process's first migration
 * has no memory yet: each page the copy writes first is allocated, zeroed
 * and mapped right then, one fault at a time, which on hosts where
 * page-table work is dear costs microseconds a page and makes the first
 * migration of a fresh process many times slower than the next. Real device
 * memory is there before a driver migrates into it; so is ours. While zdevd
 * is idle a thread makes each private device's next store, maps it under
 * free blocks, lowest first (the order the pool hands them out), and
 * populates them. The next process to need a store on the device takes that
 * one, and adopting those blocks costs it nothing: store_adopt_block keeps
 * a block whose mapping is the adopting store's already.
 *
 * Only blocks mapped to no living store are warmed: never used, or last used
 * by a store that is gone (whose data is punched out first, as adoption
 * does). So a store still shows only zeros or its own process's data, and a
 * block holds one process's pages. The blocks warmed for a store stay its
 * own once a process takes it, and the pool hands a process the free blocks
 * mapped to its store before others (store_prefers_block): its first
 * migrations find their memory there however long it waited, and a process
 * that comes later gets the blocks warmed for it, not another's.
 *
 * The thread runs at the lowest priority, only while the device has seen no
 * migration and no adoption for a moment, and sleeps once every device is warm or has no
 * block left to warm: zdevd uses no CPU once idle. A process taking a warm
 * store, and a store going, wake it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lathist.h"
#include "log.h"
#include "page.h"
#include "store.h"
#include "uffd_compat.h"
#include "warm.h"

#define BLOCK_BYTES ((size_t)REFPOOL_BLOCK_PAGES * PG_SIZE)
/* Warm memory over all devices is at most this share of the machine's. */
#define WARM_SHARE 4
/* How long the device has seen no migration or adoption before warming goes
 * on. */
#define QUIET_NS (50 * 1000000ull)

/* zdevd has one set of devices, hence one thread. */
static struct {
	struct devset *ds;
	uint64_t target_blocks;	/* per private device */
	pthread_t thread;
	bool running;
	atomic_bool stop;
	pthread_mutex_t lock;	/* guards kicked, and the sleep */
	pthread_cond_t kick;
	bool kicked;
} warm = { .lock = PTHREAD_MUTEX_INITIALIZER, .kick = PTHREAD_COND_INITIALIZER };

/* ds->store_changed: what can be warmed changed, the thread looks again. */
static void kick(struct device *dev)
{
	(void)dev;
	pthread_mutex_lock(&warm.lock);
	warm.kicked = true;
	pthread_cond_signal(&warm.kick);
	pthread_mutex_unlock(&warm.lock);
}

/* The device's warm store, made if it has none: false if it cannot be. */
static bool have_store(struct device *dev)
{
	struct store *store;
	int ret;

	/* Only this thread sets it; store_take_warm() only clears it. */
	pthread_mutex_lock(&dev->warm_lock);
	store = dev->warm_store;
	pthread_mutex_unlock(&dev->warm_lock);
	if (store)
		return true;
	ret = store_create(warm.ds, dev->index, &store);
	if (ret) {
		log_warn("device %u: no warm store: %s", dev->index, strerror(-ret));
		return false;
	}
	pthread_mutex_lock(&dev->warm_lock);
	dev->warm_store = store;
	pthread_mutex_unlock(&dev->warm_lock);
	return true;
}

/*
 * Has the kernel read a byte of each page of the block. On hosts whose
 * hypervisor keeps its own page tables for the guest, one set for its user
 * mode and one for its kernel mode, a populated page still costs microseconds
 * at its first access in each mode, and the copies into and out of a store
 * are the kernel's (process_vm_readv, UFFDIO_COPY): left alone, that cost
 * falls in a first migration's copy, page by page. process_vm_writev from
 * the block into a scratch buffer of ours pays it here. A read, for the block
 * may be another store's by now and hold its data.
 */
static void touch_block(char *addr)
{
	char scratch[REFPOOL_BLOCK_PAGES];
	struct iovec pages[REFPOOL_BLOCK_PAGES];
	const struct iovec to = { scratch, sizeof(scratch) };

	for (size_t i = 0; i < REFPOOL_BLOCK_PAGES; i++)
		pages[i] = (struct iovec){ addr + i * PG_SIZE, 1 };
	/* Best effort: a block it could not read is only slower to fill. */
	(void)process_vm_writev(getpid(), pages, REFPOOL_BLOCK_PAGES, &to, 1, 0);
}

/*
 * Warms block b if it is free and holds no process's data: maps the warm store
 * under it, then gives every page its memory. Only the mapping is done under
 * the lock, which orders it against the block's adoption; the populating is
 * not, so that an adopter never waits for it. An adopter that is not the
 * warm store's process may map its own store over the block meanwhile: the
 * populating only allocates zeroed pages and never changes one that is
 * there, so at worst it gives that store its memory early, or leaves a few
 * zero pages in the warm store's file. 0, -EAGAIN if the warm store was
 * taken, or -errno to stop warming.
 */
static int warm_block(struct device *dev, uint64_t b)
{
	const uint32_t first = (uint32_t)(b * REFPOOL_BLOCK_PAGES);
	uint64_t id, slot;
	char *addr;
	int ret = 0;

	pthread_mutex_lock(&dev->warm_lock);
	if (!dev->warm_store) {
		pthread_mutex_unlock(&dev->warm_lock);
		return -EAGAIN;
	}
	id = dev->warm_store->id;
	slot = atomic_load_explicit(&dev->block_store[b], memory_order_relaxed);
	/* A block mapped to any living store is that store's to adopt: to the
	 * warm store (done), or to one a process took (warm for it). */
	if (slot || !refpool_block_free(dev->pool, first)) {
		pthread_mutex_unlock(&dev->warm_lock);
		return 0;
	}
	ret = store_map_block_locked(dev, dev->warm_store, first);
	pthread_mutex_unlock(&dev->warm_lock);
	if (ret)
		return ret;

	addr = refpool_page_mem(dev->pool, refpool_pfn_to_page(dev->pool, first));
	if (madvise(addr, BLOCK_BYTES, MADV_POPULATE_WRITE))
		return -errno;	/* the block is filled on first use */
	touch_block(addr);
	/* Warm once its memory is there, and only while it is still the
	 * untaken warm store's: the count is what the next process gets. */
	pthread_mutex_lock(&dev->warm_lock);
	if (atomic_load_explicit(&dev->block_store[b], memory_order_relaxed) == id) {
		store_block_filled(dev, first);
		if (dev->warm_store && dev->warm_store->id == id)
			atomic_fetch_add_explicit(&dev->warm_blocks, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&dev->warm_lock);
	return 0;
}

void warm_device_busy(struct device *dev)
{
	atomic_fetch_add_explicit(&dev->migrating, 1, memory_order_relaxed);
}

void warm_device_done(struct device *dev)
{
	atomic_store_explicit(&dev->last_busy_ns, lathist_now_ns(), memory_order_relaxed);
	atomic_fetch_sub_explicit(&dev->migrating, 1, memory_order_relaxed);
}

/* Sleeps until dev has had no migration and no block adopted for QUIET_NS:
 * warming waits for a client's burst of migrations to end rather than take
 * blocks, CPU time and zdevd's mmap_lock under it. False if zdevd is
 * stopping. */
static bool wait_quiet(struct device *dev)
{
	for (;;) {
		uint64_t now = lathist_now_ns(),
			 last = atomic_load_explicit(&dev->last_busy_ns, memory_order_relaxed);
		/* An adoption stamped after we read the clock is one just now,
		 * not one 2^64 ns ago. */
		uint64_t quiet = last > now ? 0 : now - last;

		if (atomic_load_explicit(&dev->migrating, memory_order_relaxed))
			quiet = 0;
		struct timespec until;

		if (atomic_load_explicit(&warm.stop, memory_order_relaxed))
			return false;
		if (quiet >= QUIET_NS)
			return true;
		/* The condition variable times out by CLOCK_REALTIME. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)(QUIET_NS - quiet);
		until.tv_sec += until.tv_nsec / 1000000000l;
		until.tv_nsec %= 1000000000l;
		pthread_mutex_lock(&warm.lock);
		if (!atomic_load_explicit(&warm.stop, memory_order_relaxed))
			pthread_cond_timedwait(&warm.kick, &warm.lock, &until);
		pthread_mutex_unlock(&warm.lock);
	}
}

/* Warms the device up to the target, or as far as free blocks go. */
static void warm_device(struct device *dev)
{
	int ret;

	if (dev->memtype != REFPOOL_MEMTYPE_PRIVATE || !have_store(dev))
		return;
	/* Chunks are made on demand otherwise; warming needs their blocks.
	 * A limit below the target warms what there is. */
	ret = refpool_reserve(dev->pool, warm.target_blocks * REFPOOL_BLOCK_PAGES);
	if (ret && ret != -ENOMEM)
		return;
	for (uint64_t b = 0; b < dev->nblocks; b++) {
		if (atomic_load_explicit(&dev->warm_blocks, memory_order_relaxed) >=
			    warm.target_blocks || !wait_quiet(dev))
			break;
		ret = warm_block(dev, b);
		if (ret == -EAGAIN)
			break;	/* taken: its kick brings us back */
		if (ret) {
			log_dbg("device %u: warming stops: %s", dev->index, strerror(-ret));
			break;
		}
	}
	log_dbg("device %u: %" PRIu64 " MiB warm", dev->index,
		atomic_load_explicit(&dev->warm_blocks, memory_order_relaxed) * BLOCK_BYTES >> 20);
}

static void *warm_main(void *arg)
{
	(void)arg;
	/* Warming is for when nothing else runs. Not SCHED_IDLE: a thread
	 * of that class preempted while it holds zdevd's mmap_lock (which
	 * populating and mapping take) would stall every migration of zdevd
	 * behind it for as long as the CPUs are busy. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	for (;;) {
		pthread_mutex_lock(&warm.lock);
		while (!warm.kicked && !atomic_load_explicit(&warm.stop, memory_order_relaxed))
			pthread_cond_wait(&warm.kick, &warm.lock);
		warm.kicked = false;
		pthread_mutex_unlock(&warm.lock);
		if (atomic_load_explicit(&warm.stop, memory_order_relaxed))
			break;
		for (unsigned int i = 0; i < warm.ds->ndevices; i++)
			warm_device(&warm.ds->dev[i]);
	}
	return NULL;
}

/* The blocks each private device may keep warm: warm_bytes, but over all of
 * them at most WARM_SHARE of the machine's memory, since warm memory is
 * resident in zdevd (devices larger than the machine are allowed). */
static uint64_t target_blocks(const struct devset *ds, size_t warm_bytes)
{
	const uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t want = warm_bytes / BLOCK_BYTES, cap;
	unsigned int nprivate = 0;

	for (unsigned int i = 0; i < ds->ndevices; i++)
		nprivate += ds->dev[i].memtype == REFPOOL_MEMTYPE_PRIVATE;
	if (!nprivate || !want)
		return 0;
	cap = phys / WARM_SHARE / nprivate / BLOCK_BYTES;
	if (want > cap) {
		log_warn("warm memory: %" PRIu64 " MiB a device, a quarter of this machine's memory "
			 "over all devices", cap * BLOCK_BYTES >> 20);
		want = cap;
	}
	return want;
}

int warm_start(struct devset *ds, size_t warm_bytes)
{
	int ret;

	warm.ds = ds;
	warm.target_blocks = target_blocks(ds, warm_bytes);
	if (!warm.target_blocks)
		return 0;
	atomic_store(&warm.stop, false);
	warm.kicked = true;
	ret = pthread_create(&warm.thread, NULL, warm_main, NULL);
	if (ret)
		return -ret;
	warm.running = true;
	/* release: the thread's state is set before a store change reaches
	 * it. */
	atomic_store_explicit(&ds->store_changed, kick, memory_order_release);
	return 0;
}

void warm_stop(struct devset *ds)
{
	atomic_store_explicit(&ds->store_changed, NULL, memory_order_relaxed);
	if (warm.running) {
		pthread_mutex_lock(&warm.lock);
		atomic_store(&warm.stop, true);
		pthread_cond_signal(&warm.kick);
		pthread_mutex_unlock(&warm.lock);
		pthread_join(warm.thread, NULL);
		warm.running = false;
	}
	for (unsigned int i = 0; i < ds->ndevices; i++) {
		struct store *store = store_take_warm(&ds->dev[i]);

		if (store)
			store_put(store);
	}
}
