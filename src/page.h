/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PAGE_H
#define ZDEV_PAGE_H

/*
 * Pages and windows, for zdevd, libzdev, the tests and the benchmarks.
 *
 * zdev moves 4 KiB base pages. A window is the 2 MiB one PMD maps: the
 * granule of uffd registration, of a device THP and of the pool's blocks.
 * A vpn is an address shifted down by PG_SHIFT.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_SHIFT	12
#define PG_SIZE		(1ul << PG_SHIFT)
#define WIN_SHIFT	21
#define WIN_SIZE	(1ul << WIN_SHIFT)
#define WIN_PAGES	(1ul << (WIN_SHIFT - PG_SHIFT))

static inline uint64_t pg_vpn(uint64_t addr)
{
	return addr >> PG_SHIFT;
}

static inline uint64_t pg_addr(uint64_t vpn)
{
	return vpn << PG_SHIFT;
}

static inline uint64_t pg_up(uint64_t addr)
{
	return (addr + PG_SIZE - 1) & ~(PG_SIZE - 1);
}

static inline uint64_t win_down(uint64_t addr)
{
	return addr & ~(WIN_SIZE - 1);
}

static inline uint64_t win_up(uint64_t addr)
{
	return (addr + WIN_SIZE - 1) & ~(WIN_SIZE - 1);
}

/* The first vpn of the window holding vpn. */
static inline uint64_t win_of(uint64_t vpn)
{
	return vpn & ~(uint64_t)(WIN_PAGES - 1);
}

/*
 * Runs of selected pages. A walk starts with *start = *end = 0 and goes on
 * from the end of the last run:
 *
 *	for (uint64_t s = 0, e = 0; run_next(sel, n, &s, &e);)
 *		... pages [s, e) are selected ...
 */

/* Whether page i belongs to the run that starts at first; with i == first,
 * whether a run may start at i. */
typedef bool (*run_joins_fn)(const void *ctx, uint64_t first, uint64_t i);

/* The next run [*start, *end) of [*end, n) by joins(); false when none is left. */
static inline bool run_next_by(uint64_t n, uint64_t *start, uint64_t *end, run_joins_fn joins,
			       const void *ctx)
{
	uint64_t i = *end;

	while (i < n && !joins(ctx, i, i))
		i++;
	if (i == n)
		return false;
	*start = i;
	while (++i < n && joins(ctx, *start, i))
		;
	*end = i;
	return true;
}

static inline bool run_joins_nonzero(const void *ctx, uint64_t first, uint64_t i)
{
	(void)first;
	return ((const uint8_t *)ctx)[i] != 0;
}

/* The next run of pages whose byte in sel is non-zero. */
static inline bool run_next(const uint8_t *sel, uint64_t n, uint64_t *start, uint64_t *end)
{
	return run_next_by(n, start, end, run_joins_nonzero, sel);
}

#endif
