/* SPDX-License-Identifier: MIT */
/*
 * Conformance: the coherent variants of the kernel's hmm-tests (test_hmm's
 * devices 2 and 3, DEVICE_COHERENT) through libzdev, against a private zdevd
 * with devices 0 and 1 coherent and device 2 private. A coherent device's
 * page is the process's own page, owned by the device: the CPU reads and
 * writes it without a fault, and the pool charges one page for it.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zdev.h"
#include "hmm-common.h"
#include "zdevd-check.h"
#include "zdevd-harness.h"

static struct zdevd_instance zdevd;
static struct zdev *dev0, *dev1;	/* coherent */
static struct zdev *devp;		/* private */

static void setup(void)
{
	hmm_init_page_size();
	ck_assert_int_eq(zdev_open(NULL, 0, &dev0), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &dev1), 0);
	ck_assert_int_eq(zdev_open(NULL, 2, &devp), 0);
}

static void teardown(void)
{
	ck_assert_int_eq(zdev_close(dev0), 0);
	ck_assert_int_eq(zdev_close(dev1), 0);
	ck_assert_int_eq(zdev_close(devp), 0);
	dev0 = dev1 = devp = NULL;
}

/* The pages the pool of device dev has in use, every client's. */
static unsigned long long pool_used(unsigned int dev)
{
	struct zdevd_pool_status st;

	ck_assert_int_eq(zdevd_pool_status(&zdevd, dev, &st), 0);
	return st.used;
}

static uint64_t cpu_faults(struct zdev *d)
{
	struct zdev_stats st = { 0 };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	return st.cpu_faults;
}

static uint64_t device_pages(struct zdev *d)
{
	struct zdev_stats st = { 0 };

	ck_assert_int_eq(zdev_get_stats(d, &st), 0);
	return st.device_pages;
}

/* Each device's type as zdevd was told, through the handshake. */
START_TEST(memory_type)
{
	unsigned int type = 0;

	ck_assert_int_eq(zdev_get_memory_type(dev0, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_COHERENT);
	ck_assert_int_eq(zdev_get_memory_type(dev1, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_COHERENT);
	ck_assert_int_eq(zdev_get_memory_type(devp, &type), 0);
	ck_assert_uint_eq(type, ZDEV_MEMORY_DEVICE_PRIVATE);
	ck_assert_int_eq(zdev_get_memory_type(NULL, &type), -EINVAL);
	ck_assert_int_eq(zdev_get_memory_type(dev0, NULL), -EINVAL);
}
END_TEST

static Suite *coherent_suite(void)
{
	Suite *s = suite_create("coherent");

	hmm_add_test(s, "memory_type", memory_type, setup, teardown);
	return s;
}

int main(void)
{
	static const char *const args[] = { "--devices", "3", "--memory", "64M",
					     "--memory-type", "coherent,coherent", NULL };

	return run_suite_with_zdevd(&zdevd, args, coherent_suite());
}
