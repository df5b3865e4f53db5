/* SPDX-License-Identifier: MIT */
/* The library's version at run time, against the one a program was built
 * with (ZDEV_VERSION_* in zdev.h). */
#include "config.h"

#include "lib/export.h"
#include "zdev.h"

ZDEV_EXPORT int zdev_version_major(void)
{
	return ZDEV_VERSION_MAJOR;
}

ZDEV_EXPORT int zdev_version_minor(void)
{
	return ZDEV_VERSION_MINOR;
}

ZDEV_EXPORT bool zdev_check_version(int major, int minor)
{
	return ZDEV_CHECK_VERSION(major, minor);
}
