/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_TRACE_FORMAT_H
#define ZDEV_TRACE_FORMAT_H

/*
 * What zdevd's trace file and its readers (zdevctl plot, zdev-run --plot)
 * agree on beyond the Chrome Trace Event format itself (zdevd(8), TRACE).
 */

/* Device tracks are pseudo-processes numbered above every real pid
 * (PID_MAX_LIMIT is 2^22). */
#define TRACE_DEVICE_PID(dev)	(4194304 + 1 + (int)(dev))

#endif
