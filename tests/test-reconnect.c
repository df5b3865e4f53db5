/* SPDX-License-Identifier: MIT */
/*
 * A zdevd restart does not cut its clients off for good (libzdev(3),
 * "Losing zdevd, and a new one"): once the rescue has brought every page
 * home, the next call through a handle starts a new session with whichever
 * zdevd listens on the socket now and reopens every handle there, so the
 * program's struct zdev stays valid. Each test kills or stops its zdevd and
 * starts another on the same socket.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "page.h"
#include "proto.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define HUGE (2ul << 20)
/* libzdev tries a new session at most this often after a failed attempt
 * (SESSION_RETRY_MS, zdev_open(3)). */
#define RETRY_MS 100

static struct zdevd_instance zd;

static void start_zdevd(void)
{
	zdevd_start(&zd, NULL);
}

static void stop_zdevd(void)
{
	if (zd.pid > 0)
		zdevd_stop(&zd);
}

static void kill_zdevd(void)
{
	if (zd.pid > 0) {
		kill(zd.pid, SIGKILL);
		waitpid(zd.pid, NULL, 0);
		zd.pid = 0;
	}
}

/*
 * The connects made to zdevd's socket while armed: libzdev's go through
 * connect(2), which this program interposes.
 */
static atomic_bool count_connects;
static atomic_int connects;

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)addr;

	if (atomic_load(&count_connects) && addr->sa_family == AF_UNIX &&
	    !strncmp(sun->sun_path, zd.socket_path, sizeof(sun->sun_path)))
		atomic_fetch_add(&connects, 1);
	return (int)syscall(SYS_connect, fd, addr, len);
}

/*
 * Armed, the first ZAP zdevd sends kills zdevd as it arrives, before the
 * client zaps, and holds the client a while: its rescue agent finds zdevd
 * gone and looks at the pages first. libzdev receives through recvmsg(2),
 * which this program interposes too.
 */
#define RESCUE_FIRST_US 300000
static atomic_bool kill_at_zap;

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t n = syscall(SYS_recvmsg, fd, msg, flags);
	const struct zmsg_hdr *hdr = msg->msg_iovlen ? msg->msg_iov[0].iov_base : NULL;

	if (hdr && n >= (ssize_t)sizeof(*hdr) && hdr->type == ZMSG_ZAP &&
	    atomic_exchange(&kill_at_zap, false)) {
		kill_zdevd();
		usleep(RESCUE_FIRST_US);
	}
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A 16-bit tag over the word's index: a page of it is recognisable alone. */
static uint64_t word(uint64_t tag, size_t i)
{
	return tag << 48 | (i & 0xffffffffffffull);
}

static void fill(uint64_t *w, size_t bytes, uint64_t tag)
{
	for (size_t i = 0; i < bytes / 8; i++)
		w[i] = word(tag, i);
}

/* The index of the first word of [from, to) (bytes) that is not the
 * pattern, or SIZE_MAX. */
static size_t wrong_in(const volatile uint64_t *w, size_t from, size_t to, uint64_t tag)
{
	for (size_t i = from / 8; i < to / 8; i++)
		if (w[i] != word(tag, i))
			return i;
	return SIZE_MAX;
}

static struct zdev_stats stats_of(struct zdev *dev)
{
	struct zdev_stats st = { .size = sizeof(st) };

	ck_assert_int_eq(zdev_get_stats(dev, &st), 0);
	return st;
}

static struct zdevd_pool_status pool_of(unsigned int device)
{
	struct zdevd_pool_status st;

	ck_assert_int_eq(zdevd_pool_status(&zd, device, &st), 0);
	return st;
}

/*
 * The whole buffer, which holds tag's pattern, goes to the new zdevd's
 * device and back, every byte checked: a device write there, then a
 * migration home, then the device again and CPU faults.
 */
static void round_trip_on_new_zdevd(struct zdev *dev, uint64_t *buf, size_t len, uint64_t tag)
{
	const size_t n = len / PG_SIZE, patch_at = HUGE + 3 * PG_SIZE;
	struct zdev_result res;
	uint64_t *patch;
	uint8_t *prot;
	size_t wrong;

	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, n, &res), 0);
	ck_assert_uint_eq(res.cpages, n);
	ck_assert_uint_eq(stats_of(dev).device_pages, n);
	prot = malloc(n);
	ck_assert_int_eq(zdev_snapshot(dev, buf, n, prot, &res), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg((prot[i] & 0xf0) == ZDEV_PROT_DEV_PRIVATE_LOCAL,
			      "page %zu: snapshot %#x", i, prot[i]);
	free(prot);

	/* 16 pages written by the device, in device memory only. */
	patch = malloc(16 * PG_SIZE);
	for (size_t i = 0; i < 16 * PG_SIZE / 8; i++)
		patch[i] = word(tag + 1, patch_at / 8 + i);
	ck_assert_int_eq(zdev_write(dev, (char *)buf + patch_at, 16, patch, &res), 0);
	free(patch);

	ck_assert_int_eq(zdev_migrate_to_system(dev, buf, n, &res), 0);
	ck_assert_uint_eq(res.cpages, n);
	ck_assert_uint_eq(stats_of(dev).device_pages, 0);
	wrong = wrong_in(buf, 0, patch_at, tag);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost", wrong);
	wrong = wrong_in(buf, patch_at, patch_at + 16 * PG_SIZE, tag + 1);
	ck_assert_msg(wrong == SIZE_MAX, "device-written word %zu lost", wrong);
	wrong = wrong_in(buf, patch_at + 16 * PG_SIZE, len, tag);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost", wrong);

	/* Out again, and home by CPU faults this time. */
	fill(buf, len, tag + 2);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, n, &res), 0);
	ck_assert_uint_eq(res.cpages, n);
	wrong = wrong_in(buf, 0, len, tag + 2);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost to a CPU fault", wrong);
	ck_assert_uint_eq(stats_of(dev).device_pages, 0);
}

/* A buffer of len bytes on dev's device (its first window a THP where the
 * kernel gives one), filled with tag. */
static uint64_t *on_device(struct zdev *dev, size_t len, uint64_t tag)
{
	struct zdev_result res;
	uint64_t *buf;

	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	madvise(buf, HUGE, MADV_HUGEPAGE);
	fill(buf, len, tag);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_uint_eq(res.cpages, len / PG_SIZE);
	ck_assert_uint_eq(stats_of(dev).device_pages, len / PG_SIZE);
	return buf;
}

/* zdevd killed with the pages on its device; the same handle goes on with
 * the next zdevd. */
START_TEST(sigkill_then_new_zdevd)
{
	const size_t len = 4 * HUGE;
	struct zdev *dev;
	uint64_t *buf;
	size_t wrong;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	buf = on_device(dev, len, 0x1110);
	kill_zdevd();
	wrong = wrong_in(buf, 0, len, 0x1110);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost to the kill", wrong);

	zdevd_restart(&zd, NULL);
	round_trip_on_new_zdevd(dev, buf, len, 0x1110);
	ck_assert_int_eq(zdev_close(dev), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
	/* Every page went back to the new zdevd's pool. */
	ck_assert_uint_eq(pool_of(0).used, 0);
}
END_TEST

/*
 * zdevd killed after it asked for a migration's zap and before the client
 * made it: the rescue finds the pages still there and leaves them, so the
 * client must not zap them after it (it used to, and every byte of the
 * range was lost).
 */
START_TEST(sigkill_between_zap_ask_and_zap)
{
	const size_t len = 2 * HUGE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf;
	size_t wrong;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x2a9);
	atomic_store(&kill_at_zap, true);
	ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), -ENODEV);
	ck_assert_msg(!atomic_load(&kill_at_zap), "zdevd asked for no zap");
	wrong = wrong_in(buf, 0, len, 0x2a9);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost to a zap after the rescue", wrong);

	zdevd_restart(&zd, NULL);
	round_trip_on_new_zdevd(dev, buf, len, 0x2a9);
	ck_assert_int_eq(zdev_close(dev), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

/* systemctl restart: SIGTERM evicts everything, then a new zdevd. */
START_TEST(sigterm_then_new_zdevd)
{
	const size_t len = 4 * HUGE;
	struct zdev *dev;
	uint64_t *buf;
	size_t wrong;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	buf = on_device(dev, len, 0x2210);
	ck_assert_int_eq(zdevd_stop(&zd), 0);
	wrong = wrong_in(buf, 0, len, 0x2210);
	ck_assert_msg(wrong == SIZE_MAX, "word %zu lost to the stop", wrong);

	zdevd_restart(&zd, NULL);
	round_trip_on_new_zdevd(dev, buf, len, 0x2210);
	ck_assert_int_eq(zdev_close(dev), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

/*
 * No zdevd at the call: -ENODEV, without a connect a call (at most one
 * every RETRY_MS); once a zdevd listens again, a later call goes on, and a
 * new handle opens.
 */
START_TEST(no_zdevd_then_one_appears)
{
	const size_t len = 16 * PG_SIZE;
	struct zdev *dev, *dev1;
	struct zdev_result res;
	uint64_t *buf, start, elapsed;
	int ret = -ENODEV;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x3310);
	kill_zdevd();

	atomic_store(&connects, 0);
	atomic_store(&count_connects, true);
	start = now_ms();
	for (int i = 0; i < 2000; i++)
		ck_assert_int_eq(zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res), -ENODEV);
	/* A new handle on the connection, as any call on it. */
	ck_assert_int_eq(zdev_open(NULL, 1, &dev1), -ENODEV);
	elapsed = now_ms() - start;
	atomic_store(&count_connects, false);
	ck_assert_int_ge(atomic_load(&connects), 1);
	ck_assert_msg((uint64_t)atomic_load(&connects) <= 2 + elapsed / RETRY_MS,
		      "%d connects in %llu ms of calls", atomic_load(&connects),
		      (unsigned long long)elapsed);

	zdevd_restart(&zd, NULL);
	/* The first call after RETRY_MS tries, and finds it. */
	for (start = now_ms(); ret == -ENODEV && now_ms() - start < 10 * 1000;) {
		ret = zdev_migrate_to_device(dev, buf, len / PG_SIZE, &res);
		if (ret == -ENODEV)
			usleep(RETRY_MS * 1000 / 4);
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_eq(res.cpages, len / PG_SIZE);
	ck_assert_int_eq(zdev_open(NULL, 1, &dev1), 0);
	ck_assert_int_eq(zdev_migrate_to_system(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_uint_eq(wrong_in(buf, 0, len, 0x3310), SIZE_MAX);
	ck_assert_int_eq(zdev_close(dev1), 0);
	ck_assert_int_eq(zdev_close(dev), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

/* ---- threads calling through the restart ---- */

#define NTHREADS 4
#define THREAD_PAGES 64
#define ROUNDS_EACH_SIDE 5

enum phase { BEFORE, RESTARTED, DONE };

struct worker {
	pthread_t t;
	struct zdev *dev;
	uint64_t *buf;
	unsigned int id;
	atomic_int ok_before, ok_after;
	size_t lost;		/* the first word lost + 1, or 0 */
	/* what the first loss looked like: the words wrong, the first one
	 * found and wanted, its round, whether after the restart, and what
	 * that round's calls returned */
	size_t lost_words;
	uint64_t lost_found, lost_want, lost_round;
	bool lost_after;
	int lost_ret;
	int unexpected;		/* an error other than -ENODEV */
};

static _Atomic int phase;

/* Rounds of: CPU writes a new pattern, the pages go to the device (and
 * every other round back by migration, else by CPU faults), every byte is
 * checked. A round zdevd's death cuts short ends with -ENODEV. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const size_t len = THREAD_PAGES * PG_SIZE;
	struct zdev_result res;

	for (uint64_t round = 0; atomic_load(&phase) != DONE; round++) {
		const uint64_t tag = (uint64_t)w->id << 12 | (round & 0xfff);
		const int seen = atomic_load(&phase);
		size_t wrong;
		int ret;

		fill(w->buf, len, tag);
		ret = zdev_migrate_to_device(w->dev, w->buf, THREAD_PAGES, &res);
		if (!ret && round % 2)
			ret = zdev_migrate_to_system(w->dev, w->buf, THREAD_PAGES, &res);
		wrong = wrong_in(w->buf, 0, len, tag);
		if (wrong != SIZE_MAX && !w->lost) {
			w->lost = wrong + 1;
			w->lost_found = w->buf[wrong];
			w->lost_want = word(tag, wrong);
			w->lost_round = round;
			w->lost_after = seen != BEFORE;
			w->lost_ret = ret;
			for (size_t i = wrong; i < len / 8; i++)
				w->lost_words += w->buf[i] != word(tag, i);
		}
		if (ret && ret != -ENODEV && !w->unexpected)
			w->unexpected = ret;
		if (!ret)
			atomic_fetch_add(seen == BEFORE ? &w->ok_before : &w->ok_after, 1);
	}
	return NULL;
}

/* Until every worker has had n good rounds before the restart (or after),
 * or 60 s: true if they all did. */
static bool wait_rounds(struct worker *w, bool after, int n)
{
	const uint64_t start = now_ms();

	for (int i = 0; i < NTHREADS; i++) {
		atomic_int *ok = after ? &w[i].ok_after : &w[i].ok_before;

		while (atomic_load(ok) < n) {
			if (now_ms() - start > 60 * 1000)
				return false;
			usleep(1000);
		}
	}
	return true;
}

START_TEST(threads_through_restart)
{
	struct worker w[NTHREADS] = { 0 };
	struct zdev *shared, *own[2];

	/* Two threads share a handle; each of the others has its own, one
	 * on each device. */
	ck_assert_int_eq(zdev_open(NULL, 0, &shared), 0);
	ck_assert_int_eq(zdev_open(NULL, 0, &own[0]), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &own[1]), 0);
	atomic_store(&phase, BEFORE);
	for (unsigned int i = 0; i < NTHREADS; i++) {
		w[i].id = i;
		w[i].dev = i < 2 ? shared : own[i - 2];
		ck_assert_int_eq(zdev_alloc(w[i].dev, THREAD_PAGES * PG_SIZE, (void **)&w[i].buf),
				 0);
		ck_assert_int_eq(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
	}
	ck_assert(wait_rounds(w, false, ROUNDS_EACH_SIDE));
	kill_zdevd();
	zdevd_restart(&zd, NULL);
	atomic_store(&phase, RESTARTED);
	ck_assert_msg(wait_rounds(w, true, ROUNDS_EACH_SIDE),
		      "a thread never got going with the new zdevd");
	atomic_store(&phase, DONE);
	for (unsigned int i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].t, NULL);
		ck_assert_msg(!w[i].lost,
			      "thread %u: word %zu lost in round %llu, %s the restart (its calls: %d): "
			      "%zu words wrong, the first 0x%016llx instead of 0x%016llx",
			      i, w[i].lost - 1, (unsigned long long)w[i].lost_round,
			      w[i].lost_after ? "after" : "before", w[i].lost_ret, w[i].lost_words,
			      (unsigned long long)w[i].lost_found, (unsigned long long)w[i].lost_want);
		ck_assert_msg(!w[i].unexpected, "thread %u: %s", i, strerror(-w[i].unexpected));
		ck_assert_int_eq(munmap(w[i].buf, THREAD_PAGES * PG_SIZE), 0);
	}
	ck_assert_int_eq(zdev_close(shared), 0);
	ck_assert_int_eq(zdev_close(own[0]), 0);
	ck_assert_int_eq(zdev_close(own[1]), 0);
	ck_assert_uint_eq(pool_of(0).used, 0);
	ck_assert_uint_eq(pool_of(1).used, 0);
}
END_TEST

/*
 * The new zdevd sees the process as one client with every handle it had
 * open (its --client-handles counts them), and its statistics start from
 * zero: the old zdevd's counters went with it.
 */
START_TEST(handles_and_stats_on_new_zdevd)
{
	static const char *const three_handles[] = { "--client-handles", "3", NULL };
	const size_t len = 32 * PG_SIZE;
	struct zdev *a0, *a1, *b, *extra;
	struct zdev_result res;
	struct zdev_stats st;
	uint64_t *buf;

	ck_assert_int_eq(zdev_open(NULL, 0, &a0), 0);
	ck_assert_int_eq(zdev_open(NULL, 0, &a1), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &b), 0);
	buf = on_device(a0, len, 0x5510);
	ck_assert_uint_eq(stats_of(a0).pages_to_device, 32);
	kill_zdevd();
	ck_assert_uint_eq(wrong_in(buf, 0, len, 0x5510), SIZE_MAX);

	zdevd_restart(&zd, three_handles);
	/* The first call reopens all three. */
	st = stats_of(a1);
	ck_assert_uint_eq(st.pages_to_device, 0);
	ck_assert_uint_eq(st.pages_to_system, 0);
	ck_assert_uint_eq(st.device_pages, 0);
	ck_assert_uint_eq(pool_of(0).clients, 1);
	ck_assert_uint_eq(pool_of(0).used, 0);
	ck_assert_int_eq(zdev_open(NULL, 0, &extra), -EMFILE);

	ck_assert_int_eq(zdev_migrate_to_device(b, buf, 32, &res), 0);
	ck_assert_uint_eq(res.cpages, 32);
	st = stats_of(b);
	ck_assert_uint_eq(st.pages_to_device, 32);
	ck_assert_uint_eq(st.device_pages, 32);
	ck_assert_uint_eq(pool_of(1).used, 32);
	ck_assert_uint_eq(stats_of(a0).device_pages, 0);

	ck_assert_int_eq(zdev_close(a1), 0);
	ck_assert_int_eq(zdev_open(NULL, 0, &extra), 0);
	ck_assert_int_eq(zdev_close(b), 0);
	ck_assert_uint_eq(pool_of(1).used, 0);
	ck_assert_uint_eq(wrong_in(buf, 0, len, 0x5510), SIZE_MAX);
	ck_assert_int_eq(zdev_close(extra), 0);
	ck_assert_int_eq(zdev_close(a0), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

/* A new zdevd with fewer devices: the handle of a device it lacks fails
 * with -ENODEV, the others go on. */
START_TEST(fewer_devices_on_new_zdevd)
{
	static const char *const one_device[] = { "--devices", "1", NULL };
	const size_t len = 16 * PG_SIZE;
	struct zdev *d0, *d1;
	struct zdev_result res;
	uint64_t *buf;

	ck_assert_int_eq(zdev_open(NULL, 0, &d0), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &d1), 0);
	buf = on_device(d1, len, 0x6610);
	kill_zdevd();
	zdevd_restart(&zd, one_device);
	ck_assert_int_eq(zdev_migrate_to_device(d1, buf, len / PG_SIZE, &res), -ENODEV);
	ck_assert_int_eq(zdev_migrate_to_device(d0, buf, len / PG_SIZE, &res), 0);
	ck_assert_uint_eq(res.cpages, len / PG_SIZE);
	ck_assert_uint_eq(wrong_in(buf, 0, len, 0x6610), SIZE_MAX);
	ck_assert_int_eq(zdev_close(d1), 0);
	ck_assert_int_eq(zdev_open(NULL, 1, &d1), -ENODEV);
	ck_assert_int_eq(zdev_close(d0), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

/*
 * Exclusive access ends with the zdevd that granted it; the new zdevd
 * grants and revokes afresh, device atomics included.
 */
START_TEST(exclusive_after_new_zdevd)
{
	const size_t len = 8 * PG_SIZE;
	struct zdev_result res;
	struct zdev *dev;
	uint64_t *buf, old = 0;

	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_alloc(dev, len, (void **)&buf), 0);
	fill(buf, len, 0x7710);
	ck_assert_int_eq(zdev_make_exclusive(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_int_eq(zdev_check_exclusive(dev, buf, len / PG_SIZE), -EPERM);
	kill_zdevd();
	zdevd_restart(&zd, NULL);

	/* Nothing is held any more, and the CPU reads without a fault. */
	ck_assert_int_eq(zdev_check_exclusive(dev, buf, len / PG_SIZE), 0);
	ck_assert_uint_eq(wrong_in(buf, 0, len, 0x7710), SIZE_MAX);

	ck_assert_int_eq(zdev_make_exclusive(dev, buf, len / PG_SIZE, &res), 0);
	ck_assert_uint_eq(res.cpages, len / PG_SIZE);
	ck_assert_int_eq(zdev_check_exclusive(dev, buf, len / PG_SIZE), -EPERM);
	ck_assert_int_eq(zdev_atomic_add(dev, &buf[1], 5, &old), 0);
	ck_assert_uint_eq(old, word(0x7710, 1));
	/* The CPU's touches revoke. */
	ck_assert_uint_eq(buf[1], word(0x7710, 1) + 5);
	buf[1] = word(0x7710, 1);
	ck_assert_uint_eq(wrong_in(buf, 0, len, 0x7710), SIZE_MAX);
	ck_assert_int_eq(zdev_check_exclusive(dev, buf, len / PG_SIZE), 0);
	ck_assert_int_eq(zdev_close(dev), 0);
	ck_assert_int_eq(munmap(buf, len), 0);
}
END_TEST

int main(void)
{
	const char *why = zdevd_unavailable();
	Suite *s;

	if (why)
		return check_skip_all("%s", why);
	s = suite_create("reconnect");
	check_add_case(s, "sigkill_then_new_zdevd", sigkill_then_new_zdevd, start_zdevd,
		       stop_zdevd, 120);
	check_add_case(s, "sigkill_between_zap_ask_and_zap", sigkill_between_zap_ask_and_zap,
		       start_zdevd, stop_zdevd, 120);
	check_add_case(s, "sigterm_then_new_zdevd", sigterm_then_new_zdevd, start_zdevd,
		       stop_zdevd, 120);
	check_add_case(s, "no_zdevd_then_one_appears", no_zdevd_then_one_appears, start_zdevd,
		       stop_zdevd, 120);
	check_add_case(s, "threads_through_restart", threads_through_restart, start_zdevd,
		       stop_zdevd, 180);
	check_add_case(s, "handles_and_stats_on_new_zdevd", handles_and_stats_on_new_zdevd,
		       start_zdevd, stop_zdevd, 120);
	check_add_case(s, "fewer_devices_on_new_zdevd", fewer_devices_on_new_zdevd, start_zdevd,
		       stop_zdevd, 120);
	check_add_case(s, "exclusive_after_new_zdevd", exclusive_after_new_zdevd, start_zdevd,
		       stop_zdevd, 120);
	return check_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
