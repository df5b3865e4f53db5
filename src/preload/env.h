/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_ENV_H
#define ZDEV_PRELOAD_ENV_H

/*
 * The shim's configuration, read once from environ at start-up: no getenv,
 * no allocation, so it is safe before libc is fully set up. zdev-preload(7)
 * lists every variable.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum env_policy {
	POLICY_NONE,	/* observe only: nothing moves */
	POLICY_EVICT,	/* pages idle for idle_ms go to the device */
	POLICY_STRESS,	/* pages move and become exclusive at random */
};

struct env {
	char socket[108];		/* ZDEV_SOCKET, "" for the default */
	enum env_policy policy;		/* ZDEV_POLICY */
	uint64_t min_bytes;		/* ZDEV_MIN_BYTES: smaller mappings are left alone */
	unsigned int idle_ms;		/* ZDEV_IDLE_MS */
	unsigned int rate;		/* ZDEV_RATE: stress operations a second */
	bool exclusive;			/* ZDEV_STRESS_EXCLUSIVE: stress grants exclusive access too (default) */
	uint64_t seed;			/* ZDEV_SEED, or one made up at start-up */
	bool seed_given;
	unsigned int device;		/* ZDEV_DEVICE */
	bool require;			/* ZDEV_REQUIRE=1: no zdevd is fatal */
	char stats[256];		/* ZDEV_STATS: "" none, "1" stderr, else a path */
	bool stats_json;		/* ZDEV_STATS_FORMAT=json */
	char stats_dir[256];		/* ZDEV_STATS_DIR: one file a process, for zdev-run */
	bool dmirror;			/* ZDEV_DMIRROR: the kernel's test driver's files (default on) */
};

/* Fills e from environ. A value that does not parse is left at its default
 * and named in *bad (the variable's name, for one warning), else *bad is NULL. */
void env_read(struct env *e, const char **bad);

/* The name of a policy, as ZDEV_POLICY spells it. */
const char *env_policy_name(enum env_policy p);

#endif
