/* SPDX-License-Identifier: MIT */
/*
 * zdevd's workers (docs/architecture.md, "Requests"): a request that takes
 * long holds its own worker and nobody else's. Here the long requests are
 * migrations over a modelled link of 1 MB/s (--link 0.001), which the
 * device's link carries one after the other; a client that comes while all
 * of them are in flight is answered before the first of them ends, and
 * every byte of the slow clients is still theirs at the end.
 */
#include "config.h"

#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define SLOW_CLIENTS 3
/* 1 MiB each: the first migration ends after 1 s, the last after 3 s. */
#define SLOW_PAGES 256
/* Long enough for every slow client's request to reach zdevd. */
#define IN_FLIGHT_US 300000

static struct zdevd_instance zd;

struct shared {
	atomic_uint started;	/* slow clients about to send their request */
	atomic_uint ended;	/* requests answered, slow or not */
	unsigned int slow_rank[SLOW_CLIENTS];	/* each one's place among them */
};

static unsigned char pattern(unsigned int client, size_t page)
{
	return (unsigned char)(client * 31 + page + 1);
}

static void slow_client(struct shared *sh, unsigned int i)
{
	struct zdev_result res;
	struct zdev *dev;
	unsigned char *p;

	if (zdev_open(NULL, 0, &dev) || zdev_alloc(dev, SLOW_PAGES * PG_SIZE, (void **)&p))
		_exit(1);
	for (size_t pg = 0; pg < SLOW_PAGES; pg++)
		memset(p + pg * PG_SIZE, pattern(i, pg), PG_SIZE);
	atomic_fetch_add(&sh->started, 1);
	if (zdev_migrate_to_device(dev, p, SLOW_PAGES, &res) || res.cpages != SLOW_PAGES)
		_exit(2);
	sh->slow_rank[i] = atomic_fetch_add(&sh->ended, 1) + 1;
	/* Back by CPU faults: every byte is still this client's. */
	for (size_t pg = 0; pg < SLOW_PAGES; pg++)
		for (size_t b = 0; b < PG_SIZE; b += 256)
			if (p[pg * PG_SIZE + b] != pattern(i, pg))
				_exit(3);
	_exit(zdev_close(dev) ? 4 : 0);
}

START_TEST(slow_requests_hold_only_their_workers)
{
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct zdev_stats st = { .size = sizeof(st) };
	pid_t pids[SLOW_CLIENTS];
	unsigned int quick_rank;
	struct zdev *dev;

	ck_assert_ptr_ne(sh, MAP_FAILED);
	for (unsigned int i = 0; i < SLOW_CLIENTS; i++) {
		pids[i] = fork();
		ck_assert_int_ge(pids[i], 0);
		if (pids[i] == 0)
			slow_client(sh, i);
	}
	while (atomic_load(&sh->started) < SLOW_CLIENTS)
		usleep(1000);
	usleep(IN_FLIGHT_US);

	/* A new connection, a handshake, a request: each needs a worker. */
	ck_assert_int_eq(zdev_open(NULL, 0, &dev), 0);
	ck_assert_int_eq(zdev_get_stats(dev, &st), 0);
	quick_rank = atomic_fetch_add(&sh->ended, 1) + 1;
	ck_assert_int_eq(zdev_close(dev), 0);

	for (unsigned int i = 0; i < SLOW_CLIENTS; i++) {
		int status;

		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "slow client %u: status %#x", i, status);
	}
	ck_assert_msg(quick_rank == 1,
		      "the quick client was answered after %u of the slow migrations",
		      quick_rank - 1);
	munmap(sh, sizeof(*sh));
}
END_TEST

static Suite *workers_suite(void)
{
	Suite *s = suite_create("workers");

	check_add_case(s, "slow_requests_hold_only_their_workers",
		       slow_requests_hold_only_their_workers, NULL, NULL, 0);
	return s;
}

int main(void)
{
	static const char *const args[] = { "--link", "0.001", NULL };

	return run_suite_with_zdevd(&zd, args, workers_suite());
}
