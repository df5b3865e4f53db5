/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_FAULT_OVERHEAD_H
#define ZDEV_ZDEVD_FAULT_OVERHEAD_H

#include <stdint.h>

/*
 * What a CPU fault served through a userfaultfd costs its thread beyond the
 * handler's own work: the kernel's delivery of the fault to the handler
 * and the faulting thread's wake-up, which zdevd cannot see of a client's
 * fault. Measured on faults of zdevd's own, the fastest of a few dozen
 * (so that a client's fault, delivered through zdevd's event loop, is
 * hardly ever faster): the fault model counts a fault's time from when it
 * was raised, estimated as when zdevd took it up less this. 0 when no
 * userfaultfd could be made for the measurement.
 */
uint64_t fault_overhead_measure(void);

#endif
