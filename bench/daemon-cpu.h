/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_BENCH_DAEMON_CPU_H
#define ZDEV_BENCH_DAEMON_CPU_H

#include <sys/types.h>

/* CPU time (user + system) a process has used so far, in seconds. */
double process_cpu_seconds(pid_t pid);

#endif
