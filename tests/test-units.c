/* SPDX-License-Identifier: MIT */
/* Sizes and counts as the options take them, and sizes for people
 * (src/units.c): good values, every kind of bad one, the boundaries. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "units.h"
#include "zdevd_limits.h"

static const struct size_rule any = { .zero_ok = true };
static const struct size_rule nonzero = { 0 };
static const struct size_rule memory = ZDEVD_MEMORY_RULE;
static const struct size_rule client_memory = ZDEVD_CLIENT_MEMORY_RULE;

/* s parses by rule to want. */
static void size_is(const char *s, const struct size_rule *rule, uint64_t want)
{
	char why[UNITS_WHY_MAX] = "";
	size_t got = 12345;

	ck_assert_msg(units_parse_size(s, rule, &got, why, sizeof(why)) == 0, "'%s': %s", s, why);
	ck_assert_msg(got == want, "'%s': %zu, expected %llu", s, got, (unsigned long long)want);
}

/* s is refused with err and a message that says why, and *out is left. */
static void size_refused(const char *s, const struct size_rule *rule, int err, const char *why_has)
{
	char why[UNITS_WHY_MAX] = "";
	size_t got = 12345;
	int ret = units_parse_size(s, rule, &got, why, sizeof(why));

	ck_assert_msg(ret == err, "'%s': %d (%s), expected %d", s, ret, why, err);
	ck_assert_msg(got == 12345, "'%s': written though refused", s);
	ck_assert_msg(strstr(why, why_has), "'%s': '%s' lacks '%s'", s, why, why_has);
}

static void count_refused(const char *s, uint64_t min, uint64_t max, int err, const char *why_has)
{
	char why[UNITS_WHY_MAX] = "";
	uint64_t got = 12345;
	int ret = units_parse_count(s, min, max, &got, why, sizeof(why));

	ck_assert_msg(ret == err, "'%s': %d (%s), expected %d", s, ret, why, err);
	ck_assert_uint_eq(got, 12345);
	ck_assert_msg(strstr(why, why_has), "'%s': '%s' lacks '%s'", s, why, why_has);
}

static const char *formatted(uint64_t bytes, bool exact)
{
	static char buf[UNITS_FORMAT_MAX];

	if (exact)
		units_format_exact(buf, sizeof(buf), bytes);
	else
		units_format_size(buf, sizeof(buf), bytes);
	return buf;
}

START_TEST(test_size_suffixes)
{
	size_is("0", &any, 0);
	size_is("4097", &any, 4097);
	size_is("1k", &any, 1024);
	size_is("1K", &any, 1024);
	size_is("3M", &any, 3ull << 20);
	size_is("2g", &any, 2ull << 30);
	size_is("1T", &any, 1ull << 40);
	size_is("1t", &any, 1ull << 40);
	size_is("64KiB", &any, 64ull << 10);
	size_is("64kib", &any, 64ull << 10);
	size_is("5GiB", &any, 5ull << 30);
	size_is("007M", &any, 7ull << 20);
	/* the default zdevd(8) gives --client-registered */
	size_is("1T", &(struct size_rule)ZDEVD_CLIENT_REGISTERED_RULE,
		ZDEVD_CLIENT_REGISTERED_DEFAULT);
}
END_TEST

START_TEST(test_size_not_a_number)
{
	static const char *const bad[] = {
		"", "-1", "-0", "+5", " 5", "5 ", "\t5", "M", "K1", "1X", "1MB", "1Mi", "1MiBs",
		"1.5G", "1,000", "0x10", "1e6", "1 M", "1MM", "5-",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		size_refused(bad[i], &any, -EINVAL, "not a size");
}
END_TEST

START_TEST(test_size_overflow)
{
	/* past 64 bits in digits, and once shifted by the suffix */
	size_refused("18446744073709551616", &any, -ERANGE, "too large");
	size_refused("99999999999999999999999", &any, -ERANGE, "too large");
	size_refused("16777216T", &any, -ERANGE, "too large");
	size_refused("17179869184G", &any, -ERANGE, "too large");
	size_is("18446744073709551615", &any, UINT64_MAX);
	size_is("16777215T", &any, 16777215ull << 40);
	/* with a maximum, the message gives it */
	size_refused("16777216T", &memory, -ERANGE, "at most 8T");
}
END_TEST

START_TEST(test_size_rules)
{
	size_refused("0", &memory, -ERANGE, "at least 2M");
	size_refused("1", &memory, -ERANGE, "at least 2M");
	size_refused("2047K", &memory, -ERANGE, "at least 2M");
	size_is("2M", &memory, 2ull << 20);
	size_is("2048K", &memory, 2ull << 20);
	size_refused("3M", &memory, -ERANGE, "multiple of 2M");
	size_refused("2097153", &memory, -ERANGE, "multiple of 2M");
	size_is("8T", &memory, 8ull << 40);
	size_refused("8589936640M", &memory, -ERANGE, "at most 8T");
	size_refused("9T", &memory, -ERANGE, "at most 8T");
	/* 0 means "no limit" where the rule says so, and only 0 */
	size_is("0", &client_memory, 0);
	size_is("0K", &client_memory, 0);
	size_is("4K", &client_memory, 4096);
	size_refused("1", &client_memory, -ERANGE, "at least 4K (or 0)");
	size_refused("6K", &client_memory, -ERANGE, "multiple of 4K");
	/* no rule but that 0 is no size */
	size_is("1", &nonzero, 1);
	size_refused("0", &nonzero, -ERANGE, "at least 1");
}
END_TEST

START_TEST(test_size_why_optional)
{
	size_t got;

	ck_assert_int_eq(units_parse_size("x", &any, &got, NULL, 0), -EINVAL);
	ck_assert_int_eq(units_parse_size("0", &memory, &got, NULL, 0), -ERANGE);
}
END_TEST

START_TEST(test_counts)
{
	uint64_t n = 0;
	char why[UNITS_WHY_MAX];

	ck_assert_int_eq(units_parse_count("1", 1, 8, &n, why, sizeof(why)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(units_parse_count("8", 1, 8, &n, why, sizeof(why)), 0);
	ck_assert_uint_eq(n, 8);
	ck_assert_int_eq(units_parse_count("0", 0, 5, &n, why, sizeof(why)), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(units_parse_count("18446744073709551615", 0, UINT64_MAX, &n, why,
					   sizeof(why)), 0);
	ck_assert_uint_eq(n, UINT64_MAX);

	count_refused("0", 1, 8, -ERANGE, "must be 1 to 8");
	count_refused("9", 1, 8, -ERANGE, "must be 1 to 8");
	count_refused("1048577", 0, 1048576, -ERANGE, "must be at most 1048576");
	count_refused("18446744073709551616", 0, UINT64_MAX, -ERANGE,
		      "at most 18446744073709551615");
	count_refused("99999999999999999999999", 1, 8, -ERANGE, "must be 1 to 8");
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "1K", "0x1", "1.0", "one" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		count_refused(bad[i], 0, 100, -EINVAL, "not a count");
}
END_TEST

START_TEST(test_format_exact)
{
	ck_assert_str_eq(formatted(0, true), "0");
	ck_assert_str_eq(formatted(1, true), "1");
	ck_assert_str_eq(formatted(4097, true), "4097");
	ck_assert_str_eq(formatted(4096, true), "4K");
	ck_assert_str_eq(formatted(2ull << 20, true), "2M");
	ck_assert_str_eq(formatted(3ull << 29, true), "1536M");
	ck_assert_str_eq(formatted(8ull << 40, true), "8T");
	ck_assert_str_eq(formatted(1ull << 50, true), "1024T");
	ck_assert_str_eq(formatted(UINT64_MAX, true), "18446744073709551615");
}
END_TEST

START_TEST(test_format_size)
{
	ck_assert_str_eq(formatted(0, false), "0 bytes");
	ck_assert_str_eq(formatted(1, false), "1 byte");
	ck_assert_str_eq(formatted(1023, false), "1023 bytes");
	ck_assert_str_eq(formatted(1024, false), "1 KiB");
	ck_assert_str_eq(formatted(1536, false), "1.5 KiB");
	ck_assert_str_eq(formatted(256ull << 20, false), "256 MiB");
	ck_assert_str_eq(formatted(3ull << 29, false), "1.5 GiB");
	ck_assert_str_eq(formatted(1023ull << 20, false), "1023 MiB");
	ck_assert_str_eq(formatted((1ull << 30) - 1, false), "1.0 GiB");
	ck_assert_str_eq(formatted((1ull << 20) + 1, false), "1.0 MiB");
	ck_assert_str_eq(formatted(1ull << 40, false), "1 TiB");
	ck_assert_str_eq(formatted(1ull << 60, false), "1 EiB");
	ck_assert_str_eq(formatted(UINT64_MAX, false), "16.0 EiB");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("units");

	check_add_case(s, "size_suffixes", test_size_suffixes, NULL, NULL, 0);
	check_add_case(s, "size_not_a_number", test_size_not_a_number, NULL, NULL, 0);
	check_add_case(s, "size_overflow", test_size_overflow, NULL, NULL, 0);
	check_add_case(s, "size_rules", test_size_rules, NULL, NULL, 0);
	check_add_case(s, "size_why_optional", test_size_why_optional, NULL, NULL, 0);
	check_add_case(s, "counts", test_counts, NULL, NULL, 0);
	check_add_case(s, "format_exact", test_format_exact, NULL, NULL, 0);
	check_add_case(s, "format_size", test_format_size, NULL, NULL, 0);
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
