/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_BENCH_FIGURE_H
#define ZDEV_BENCH_FIGURE_H

#include <stdint.h>

/* Prints a figure as one line (docs/architecture.md, "Tests and benchmarks"):
 * FIGURE <name> <value> <unit> baseline <value> <unit> ratio <value/baseline> */
void figure(const char *name, double value, const char *unit, double baseline,
	    const char *baseline_unit);

/* Monotonic time in nanoseconds. */
uint64_t now_ns(void);

/* Pins the calling thread to one CPU (modulo the CPUs online); 0 or -errno. */
int pin_to_cpu(int cpu);

/* The median of n values (sorts them). */
double median(double *v, int n);

#endif
