/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_GUP_TEST_H
#define ZDEV_PRELOAD_GUP_TEST_H

/*
 * The kernel's GUP test file, /sys/kernel/debug/gup_test, emulated where the
 * real one cannot be opened: its commands get or pin the pages of a range
 * as the kernel's get_user_pages and pin_user_pages do, which for zdev means
 * a device-private page comes back to system memory (the kernel faults it
 * in), a long-term pin brings a device-coherent page back too, and a plain
 * get leaves a coherent page where it is.
 */

#include <stdbool.h>

#define GUP_TEST_PATH "/sys/kernel/debug/gup_test"

bool gup_test_path(const char *path);

/* Opens the emulated file: a descriptor or -errno. */
int gup_test_open(int oflags);

#endif
