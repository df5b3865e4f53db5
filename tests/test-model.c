/* SPDX-License-Identifier: MIT */
/*
 * The device model (zdevd --link, --fault-latency; devmodel.h): lower
 * bounds only, which no noise can break. An 8 MiB migration over a 0.1 GB/s
 * link takes at least 83.9 ms each way; two migrations at once share the
 * link; a CPU fault on a device with a 2 ms fault latency waits at least
 * that, and its data is intact; zdevd's status shows each device's model
 * and the time it added, which stays 0 on a device without one, however
 * much it moves.
 *
 * Device 0: a 0.1 GB/s link, slower than any copy zdevd makes, even in a
 * sanitizer build populating fresh store pages, so that the model always
 * adds time. Device 1: a pcie4 link with a 2 ms fault
 * latency instead of the preset's. Device 2: no model.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "proto.h"
#include "zdev.h"
#include "zdevd-check.h"
#include "zdevd-harness.h"

static struct zdevd_instance zd;
static const char *const zdevd_args[] = {
	"--devices", "3", "--memory", "256M", "--link", "0=0.1", "--link", "1=pcie4",
	"--fault-latency", "1=2000", NULL,
};

#define RANGE_PAGES (8u << 20 >> PG_SHIFT)
/* 8 MiB over 0.1 GB/s, in ns */
#define RANGE_LINK_NS (83886080ull)
#define FAULT_NS 2000000ull

#define ADD_TEST(s, t) check_add_case(s, #t, t, NULL, NULL, 0)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* npages of managed memory, each page's first word its index + 1. */
static uint64_t *filled(struct zdev *d, size_t npages)
{
	uint64_t *p;

	ck_assert_int_eq(zdev_alloc(d, npages * PG_SIZE, (void **)&p), 0);
	ck_assert_int_eq(madvise(p, npages * PG_SIZE, MADV_NOHUGEPAGE), 0);
	for (size_t i = 0; i < npages; i++)
		p[i * (PG_SIZE / sizeof(*p))] = i + 1;
	return p;
}

static struct zmsg_status_device device_status(unsigned int dev)
{
	int fd = zmsg_connect(zd.socket_path);
	union zmsg m;

	ck_assert_int_ge(fd, 0);
	zmsg_init(&m, ZMSG_STATUS, 1);
	ck_assert_int_eq(zmsg_send(fd, &m, -1), 0);
	ck_assert_int_eq(zmsg_recv(fd, &m, NULL), ZMSG_STATUS_OK);
	close(fd);
	return m.status_ok.dev[dev];
}

START_TEST(migration_takes_at_least_the_link_time)
{
	struct zdev_result res;
	struct zdev *d;
	uint64_t *p, t0, to_dev, to_sys;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	p = filled(d, RANGE_PAGES);
	t0 = now_ns();
	ck_assert_int_eq(zdev_migrate_to_device(d, p, RANGE_PAGES, &res), 0);
	to_dev = now_ns() - t0;
	ck_assert_uint_eq(res.cpages, RANGE_PAGES);
	t0 = now_ns();
	ck_assert_int_eq(zdev_migrate_to_system(d, p, RANGE_PAGES, &res), 0);
	to_sys = now_ns() - t0;
	ck_assert_uint_eq(res.cpages, RANGE_PAGES);
	ck_assert_msg(to_dev >= RANGE_LINK_NS, "8 MiB to a 0.1 GB/s device in %.1f ms",
		      to_dev / 1e6);
	ck_assert_msg(to_sys >= RANGE_LINK_NS, "8 MiB from a 0.1 GB/s device in %.1f ms",
		      to_sys / 1e6);
	ck_assert_uint_eq(p[(RANGE_PAGES - 1) * (PG_SIZE / sizeof(*p))], RANGE_PAGES);
	ck_assert_uint_gt(device_status(0).model_added_ns, 0);
	ck_assert_int_eq(zdev_free(d, p, RANGE_PAGES * PG_SIZE), 0);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

struct half {
	uint64_t *p;
	uint64_t end_ns;
	int ret;
};

static void *migrate_half(void *arg)
{
	struct half *h = arg;
	struct zdev_result res;
	struct zdev *d;

	h->ret = zdev_open(NULL, 0, &d);
	if (h->ret)
		return NULL;
	h->ret = zdev_migrate_to_device(d, h->p, RANGE_PAGES / 2, &res);
	h->end_ns = now_ns();
	zdev_close(d);
	return NULL;
}

/* Two 4 MiB migrations at once: the link carries 8 MiB before the later
 * one ends. */
START_TEST(concurrent_migrations_share_the_link)
{
	struct half h[2];
	pthread_t t[2];
	struct zdev *d;
	uint64_t *p, t0;

	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	p = filled(d, RANGE_PAGES);
	h[0] = (struct half){ .p = p };
	h[1] = (struct half){ .p = p + (RANGE_PAGES / 2) * (PG_SIZE / sizeof(*p)) };
	t0 = now_ns();
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, migrate_half, &h[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(h[i].ret, 0);
	}
	ck_assert_msg((h[0].end_ns > h[1].end_ns ? h[0].end_ns : h[1].end_ns) - t0 >=
			      RANGE_LINK_NS,
		      "two 4 MiB migrations on a 0.1 GB/s link ended after %.1f ms",
		      ((h[0].end_ns > h[1].end_ns ? h[0].end_ns : h[1].end_ns) - t0) / 1e6);
	ck_assert_int_eq(zdev_free(d, p, RANGE_PAGES * PG_SIZE), 0);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

START_TEST(fault_takes_at_least_the_fault_latency)
{
	enum { N = 8 };
	struct zdev_result res;
	struct zdev *d;
	uint64_t *p;

	ck_assert_int_eq(zdev_open(NULL, 1, &d), 0);
	p = filled(d, N);
	ck_assert_int_eq(zdev_migrate_to_device(d, p, N, &res), 0);
	ck_assert_uint_eq(res.cpages, N);
	for (size_t i = 0; i < N; i++) {
		volatile uint64_t *w = p + i * (PG_SIZE / sizeof(*p));
		uint64_t t0 = now_ns(), v = *w, ns = now_ns() - t0;

		ck_assert_uint_eq(v, i + 1);
		ck_assert_msg(ns >= FAULT_NS, "a fault with a 2 ms latency took %.3f ms", ns / 1e6);
	}
	ck_assert_uint_ge(device_status(1).model_added_ns, 1);
	ck_assert_int_eq(zdev_free(d, p, N * PG_SIZE), 0);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

/* Threads faulting on the same held page all wait for it, and see its data. */
static void *read_page(void *arg)
{
	volatile uint64_t *w = arg;

	return (void *)(uintptr_t)*w;
}

START_TEST(threads_on_one_held_fault_all_get_the_page)
{
	enum { THREADS = 4 };
	struct zdev_result res;
	pthread_t t[THREADS];
	struct zdev *d;
	uint64_t *p;

	ck_assert_int_eq(zdev_open(NULL, 1, &d), 0);
	p = filled(d, 1);
	ck_assert_int_eq(zdev_migrate_to_device(d, p, 1, &res), 0);
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, read_page, p), 0);
	for (int i = 0; i < THREADS; i++) {
		void *v;

		pthread_join(t[i], &v);
		ck_assert_uint_eq((uintptr_t)v, 1);
	}
	ck_assert_int_eq(zdev_free(d, p, PG_SIZE), 0);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

START_TEST(status_shows_each_model)
{
	struct zmsg_status_device s0 = device_status(0), s1 = device_status(1),
				  s2 = device_status(2);

	ck_assert_uint_eq(s0.link_bytes_per_sec, 100000000ull);
	ck_assert_uint_eq(s0.fault_latency_ns, 0);
	ck_assert_uint_eq(s1.link_bytes_per_sec, 25000000000ull);
	ck_assert_uint_eq(s1.fault_latency_ns, FAULT_NS);
	ck_assert_uint_eq(s2.link_bytes_per_sec, 0);
	ck_assert_uint_eq(s2.fault_latency_ns, 0);
}
END_TEST

/* A device without a model moves and faults with nothing added. */
START_TEST(no_model_adds_nothing)
{
	enum { N = 256 };
	struct zdev_result res;
	struct zdev *d;
	uint64_t *p;

	ck_assert_int_eq(zdev_open(NULL, 2, &d), 0);
	p = filled(d, N);
	ck_assert_int_eq(zdev_migrate_to_device(d, p, N, &res), 0);
	for (size_t i = 0; i < N / 2; i++)
		ck_assert_uint_eq(((volatile uint64_t *)p)[i * (PG_SIZE / sizeof(*p))], i + 1);
	ck_assert_int_eq(zdev_migrate_to_system(d, p, N, &res), 0);
	ck_assert_uint_eq(device_status(2).model_added_ns, 0);
	ck_assert_int_eq(zdev_free(d, p, N * PG_SIZE), 0);
	ck_assert_int_eq(zdev_close(d), 0);
}
END_TEST

static Suite *model_suite(void)
{
	Suite *s = suite_create("model");

	ADD_TEST(s, status_shows_each_model);
	ADD_TEST(s, migration_takes_at_least_the_link_time);
	ADD_TEST(s, concurrent_migrations_share_the_link);
	ADD_TEST(s, fault_takes_at_least_the_fault_latency);
	ADD_TEST(s, threads_on_one_held_fault_all_get_the_page);
	ADD_TEST(s, no_model_adds_nothing);
	return s;
}

int main(void)
{
	return run_suite_with_zdevd(&zd, zdevd_args, model_suite());
}
