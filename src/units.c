/* SPDX-License-Identifier: MIT */
/* Sizes and counts on the command line, and sizes for people. See units.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "units.h"

static const char suffixes[] = "KMGT";

__attribute__((format(printf, 3, 4)))
static void say(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !why_len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

/*
 * The digits at the start of s into *v, *end after them: 0, -EINVAL when s
 * does not start with a digit, -ERANGE past 64 bits. Not strtoull(), which
 * takes leading blanks and signs and turns "-1" into 2^64 - 1.
 */
static int parse_digits(const char *s, uint64_t *v, const char **end)
{
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned int digit = (unsigned int)(*s - '0');

		if (n > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		n = n * 10 + digit;
	}
	*v = n;
	*end = s;
	return 0;
}

/* A suffix's power of 1024 (0 for none), or -EINVAL. */
static int parse_suffix(const char *s)
{
	const char *at;

	if (!*s)
		return 0;
	at = memchr(suffixes, toupper((unsigned char)s[0]), sizeof(suffixes) - 1);
	if (!at || (s[1] && strcasecmp(s + 1, "iB")))
		return -EINVAL;
	return (int)(at - suffixes) + 1;
}

void units_format_exact(char *buf, size_t len, uint64_t bytes)
{
	int power = 0;

	while (bytes && power < (int)sizeof(suffixes) - 1 && !(bytes & 1023)) {
		bytes >>= 10;
		power++;
	}
	if (power)
		snprintf(buf, len, "%llu%c", (unsigned long long)bytes, suffixes[power - 1]);
	else
		snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

/* The rule's complaint about v, or 0 when v keeps it. */
static int check_rule(uint64_t v, const struct size_rule *rule, char *why, size_t why_len)
{
	char limit[UNITS_FORMAT_MAX];

	if (!v && rule->zero_ok)
		return 0;
	if (v < rule->min || !v) {
		units_format_exact(limit, sizeof(limit), rule->min ? rule->min : 1);
		say(why, why_len, "must be at least %s%s", limit, rule->zero_ok ? " (or 0)" : "");
		return -ERANGE;
	}
	if (rule->max && v > rule->max) {
		units_format_exact(limit, sizeof(limit), rule->max);
		say(why, why_len, "must be at most %s", limit);
		return -ERANGE;
	}
	if (rule->multiple > 1 && v % rule->multiple) {
		units_format_exact(limit, sizeof(limit), rule->multiple);
		say(why, why_len, "must be a multiple of %s", limit);
		return -ERANGE;
	}
	return 0;
}

int units_parse_size(const char *s, const struct size_rule *rule, size_t *out, char *why,
		     size_t why_len)
{
	const char *end;
	uint64_t v;
	int power, ret;

	ret = parse_digits(s, &v, &end);
	if (ret == -ERANGE)
		goto too_large;
	power = ret ? ret : parse_suffix(end);
	if (power < 0) {
		say(why, why_len, "not a size (a number of bytes, with K, M, G or T)");
		return -EINVAL;
	}
	if (v > (UINT64_MAX >> (10 * power)))
		goto too_large;
	v <<= 10 * power;
#if SIZE_MAX < UINT64_MAX
	if (v > SIZE_MAX)
		goto too_large;
#endif
	ret = check_rule(v, rule, why, why_len);
	if (ret)
		return ret;
	*out = (size_t)v;
	return 0;
too_large:
	if (rule->max)
		return check_rule(UINT64_MAX, rule, why, why_len);
	say(why, why_len, "too large");
	return -ERANGE;
}

int units_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
		      size_t why_len)
{
	const char *end;
	uint64_t v;
	int ret;

	ret = parse_digits(s, &v, &end);
	if (!ret && *end)
		ret = -EINVAL;
	if (ret == -EINVAL) {
		say(why, why_len, "not a count");
		return ret;
	}
	if (ret || v < min || v > max) {
		if (min)
			say(why, why_len, "must be %llu to %llu", (unsigned long long)min,
			    (unsigned long long)max);
		else
			say(why, why_len, "must be at most %llu", (unsigned long long)max);
		return -ERANGE;
	}
	*out = v;
	return 0;
}

void units_format_size(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	uint64_t unit = 1024;
	int u = 0;
	double v;

	if (bytes < 1024) {
		snprintf(buf, len, "%llu byte%s", (unsigned long long)bytes, bytes == 1 ? "" : "s");
		return;
	}
	while (u < 5 && bytes / unit >= 1024) {
		unit <<= 10;
		u++;
	}
	if (!(bytes % unit)) {
		snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / unit), units[u]);
		return;
	}
	v = (double)bytes / (double)unit;
	/* What rounds up to 1024.0 of a unit is 1.0 of the next. */
	if (v >= 1023.95 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}
