/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "devmodel.h"
#include "lathist.h"
#include "proto.h"
#include "spinlock.h"

/*
 * The presets, with where their numbers come from in zdevd(8), "Device
 * model": a link's achievable bandwidth each way, and a CPU fault's round
 * trip through the driver for one page.
 */
static const struct {
	const char *name;
	struct devmodel_config cfg;
} presets[] = {
	{ "pcie4", { .link_bytes_per_sec = 25000000000ull, .fault_ns = 30000 } },
	{ "pcie5", { .link_bytes_per_sec = 50000000000ull, .fault_ns = 30000 } },
	{ "cxl", { .link_bytes_per_sec = 50000000000ull, .fault_ns = 5000 } },
};

int devmodel_preset(const char *name, struct devmodel_config *out)
{
	for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
		if (!strcmp(name, presets[i].name)) {
			*out = presets[i].cfg;
			return 0;
		}
	}
	return -ENOENT;
}

uint64_t devmodel_transfer_ns(const struct devmodel *m, uint64_t bytes)
{
	const uint64_t bps = m->cfg.link_bytes_per_sec;

	if (!bps)
		return 0;
	/* Rounded up: "at least" the modelled time. */
	return (uint64_t)(((unsigned __int128)bytes * 1000000000u + bps - 1) / bps);
}

uint64_t devmodel_reserve(struct devmodel *m, enum devmodel_dir dir, uint64_t t0, uint64_t bytes)
{
	const uint64_t cost = devmodel_transfer_ns(m, bytes);
	uint64_t free_ns = atomic_load_explicit(&m->link_free_ns[dir], memory_order_relaxed), end;

	/* relaxed: the link's queue orders transfers by time alone, and
	 * publishes nothing else. */
	do
		end = (free_ns > t0 ? free_ns : t0) + cost;
	while (!atomic_compare_exchange_weak_explicit(&m->link_free_ns[dir], &free_ns, end,
						      memory_order_relaxed, memory_order_relaxed));
	return end;
}

/* ---- waiting to a deadline ---- */

static _Atomic uint64_t spin_ns = DEVMODEL_SPIN_MAX_NS;

uint64_t devmodel_spin_ns(void)
{
	return atomic_load_explicit(&spin_ns, memory_order_relaxed);
}

/* The kernel's default timer slack (50 µs) is what makes a short sleep
 * overshoot most: a thread that waits for the model asks for none. */
static void precise_timers(void)
{
	static __thread bool done;

	if (!done) {
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
		done = true;
	}
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

uint64_t devmodel_wait_until(uint64_t deadline)
{
	const uint64_t start = lathist_now_ns(), spin = devmodel_spin_ns();
	uint64_t now = start;

	if (now >= deadline)
		return 0;
	precise_timers();
	if (deadline - now > spin)
		sleep_until(deadline - spin);
	/* At most spin ns, unless the sleep woke early. */
	while ((now = lathist_now_ns()) < deadline)
		cpu_relax();
	return now - start;
}

/* The largest overshoot of a few short sleeps, and a margin: shorter waits
 * than that are spun, longer ones sleep until that much before the end. */
void devmodel_calibrate(void)
{
	enum { ROUNDS = 16, SLEEP_NS = 50000, MARGIN_NS = 5000 };
	uint64_t worst = 0;

	precise_timers();
	for (int i = 0; i < ROUNDS; i++) {
		const uint64_t t0 = lathist_now_ns();
		uint64_t late;

		sleep_until(t0 + SLEEP_NS);
		late = lathist_now_ns() - t0 - SLEEP_NS;
		if (late > worst)
			worst = late;
	}
	worst += MARGIN_NS;
	atomic_store_explicit(&spin_ns, worst < DEVMODEL_SPIN_MAX_NS ? worst : DEVMODEL_SPIN_MAX_NS,
			      memory_order_relaxed);
}

/* ---- what a thread moved ---- */

static __thread struct {
	bool counting;
	uint64_t pages[ZDEV_MAX_DEVICES][DEVMODEL_DIRS];
} moved;

void devmodel_begin(void)
{
	memset(&moved, 0, sizeof(moved));
	moved.counting = true;
}

void devmodel_note(unsigned int dev, enum devmodel_dir dir, uint64_t pages)
{
	if (moved.counting && dev < ZDEV_MAX_DEVICES)
		moved.pages[dev][dir] += pages;
}

void devmodel_moved(unsigned int dev, uint64_t pages[DEVMODEL_DIRS])
{
	for (int d = 0; d < DEVMODEL_DIRS; d++)
		pages[d] = dev < ZDEV_MAX_DEVICES ? moved.pages[dev][d] : 0;
}

void devmodel_end(void)
{
	moved.counting = false;
}
