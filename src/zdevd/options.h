/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_OPTIONS_H
#define ZDEV_ZDEVD_OPTIONS_H

#include "zdevd/zdevd.h"

/* Fills cfg with the defaults, then with argv's options. --help prints the
 * usage and exits. 0, or -EINVAL (-ENAMETOOLONG) after a message on stderr. */
int options_parse(int argc, char **argv, struct zdevd_config *cfg);

#endif
