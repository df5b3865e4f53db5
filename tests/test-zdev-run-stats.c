/* SPDX-License-Identifier: MIT */
/* zdev-run's statistics files (src/tools/run_stats.c): parsing, merging,
 * percentiles, and reading a directory of them. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-run.h"
#include "tools/run_stats.h"

#define ZEROS_38 "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"

static int parse(const char *text, struct run_stats_proc *p)
{
	return run_stats_parse(text, strlen(text), p);
}

START_TEST(test_parse_full)
{
	struct run_stats_proc p;
	const char *text =
		"{\"pid\":4242,\"policy\":\"stress\",\"seed\":7,\"cpu_faults\":12,\"device_faults\":3,"
		"\"pages_to_device\":512,\"pages_to_system\":260,\"exclusive_grants\":4,"
		"\"exclusive_revokes\":1,\"peak_device_pages\":500,\"fault_max_ns\":91000,"
		"\"fault_hist\":[1,2," ZEROS_38 "]}\n";

	ck_assert_int_eq(parse(text, &p), 0);
	ck_assert_uint_eq(p.pid, 4242);
	ck_assert_str_eq(p.policy, "stress");
	ck_assert_uint_eq(p.seed, 7);
	ck_assert_uint_eq(p.cpu_faults, 12);
	ck_assert_uint_eq(p.device_faults, 3);
	ck_assert_uint_eq(p.pages_to_device, 512);
	ck_assert_uint_eq(p.pages_to_system, 260);
	ck_assert_uint_eq(p.exclusive_grants, 4);
	ck_assert_uint_eq(p.exclusive_revokes, 1);
	ck_assert_uint_eq(p.peak_device_pages, 500);
	ck_assert_uint_eq(p.fault_max_ns, 91000);
	ck_assert_uint_eq(p.fault_hist[0], 1);
	ck_assert_uint_eq(p.fault_hist[1], 2);
	ck_assert_uint_eq(p.fault_hist[39], 0);
}
END_TEST

START_TEST(test_parse_unknown_keys_and_spacing)
{
	struct run_stats_proc p;
	const char *text =
		" \r\n{ \"future\" : {\"a\":[1,-2.5e+3,{\"b\":null}],\"c\":\"x\\\"}\\u00e9\"} ,\n"
		"\t\"cpu_faults\" : 9 , \"ok\":true,\"no\":false,\"f\":-0.5,\"s\":\"\\\\\\/\\b\\f\\n\\r\\t\","
		"\"a_key_that_is_longer_than_any_buffer_could_hold_cpu_faults\":1} \n";

	ck_assert_int_eq(parse(text, &p), 0);
	ck_assert_uint_eq(p.cpu_faults, 9);
}
END_TEST

START_TEST(test_parse_missing_keys_are_zero)
{
	struct run_stats_proc p;

	memset(&p, 0xff, sizeof(p));
	ck_assert_int_eq(parse("{\"pages_to_device\":5}", &p), 0);
	ck_assert_uint_eq(p.pages_to_device, 5);
	ck_assert_uint_eq(p.cpu_faults, 0);
	ck_assert_uint_eq(p.pid, 0);
	ck_assert_str_eq(p.policy, "");
	for (int i = 0; i < RUN_STATS_HIST_BUCKETS; i++)
		ck_assert_uint_eq(p.fault_hist[i], 0);
	ck_assert_int_eq(parse("{}", &p), 0);
	ck_assert_int_eq(parse("{\"fault_hist\":[]}", &p), 0);
}
END_TEST

START_TEST(test_parse_large_counters)
{
	struct run_stats_proc p;

	ck_assert_int_eq(parse("{\"cpu_faults\":18446744073709551615}", &p), 0);
	ck_assert_uint_eq(p.cpu_faults, UINT64_MAX);
	ck_assert_int_eq(parse("{\"cpu_faults\":18446744073709551616}", &p), -ERANGE);
	ck_assert_int_eq(parse("{\"cpu_faults\":99999999999999999999999}", &p), -ERANGE);
	ck_assert_int_eq(parse("{\"fault_hist\":[18446744073709551616]}", &p), -ERANGE);
}
END_TEST

START_TEST(test_parse_long_histogram_folds)
{
	struct run_stats_proc p;

	ck_assert_int_eq(parse("{\"fault_hist\":[" ZEROS_38 ",0,1,2,3]}", &p), 0);
	ck_assert_uint_eq(p.fault_hist[38], 0);
	ck_assert_uint_eq(p.fault_hist[39], 6);
}
END_TEST

START_TEST(test_parse_malformed)
{
	static const char *const bad[] = {
		"",
		"   ",
		"[]",
		"{",
		"{\"pid\":",
		"{\"pid\":1",
		"{\"pid\":1,}",
		"{\"pid\" 1}",
		"{pid:1}",
		"{\"pid\":1}{\"pid\":2}",
		"{\"pid\":1} x",
		"{\"cpu_faults\":-1}",
		"{\"cpu_faults\":1.5}",
		"{\"cpu_faults\":1e3}",
		"{\"cpu_faults\":\"12\"}",
		"{\"cpu_faults\":null}",
		"{\"policy\":3}",
		"{\"fault_hist\":3}",
		"{\"fault_hist\":[1,,2]}",
		"{\"fault_hist\":[1,\"2\"]}",
		"{\"fault_hist\":[1,2}",
		"{\"x\":tru}",
		"{\"x\":[1,2}",
		"{\"x\":\"unterminated}",
		"{\"x\":\"bad escape \\q\"}",
		"{\"x\":\"bad unicode \\u12g4\"}",
		"{\"x\":\"raw\ncontrol\"}",
		"{\"x\":-}",
		"{\"x\":1.}",
		"{\"x\":1e}",
	};
	struct run_stats_proc p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], &p) < 0, "accepted: %s", bad[i]);
	/* A NUL inside the text is not white space. */
	ck_assert_int_lt(run_stats_parse("{}\0", 3, &p), 0);
}
END_TEST

START_TEST(test_parse_deep_nesting)
{
	char text[1024];
	struct run_stats_proc p;
	int n = snprintf(text, sizeof(text), "{\"x\":");

	for (int i = 0; i < 200; i++)
		text[n++] = '[';
	text[n] = '\0';
	ck_assert_int_lt(parse(text, &p), 0);
	ck_assert_int_eq(parse("{\"x\":[[[[[[[[1]]]]]]]],\"pid\":2}", &p), 0);
	ck_assert_uint_eq(p.pid, 2);
}
END_TEST

static struct run_stats_proc proc(uint64_t pid, uint64_t faults_in_bucket10, uint64_t max_ns)
{
	struct run_stats_proc p = { .pid = pid, .cpu_faults = faults_in_bucket10,
				    .pages_to_device = 10, .peak_device_pages = 100,
				    .fault_max_ns = max_ns };

	p.fault_hist[10] = faults_in_bucket10;
	return p;
}

START_TEST(test_merge_sums_and_processes)
{
	struct run_stats s = { 0 };
	struct run_stats_proc a = proc(10, 3, 1500), b = proc(11, 1, 2000), c = proc(10, 1, 1100);

	ck_assert_int_eq(run_stats_add(&s, &a), 0);
	ck_assert_int_eq(run_stats_add(&s, &b), 0);
	/* The same pid after an exec: one more file, not one more process. */
	ck_assert_int_eq(run_stats_add(&s, &c), 0);
	ck_assert_uint_eq(s.files, 3);
	ck_assert_uint_eq(s.processes, 2);
	ck_assert_uint_eq(s.cpu_faults, 5);
	ck_assert_uint_eq(s.pages_to_device, 30);
	ck_assert_uint_eq(s.peak_device_pages, 300);
	ck_assert_uint_eq(run_stats_bytes(s.peak_device_pages), 300 * 4096);
	ck_assert_uint_eq(s.fault_hist[10], 5);
	ck_assert_uint_eq(s.fault_max_ns, 2000);
	run_stats_free(&s);
}
END_TEST

START_TEST(test_merge_many_pids)
{
	struct run_stats s = { 0 };

	for (uint64_t i = 0; i < 1000; i++) {
		struct run_stats_proc p = proc((i * 7919) % 1000 + 1, 0, 0);

		ck_assert_int_eq(run_stats_add(&s, &p), 0);
	}
	for (uint64_t i = 1; i <= 1000; i += 3) {
		struct run_stats_proc p = proc(i, 0, 0);

		ck_assert_int_eq(run_stats_add(&s, &p), 0);
	}
	ck_assert_uint_eq(s.processes, 1000);
	for (size_t i = 1; i < s.processes; i++)
		ck_assert_uint_lt(s.pids[i - 1], s.pids[i]);
	run_stats_free(&s);
}
END_TEST

START_TEST(test_merge_saturates)
{
	struct run_stats s = { 0 };
	struct run_stats_proc p = { .pid = 1, .cpu_faults = UINT64_MAX - 1,
				    .peak_device_pages = UINT64_MAX / 2 };

	p.fault_hist[3] = UINT64_MAX;
	ck_assert_int_eq(run_stats_add(&s, &p), 0);
	p.pid = 2;
	ck_assert_int_eq(run_stats_add(&s, &p), 0);
	ck_assert_uint_eq(s.cpu_faults, UINT64_MAX);
	ck_assert_uint_eq(s.fault_hist[3], UINT64_MAX);
	ck_assert_uint_eq(s.peak_device_pages, UINT64_MAX - 1);
	ck_assert_uint_eq(run_stats_bytes(s.peak_device_pages), UINT64_MAX);
	/* Every fault in [8, 16) ns, and no file said how slow the slowest
	 * was: the maximum is what the histogram proves, 8, and caps the
	 * middle of the bucket. */
	ck_assert_uint_eq(s.fault_max_ns, 8);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 50), 8);
	run_stats_free(&s);
}
END_TEST

START_TEST(test_percentiles)
{
	struct run_stats s = { 0 };
	struct run_stats_proc p = { .pid = 1, .fault_max_ns = 1u << 20 };

	ck_assert_uint_eq(run_stats_percentile_ns(&s, 50), 0);
	/* 90 faults in [1024, 2048) ns, 9 in [4096, 8192), 1 in [2^19, 2^20). */
	p.fault_hist[10] = 90;
	p.fault_hist[12] = 9;
	p.fault_hist[19] = 1;
	ck_assert_int_eq(run_stats_add(&s, &p), 0);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 50), 1536);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 90), 1536);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 91), 6144);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 99), 6144);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 100), 786432);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 0), 1536);
	run_stats_free(&s);
}
END_TEST

START_TEST(test_percentile_never_above_max)
{
	struct run_stats s = { 0 };
	struct run_stats_proc p = { .pid = 1, .fault_max_ns = 1100 };

	p.fault_hist[10] = 3;
	ck_assert_int_eq(run_stats_add(&s, &p), 0);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 50), 1100);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 99), 1100);
	run_stats_free(&s);
}
END_TEST

START_TEST(test_max_from_histogram_when_missing)
{
	struct run_stats s = { 0 };
	struct run_stats_proc p = { .pid = 1 };

	p.fault_hist[12] = 1;
	ck_assert_int_eq(run_stats_add(&s, &p), 0);
	ck_assert_uint_eq(s.fault_max_ns, 4096);
	ck_assert_uint_eq(run_stats_percentile_ns(&s, 50), 4096);
	run_stats_free(&s);
}
END_TEST

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_load_dir)
{
	char dir[] = "/tmp/zdev-run-stats-XXXXXX", path[512];
	struct run_stats s = { 0 };

	ck_assert_ptr_nonnull(mkdtemp(dir));
	put_file(dir, "100.a.json", "{\"pid\":100,\"cpu_faults\":2,\"fault_hist\":[0,0,0,0,0,0,0,0,0,0,2]}\n");
	put_file(dir, "101.b.json", "{\"cpu_faults\":3,\"pages_to_system\":7}\n");
	put_file(dir, "100.c.json", "{\"pid\":100,\"cpu_faults\":1}");
	put_file(dir, "102.d.json", "{\"pid\":102,\"cpu_faults\":");
	put_file(dir, "103.e.json", "{\"cpu_faults\":18446744073709551616}");
	put_file(dir, "notes.json", "not read");
	put_file(dir, "104.e.txt", "not read");
	put_file(dir, ".105.f.json", "not read");
	snprintf(path, sizeof(path), "%s/106.dir.json", dir);
	ck_assert_int_eq(mkdir(path, 0700), 0);

	ck_assert_int_eq(run_stats_load_dir(&s, dir), 0);
	ck_assert_uint_eq(s.files, 3);
	ck_assert_uint_eq(s.skipped, 3);
	ck_assert_uint_eq(s.processes, 2);
	ck_assert_uint_eq(s.cpu_faults, 6);
	ck_assert_uint_eq(s.pages_to_system, 7);
	ck_assert_uint_eq(s.fault_hist[10], 2);
	ck_assert_uint_eq(s.pids[0], 100);
	ck_assert_uint_eq(s.pids[1], 101);
	run_stats_free(&s);

	ck_assert_int_eq(rmdir(path), 0);
	for (const char *const *n = (const char *const[]){ "100.a.json", "101.b.json", "100.c.json",
							   "102.d.json", "103.e.json", "notes.json",
							   "104.e.txt", ".105.f.json", NULL };
	     *n; n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		unlink(path);
	}
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(run_stats_load_dir(&s, dir), -ENOENT);
}
END_TEST

START_TEST(test_load_dir_oversized_file)
{
	char dir[] = "/tmp/zdev-run-stats-XXXXXX", path[512];
	struct run_stats s = { 0 };
	char *big = malloc(RUN_STATS_MAX_FILE + 2);

	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(big, ' ', RUN_STATS_MAX_FILE + 1);
	big[0] = '{';
	big[RUN_STATS_MAX_FILE] = '}';
	big[RUN_STATS_MAX_FILE + 1] = '\0';
	put_file(dir, "7.x.json", big);
	ck_assert_int_eq(run_stats_load_dir(&s, dir), 0);
	ck_assert_uint_eq(s.files, 0);
	ck_assert_uint_eq(s.skipped, 1);
	free(big);
	snprintf(path, sizeof(path), "%s/7.x.json", dir);
	unlink(path);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("zdev-run stats");

	check_add_case(s, "parse_full", test_parse_full, NULL, NULL, 0);
	check_add_case(s, "parse_unknown_keys", test_parse_unknown_keys_and_spacing, NULL, NULL, 0);
	check_add_case(s, "parse_missing_keys", test_parse_missing_keys_are_zero, NULL, NULL, 0);
	check_add_case(s, "parse_large_counters", test_parse_large_counters, NULL, NULL, 0);
	check_add_case(s, "parse_long_histogram", test_parse_long_histogram_folds, NULL, NULL, 0);
	check_add_case(s, "parse_malformed", test_parse_malformed, NULL, NULL, 0);
	check_add_case(s, "parse_deep_nesting", test_parse_deep_nesting, NULL, NULL, 0);
	check_add_case(s, "merge", test_merge_sums_and_processes, NULL, NULL, 0);
	check_add_case(s, "merge_many_pids", test_merge_many_pids, NULL, NULL, 0);
	check_add_case(s, "merge_saturates", test_merge_saturates, NULL, NULL, 0);
	check_add_case(s, "percentiles", test_percentiles, NULL, NULL, 0);
	check_add_case(s, "percentile_max", test_percentile_never_above_max, NULL, NULL, 0);
	check_add_case(s, "max_from_histogram", test_max_from_histogram_when_missing, NULL, NULL, 0);
	check_add_case(s, "load_dir", test_load_dir, NULL, NULL, 0);
	check_add_case(s, "load_dir_oversized", test_load_dir_oversized_file, NULL, NULL, 0);
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
