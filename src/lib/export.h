/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_EXPORT_H
#define ZDEV_LIB_EXPORT_H

/* libzdev builds with -fvisibility=hidden; only what is marked is exported. */
#define ZDEV_EXPORT __attribute__((visibility("default")))

#endif
