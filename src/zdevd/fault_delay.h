/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_FAULT_DELAY_H
#define ZDEV_ZDEVD_FAULT_DELAY_H

/*
 * CPU faults on a device with a cost model (devmodel.h), held until the
 * model's time has passed. The event loop serves such a fault as any other
 * but leaves its threads asleep (uffd_dev_fault's held range); a thread of
 * its own wakes them at the fault's deadline: the time the loop took the
 * fault up, plus the device's fault latency and its page's transfer over
 * the link. So a fault's wait holds up other faults little, where each
 * CPU fault of a real device is served in its own faulting thread: a
 * remainder of up to 50 µs is waited out on the loop, which serves every
 * client, for a wake from another thread costs more than that on a
 * virtual machine; a longer one is left to the thread.
 */

#include <stdint.h>

#include "uffd_dev.h"
#include "zdevd/zdevd.h"

/* When some device has a model: the sleep's overshoot measured
 * (devmodel_calibrate) and the thread started. 0 (also when no device has
 * one), or -errno. */
int fault_delay_start(struct zdevd *d);
/* Every held fault is woken now, and the thread ends; a fault held later is
 * woken at once. */
void fault_delay_stop(struct zdevd *d);
void fault_delay_free(struct zdevd *d);

/* A CPU fault of mm's thread tid at addr, taken up at t0, whose threads
 * went on at t1: into zdevd's and mm's fault histograms and the trace. */
void fault_record(struct zdevd *d, struct zmm *mm, pid_t tid, uint64_t addr,
		  const struct uffd_fault_done *done, uint64_t t0, uint64_t t1);
/* The loop served a fault whose threads wait (done->held.len): they are
 * woken at its deadline, and the fault recorded then (fault_record). */
void fault_delay_hold(struct zdevd *d, struct zmm *mm, pid_t tid, uint64_t addr,
		      const struct uffd_fault_done *done, uint64_t t0);

#endif
