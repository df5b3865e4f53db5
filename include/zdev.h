/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_H
#define ZDEV_H

/*
 * libzdev: the client library of zdev, a user-space emulator of the Linux
 * kernel's HMM / ZONE_DEVICE device memory.
 *
 * Conventions: functions return 0 (or a count) on success and a negative errno
 * on failure; none prints or exits.
 */

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZDEV_VERSION_MAJOR 0
#define ZDEV_VERSION_MINOR 1

/* True when the headers a program was built with are at least major.minor. */
#define ZDEV_CHECK_VERSION(major, minor) \
	(ZDEV_VERSION_MAJOR > (major) || \
	 (ZDEV_VERSION_MAJOR == (major) && ZDEV_VERSION_MINOR >= (minor)))

/* The version of the library the program runs with. */
int zdev_version_major(void);
int zdev_version_minor(void);

/* True when the library the program runs with is at least major.minor. */
bool zdev_check_version(int major, int minor);

#ifdef __cplusplus
}
#endif

#endif
