/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "preload/policy.h"
#include "preload/ranges.h"
#include "preload/state.h"
#include "lib/zdevpriv.h"
#include "zdev.h"

#define SCAN_NS		100000000ull	/* the maps are read again every 100 ms */
#define EVICT_BATCH	512		/* pages looked at per range and round */

static pthread_t thread;
static bool running;
static atomic_bool stop;
static uint64_t rng;
/* The thread waits out its tick on wake, so that policy_stop() ends the
 * wait at once: a process's exit waits for no idle period. Initialized
 * afresh by policy_start(), in a fork child too, where the parent's thread
 * may have left them mid-wait. */
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;

/* xorshift64*: the same seed gives the same decisions. */
static uint64_t next_random(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One device operation, with no change of the address space under it. */
static void device_op(unsigned int op, uint64_t addr, uint64_t npages)
{
	struct zdev_result res;

	pthread_rwlock_wrlock(&shim.as_lock);
	if (op == 0)
		zdev_migrate_to_device(shim.dev, (void *)(uintptr_t)addr, npages, &res);
	else if (op == 1)
		zdev_migrate_to_system(shim.dev, (void *)(uintptr_t)addr, npages, &res);
	else
		/* Held unmapped, not PROT_NONE: a system call on the page
		 * revokes it instead of failing with EFAULT. */
		zdevpriv_make_exclusive_held(shim.dev, (void *)(uintptr_t)addr, npages, &res);
	pthread_rwlock_unlock(&shim.as_lock);
}

/*
 * stress: a run of managed pages picked at random (bigger ranges more
 * often) goes to the device, comes back, or becomes exclusive. The run is a
 * page, a few pages, or a whole 2 MiB window (a device THP where it can be).
 * Failures are the program's memory changing under us, and are left be.
 */
static void stress_step(void)
{
	uint64_t start, end, npages, first, n;
	unsigned int op;

	if (!ranges_pick(next_random(), &start, &end))
		return;
	npages = (end - start) / PG_SIZE;
	switch (next_random() % 4) {
	case 0: n = WIN_PAGES; break;
	case 1: n = 64; break;
	default: n = 1 + next_random() % 16; break;
	}
	if (!npages)
		return;
	n = n < npages ? n : npages;
	first = start + next_random() % (npages - n + 1) * PG_SIZE;
	if (n == WIN_PAGES && win_down(first) >= start)
		first = win_down(first);
	op = (unsigned int)(next_random() % 100);
	op = op < 50 ? 0 : op < 80 || !shim.env.exclusive ? 1 : 2;
	if (!ranges_excluded(first, first + n * PG_SIZE))
		device_op(op, first, n);
}

/* ---- evict ---- */

#define PM_PRESENT	(1ull << 63)
#define PM_SOFT_DIRTY	(1ull << 55)

/*
 * evict backs off from pages that come back. Soft-dirty bits see writes,
 * not reads: a page the program only reads looks idle every round, and
 * moved every round it would fault back every round. So each page has a
 * heat, and a page of heat h moves only in every 2^h-th round. A page back
 * within HEAT_SOON rounds of its move was in use, and heats up; one that
 * stayed away longer was idle, and cools. Only a page's return tells: a
 * round may well come before the program's next touch of a page in use.
 * Page vpn's heat is kept in slot vpn % HEAT_SLOTS, shared by pages 4 GiB
 * apart: a policy, not an account.
 */
#define HEAT_SLOTS	(1u << 20)
#define HEAT_MAX	10		/* moved at most every 1024th round */
#define HEAT_SOON	8
#define HEAT_MASK	0xfu
#define MOVED_SHIFT	4		/* the round of the move, mod 2^11 */
#define MOVED_MASK	0x7ffu
#define MOVED		0x8000u		/* moved, not seen back yet */

static uint16_t *heat;
static uint64_t evict_rounds;

static void heat_init(void)
{
	const size_t len = HEAT_SLOTS * sizeof(*heat);
	void *p;

	if (heat)
		return;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;	/* no back-off: every idle page moves */
	ranges_exclude((uint64_t)(uintptr_t)p, (uint64_t)(uintptr_t)p + len);
	heat = p;
}

/* Whether the page moves this round, given its pagemap entry. */
static bool evict_page(uint64_t vpn, uint64_t pm)
{
	const bool idle = (pm & (PM_PRESENT | PM_SOFT_DIRTY)) == PM_PRESENT;
	uint16_t *slot = heat ? &heat[vpn % HEAT_SLOTS] : NULL;
	unsigned int h;

	if (!slot)
		return idle;
	h = *slot & HEAT_MASK;
	if ((*slot & MOVED) && (pm & PM_PRESENT)) {
		unsigned int away = (unsigned int)(evict_rounds - (*slot >> MOVED_SHIFT)) & MOVED_MASK;

		if (away <= HEAT_SOON)
			h += h < HEAT_MAX;
		else
			h -= h > 0;
		*slot = (uint16_t)h;
	}
	if (!idle || (evict_rounds & ((1ull << h) - 1)))
		return false;
	*slot = (uint16_t)(MOVED | (evict_rounds & MOVED_MASK) << MOVED_SHIFT | h);
	return true;
}

/*
 * evict: a page is idle when it was present and not written since the
 * soft-dirty bits were last cleared, idle_ms ago; the idle pages of the
 * managed ranges that are not too hot go to the device, and the bits are
 * cleared again.
 */
static void evict_range(int pagemap, uint64_t start, uint64_t end)
{
	uint64_t pm[EVICT_BATCH];

	for (uint64_t a = start; a < end && !atomic_load(&stop);) {
		const uint64_t n = (end - a) / PG_SIZE < EVICT_BATCH ? (end - a) / PG_SIZE
								     : EVICT_BATCH;
		ssize_t got = pread(pagemap, pm, n * sizeof(*pm), (off_t)(pg_vpn(a) * sizeof(*pm)));
		uint64_t s = 0;

		if (got <= 0)
			return;
		for (uint64_t i = 0; i <= (uint64_t)got / sizeof(*pm); i++) {
			if (i < (uint64_t)got / sizeof(*pm) && evict_page(pg_vpn(a) + i, pm[i]))
				continue;
			if (i > s && !ranges_excluded(a + s * PG_SIZE, a + i * PG_SIZE))
				device_op(0, a + s * PG_SIZE, i - s);
			s = i + 1;
		}
		a += (uint64_t)got / sizeof(*pm) * PG_SIZE;
	}
}

static void evict_round(void)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int clear = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	uint64_t start, end, seen = 0;

	if (pagemap >= 0 && clear >= 0) {
		/* Each managed range once, picked by offset. */
		while (seen < ranges_bytes() && ranges_pick(seen, &start, &end)) {
			evict_range(pagemap, start, end);
			seen += end - start;
		}
		/* "4": clear the soft-dirty bits of the whole process. */
		if (write(clear, "4", 1) != 1)
			atomic_store(&stop, true);
		evict_rounds++;
	}
	if (pagemap >= 0)
		close(pagemap);
	if (clear >= 0)
		close(clear);
}

/* Waits ns, or until policy_stop(): true when the thread is to stop. */
static bool wait_tick(uint64_t ns)
{
	struct timespec until;
	bool stopping;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	ns += (uint64_t)until.tv_nsec;
	until.tv_sec += (time_t)(ns / 1000000000ull);
	until.tv_nsec = (long)(ns % 1000000000ull);
	pthread_mutex_lock(&wake_lock);
	/* stop is set under wake_lock, so that the signal cannot come between
	 * the test and the wait. A wait that ends otherwise than by the
	 * signal (ETIMEDOUT, or an error) ends the tick. */
	while (!atomic_load(&stop) && !ret)
		ret = pthread_cond_timedwait(&wake, &wake_lock, &until);
	stopping = atomic_load(&stop);
	pthread_mutex_unlock(&wake_lock);
	return stopping;
}

/* The wait's clock is CLOCK_MONOTONIC: a change of the wall clock neither
 * stretches nor skips a tick. 0 or -errno. */
static int wake_init(void)
{
	pthread_condattr_t attr;
	int ret;

	ret = pthread_condattr_init(&attr);
	if (ret)
		return -ret;
	ret = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!ret)
		ret = pthread_cond_init(&wake, &attr);
	pthread_condattr_destroy(&attr);
	if (ret)
		return -ret;
	pthread_mutex_init(&wake_lock, NULL);
	return 0;
}

static void *policy_main(void *arg)
{
	const uint64_t tick = shim.env.policy == POLICY_STRESS ? 1000000000ull / shim.env.rate
							       : shim.env.idle_ms * 1000000ull;
	uint64_t last_scan = 0;
	sigset_t all;

	(void)arg;
	/* The program's handlers never run here. SIGSEGV stays open: this
	 * thread may touch memory of its own that it made exclusive, and
	 * libzdev's handler revokes it as on any thread (a blocked SIGSEGV
	 * from a fault would kill the process). */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (shim.env.policy == POLICY_EVICT) {
		heat_init();
		evict_round();	/* clears the bits: the first idle period starts */
	}
	while (!wait_tick(tick)) {
		if (now_ns() - last_scan >= SCAN_NS) {
			ranges_scan(shim.env.min_bytes);
			last_scan = now_ns();
		}
		if (shim.env.policy == POLICY_STRESS)
			stress_step();
		else
			evict_round();
	}
	return NULL;
}

int policy_start(void)
{
	int ret;

	rng = shim.env.seed ? shim.env.seed : 1;
	atomic_store(&stop, false);
	ret = wake_init();
	if (ret)
		return ret;
	atomic_store(&shim.moving, true);
	ret = pthread_create(&thread, NULL, policy_main, NULL);
	if (ret) {
		atomic_store(&shim.moving, false);
		return -ret;
	}
	running = true;
	return 0;
}

void policy_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&wake_lock);
	atomic_store(&stop, true);
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&wake_lock);
	pthread_join(thread, NULL);
	running = false;
	/* No migration in flight and none to come: the program's calls need
	 * the lock no more. Wait for those that took it. */
	pthread_rwlock_wrlock(&shim.as_lock);
	atomic_store(&shim.moving, false);
	pthread_rwlock_unlock(&shim.as_lock);
}

void policy_pause(void)
{
	if (running)
		pthread_rwlock_wrlock(&shim.as_lock);
}

void policy_resume(void)
{
	if (running)
		pthread_rwlock_unlock(&shim.as_lock);
}

static bool restart_in_child;

void policy_forget_in_child(void)
{
	pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

	/* The forking thread held the lock for writing and is ours now, but
	 * the thread that ran the policy is not: nothing moves until it runs
	 * again, and the lock starts afresh. */
	restart_in_child = running;
	running = false;
	atomic_store(&shim.moving, false);
	shim.as_lock = fresh;
}

void policy_restart_in_child(void)
{
	if (!restart_in_child || !shim.dev)
		return;
	rng ^= (uint64_t)getpid() << 32;
	policy_start();
}
