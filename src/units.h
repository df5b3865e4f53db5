/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_UNITS_H
#define ZDEV_UNITS_H

/*
 * Sizes and counts as the programs' options take them, and sizes as they
 * print them.
 *
 * A size is a decimal number of bytes with an optional binary suffix: K, M,
 * G or T (case-insensitive), also spelt KiB, MiB, GiB, TiB. A count is a
 * plain decimal number. No sign, no space, nothing after the number: "-1",
 * "+5", " 5", "5x", "1.5G" and "" are no number at all.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UNITS_KIB (1ull << 10)
#define UNITS_MIB (1ull << 20)
#define UNITS_GIB (1ull << 30)
#define UNITS_TIB (1ull << 40)

/* What a size option accepts. 0 is accepted only when zero_ok (it then
 * means "no limit" to the option); otherwise a size is at least min. max 0:
 * anything that fits in a size_t; multiple 0 or 1: any number of bytes. */
struct size_rule {
	uint64_t min;
	uint64_t max;
	uint64_t multiple;
	bool zero_ok;
};

/* The longest message the parsers write, with its terminating NUL. */
#define UNITS_WHY_MAX 80

/*
 * Parses s by the rule into *out: 0; -EINVAL when s is not a size, -ERANGE
 * when it breaks the rule or does not fit (both with why, a phrase for
 * "PROGRAM: --OPTION: 'S': why", filled in; why may be NULL).
 */
int units_parse_size(const char *s, const struct size_rule *rule, size_t *out, char *why,
		     size_t why_len);

/* Parses a count from min to max into *out: as units_parse_size(). */
int units_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
		      size_t why_len);

/* bytes as an option would take it, with the largest suffix that divides it
 * ("2M", "1T", "4097"): for messages about the limits. */
void units_format_exact(char *buf, size_t len, uint64_t bytes);

/* bytes for people, in the largest binary unit it reaches: "512 bytes",
 * "256 MiB", "1.5 GiB" (one decimal, shown only when the size is not a
 * whole number of the unit). */
void units_format_size(char *buf, size_t len, uint64_t bytes);

/* Room for any units_format_*() result. */
#define UNITS_FORMAT_MAX 32

#endif
