/* SPDX-License-Identifier: MIT */
/* The run-time probe reports what UFFDIO_API says, and what it reports works. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uffd_compat.h"
#include "uffd_probe.h"
#include "check-run.h"

static struct uffd_caps caps;

START_TEST(test_probe_answers_with_the_api)
{
	ck_assert_uint_eq(caps.api, UFFD_API);
	ck_assert(caps.syscall_user || caps.syscall_kernel || caps.devnode);
	/* MISSING faults and copy are as old as userfaultfd itself. */
	ck_assert(caps.ioctls & (1ull << _UFFDIO_REGISTER));
	ck_assert(caps.ioctls & (1ull << _UFFDIO_API));
	/* Fork events are as old, but granted only with CAP_SYS_PTRACE. */
	ck_assert_int_eq(!!(caps.features & UFFD_FEATURE_EVENT_FORK), caps.event_fork);
}
END_TEST

/* The probe's event_fork says what a handshake asking for the feature gets. */
START_TEST(test_event_fork_is_reported_as_granted)
{
	int fd = uffd_create(caps.syscall_kernel || caps.devnode ? 0 : UFFD_USER_MODE_ONLY);
	int ret;

	ck_assert_int_ge(fd, 0);
	ret = uffd_handshake(fd, UFFD_FEATURE_EVENT_FORK, NULL, NULL);
	close(fd);
	if (caps.event_fork)
		ck_assert_int_eq(ret, 0);
	else
		ck_assert_int_eq(ret, -EPERM);
}
END_TEST

START_TEST(test_reported_features_can_be_enabled)
{
	uint64_t got = 0;
	int fd = uffd_create(caps.syscall_kernel || caps.devnode ? 0 : UFFD_USER_MODE_ONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(uffd_handshake(fd, caps.features, &got, NULL), 0);
	ck_assert_uint_eq(got & caps.features, caps.features);
	/* A second handshake on the same uffd is refused. */
	ck_assert_int_eq(uffd_handshake(fd, 0, NULL, NULL), -EINVAL);
	close(fd);
}
END_TEST

START_TEST(test_move_matches_its_feature_bit)
{
	const size_t len = 2 * 4096;
	struct uffdio_register reg = { 0 };
	struct uffdio_move mv = { 0 };
	char *src, *dst;
	int fd, ret;

	fd = uffd_create(caps.syscall_kernel || caps.devnode ? 0 : UFFD_USER_MODE_ONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(uffd_handshake(fd, caps.features & UFFD_FEATURE_MOVE, NULL, NULL), 0);
	src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(src != MAP_FAILED && dst != MAP_FAILED);
	memset(src, 0x5a, len);
	reg.range.start = (uintptr_t)dst;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	ck_assert_int_eq(ioctl(fd, UFFDIO_REGISTER, &reg), 0);
	mv.dst = (uintptr_t)dst;
	mv.src = (uintptr_t)src;
	mv.len = len;
	ret = ioctl(fd, UFFDIO_MOVE, &mv) ? -errno : 0;
	if (caps.features & UFFD_FEATURE_MOVE) {
		ck_assert_int_eq(ret, 0);
		ck_assert_int_eq(mv.move, (int64_t)len);
		ck_assert_int_eq(dst[len - 1], 0x5a);
	} else {
		ck_assert_int_ne(ret, 0);
	}
	munmap(src, len);
	munmap(dst, len);
	close(fd);
}
END_TEST

START_TEST(test_feature_names)
{
	ck_assert_str_eq(uffd_feature_name(UFFD_FEATURE_EVENT_FORK), "event_fork");
	ck_assert_str_eq(uffd_feature_name(UFFD_FEATURE_MOVE), "move");
	ck_assert_str_eq(uffd_feature_name(UFFD_FEATURE_WP_ASYNC), "wp_async");
	ck_assert_ptr_null(uffd_feature_name(3));
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;
	int failed, ret;

	ret = uffd_probe(&caps);
	if (ret == -EPERM || ret == -ENOSYS)
		return check_skip_all("no userfaultfd for this process (%s); see "
				      "vm.unprivileged_userfaultfd", strerror(-ret));
	if (ret) {
		printf("uffd_probe: %s\n", strerror(-ret));
		return EXIT_FAILURE;
	}
	printf("userfaultfd: syscall %s, /dev/userfaultfd %s, fork events %s, features 0x%llx:",
	       caps.syscall_kernel ? "kernel+user" : caps.syscall_user ? "user-only" : "no",
	       caps.devnode ? "yes" : "no", caps.event_fork ? "granted" : "refused",
	       (unsigned long long)caps.features);
	for (int i = 0; i < 64; i++)
		if (caps.features & (1ull << i))
			printf(" %s", uffd_feature_name(1ull << i) ? uffd_feature_name(1ull << i) : "?");
	printf("\n");
	s = suite_create("uffd-probe");
	tc = tcase_create("probe");
	tcase_add_test(tc, test_probe_answers_with_the_api);
	tcase_add_test(tc, test_reported_features_can_be_enabled);
	tcase_add_test(tc, test_event_fork_is_reported_as_granted);
	tcase_add_test(tc, test_move_matches_its_feature_bit);
	tcase_add_test(tc, test_feature_names);
	suite_add_tcase(s, tc);
	failed = check_run(s);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
