/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_DEVMODEL_H
#define ZDEV_DEVMODEL_H

/*
 * A device's cost model (zdevd(8), "Device model"): the bandwidth of the
 * link between it and system memory, and the latency of a CPU fault on one
 * of its pages. A migration takes at least its bytes over the link, a CPU
 * fault at least the fault latency and its page over the link: zdevd
 * measures what the work really took and waits for the rest. Off (all
 * zeros) by default, and then nothing waits.
 *
 * The link is full duplex, one queue each way: a migration's transfer
 * starts when the one before it in the same direction ends, so that
 * concurrent migrations share the bandwidth rather than each having all of
 * it. A fault's page does not queue (it is a small transfer next to the
 * fault's latency).
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum devmodel_dir { DEVMODEL_TO_DEVICE, DEVMODEL_TO_SYSTEM, DEVMODEL_DIRS };

struct devmodel_config {
	uint64_t link_bytes_per_sec;	/* 0: the link costs nothing */
	uint64_t fault_ns;		/* 0: a fault costs only its page's transfer */
};

struct devmodel {
	struct devmodel_config cfg;
	/* CLOCK_MONOTONIC ns when each direction's last transfer ends */
	_Atomic uint64_t link_free_ns[DEVMODEL_DIRS];
	/* the time the model added, over every request and fault */
	_Atomic uint64_t added_ns;
};

/* A preset's numbers ("pcie4", "pcie5", "cxl"): 0, or -ENOENT. */
int devmodel_preset(const char *name, struct devmodel_config *out);

static inline bool devmodel_on(const struct devmodel *m)
{
	return m->cfg.link_bytes_per_sec || m->cfg.fault_ns;
}

/* The nanoseconds bytes take on m's link (0 without a link model). */
uint64_t devmodel_transfer_ns(const struct devmodel *m, uint64_t bytes);

/* bytes go over m's link in direction dir, as a transfer that could start
 * at t0: the time (CLOCK_MONOTONIC ns) it ends, after those queued before. */
uint64_t devmodel_reserve(struct devmodel *m, enum devmodel_dir dir, uint64_t t0, uint64_t bytes);

/*
 * Waits until deadline (CLOCK_MONOTONIC ns): an absolute sleep to a little
 * before it, then a spin on the clock for the rest, for a sleep overshoots
 * by tens of µs. The spin is at most devmodel_spin_ns(). Returns the
 * nanoseconds waited.
 */
uint64_t devmodel_wait_until(uint64_t deadline);
/* How much before a deadline a sleep ends, for the spin to take over:
 * measured once (devmodel_calibrate), at most DEVMODEL_SPIN_MAX_NS. */
uint64_t devmodel_spin_ns(void);
void devmodel_calibrate(void);
#define DEVMODEL_SPIN_MAX_NS 100000ull

/*
 * What the calling thread moved, per device index and direction: the sites
 * that count pages moved note them here too. A thread counts only between
 * devmodel_begin() (which starts from zero) and devmodel_end(); elsewhere a
 * note is the test of a thread-local flag.
 */
void devmodel_begin(void);
void devmodel_note(unsigned int dev, enum devmodel_dir dir, uint64_t pages);
/* The pages noted for dev in each direction since devmodel_begin(). */
void devmodel_moved(unsigned int dev, uint64_t pages[DEVMODEL_DIRS]);
void devmodel_end(void);

#endif
