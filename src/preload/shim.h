/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_SHIM_H
#define ZDEV_PRELOAD_SHIM_H

/*
 * libzdev-preload.so: makes an unmodified program a zdev client. shim.c sets
 * it up before main and ends it at exit; interpose.c keeps the managed
 * ranges and the program's SIGSEGV handler in step; policy.c moves pages;
 * stats.c says what happened. See zdev-preload(7).
 */

/* Writes the stats the environment asks for (once; before an exec too). */
void shim_flush_stats(void);

#endif
