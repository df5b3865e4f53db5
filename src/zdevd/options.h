/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_OPTIONS_H
#define ZDEV_ZDEVD_OPTIONS_H

#include "zdevd/zdevd.h"

/* zdevd's exit status: zdevd(8), EXIT STATUS. */
#define ZDEVD_EXIT_FAILURE 1	/* it could not start, or failed while serving */
#define ZDEVD_EXIT_USAGE 2	/* a bad command line */

/* Fills cfg with the defaults, then with argv's options; --help and
 * --version print and exit 0. 0, or -EINVAL (-ENAMETOOLONG) after a
 * message on stderr. */
int options_parse(int argc, char **argv, struct zdevd_config *cfg);

#endif
