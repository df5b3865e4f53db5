/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_BENCH_DAEMON_CPU_H
#define ZDEV_BENCH_DAEMON_CPU_H

#include <sys/types.h>

/* CPU time (user + system) a process has used so far, in seconds. */
double process_cpu_seconds(pid_t pid);
/* A field of /proc/PID/status given in kB (VmRSS, RssAnon, ...), or -1. */
double process_status_kib(pid_t pid, const char *field);

#endif
