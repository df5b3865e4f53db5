/* SPDX-License-Identifier: MIT */
/*
 * Many clients at once against one zdevd: 64 processes, each moving its own
 * pages to a device and back, faulting them home by touch, reading the
 * device's page table and making pages exclusive, all at the same time.
 * Every byte each one wrote is still its own at the end, and once all have
 * exited the pools are back where they started.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define CLIENTS 64
#define CLIENT_PAGES 64
#define EXCLUSIVE_PAGES 8
/* How long each client churns: long enough that all 64 overlap, short
 * enough for make check (and for the same rounds under ASan). */
#define CHURN_MS 8000
#define MIN_ROUNDS 3
#define SETTLE_MS 10000

static struct zdevd_instance zd;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The word each client keeps at each place in each round: no two clients,
 * pages, words or rounds hold the same one. */
static uint64_t word_of(unsigned int client, unsigned int round, size_t page, size_t word)
{
	return ((uint64_t)client << 56) ^ ((uint64_t)round << 40) ^ ((uint64_t)page << 20) ^ word ^
	       0x5a5a000000000000ull;
}

static void fill_page(uint64_t *p, unsigned int client, unsigned int round, size_t page)
{
	for (size_t w = 0; w < PG_SIZE / sizeof(*p); w++)
		p[w] = word_of(client, round, page, w);
}

/* The first wrong word of the page, or -1. */
static long page_wrong_at(const uint64_t *p, unsigned int client, unsigned int round, size_t page)
{
	for (size_t w = 0; w < PG_SIZE / sizeof(*p); w++)
		if (p[w] != word_of(client, round, page, w))
			return (long)w;
	return -1;
}

/* A client's failure: its step, on stderr, and an exit status naming it. */
#define FAIL_IF(cond, code, ...)                                        \
	do {                                                            \
		if (cond) {                                             \
			fprintf(stderr, "client %u round %u: ", client, round); \
			fprintf(stderr, __VA_ARGS__);                   \
			fputc('\n', stderr);                            \
			_exit(code);                                    \
		}                                                       \
	} while (0)

/*
 * One client's rounds. Each round the whole range goes to the device and
 * the snapshot must show it there; the first half is faulted home by a CPU
 * read, then rewritten with the next round's pattern; a few pages of it
 * become exclusive and are revoked by a CPU write; the second half comes
 * home by migration and is rewritten. Rewriting both halves each round
 * means a page lost or crossed with another client's shows at the latest
 * in the next check.
 */
static void client_main(unsigned int client)
{
	const unsigned int dev = client % 2;
	const size_t half = CLIENT_PAGES / 2;
	uint64_t *p = mmap(NULL, CLIENT_PAGES * PG_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t prot[CLIENT_PAGES];
	const size_t words = PG_SIZE / sizeof(*p);
	struct zdev_result res;
	unsigned int round = 0;
	uint64_t end;
	struct zdev *d;
	long bad;
	int ret;

	FAIL_IF(p == MAP_FAILED, 10, "mmap failed");
	/* 4 KiB pages, so that a fault brings one page home, not a THP. */
	madvise(p, CLIENT_PAGES * PG_SIZE, MADV_NOHUGEPAGE);
	ret = zdev_open(NULL, dev, &d);
	FAIL_IF(ret, 11, "zdev_open: %s", strerror(-ret));
	for (size_t i = 0; i < CLIENT_PAGES; i++)
		fill_page(p + i * words, client, round, i);
	end = now_ms() + CHURN_MS;
	while (round < MIN_ROUNDS || now_ms() < end) {
		memset(&res, 0, sizeof(res));
		ret = zdev_migrate_to_device(d, p, CLIENT_PAGES, &res);
		FAIL_IF(ret || res.cpages != CLIENT_PAGES, 12, "migrate to device: %s, %llu pages",
			strerror(-ret), (unsigned long long)res.cpages);
		memset(prot, 0xee, sizeof(prot));
		ret = zdev_snapshot(d, p, CLIENT_PAGES, prot, &res);
		FAIL_IF(ret, 13, "snapshot: %s", strerror(-ret));
		for (size_t i = 0; i < CLIENT_PAGES; i++)
			FAIL_IF((prot[i] & 0xf0) != ZDEV_PROT_DEV_PRIVATE_LOCAL, 14,
				"page %zu: snapshot %#x, not device-private", i, prot[i]);

		/* First half: home by touch, checked, then the next pattern. */
		for (size_t i = 0; i < half; i++) {
			bad = page_wrong_at(p + i * words, client, round, i);
			FAIL_IF(bad >= 0, 15, "page %zu word %ld wrong after a CPU fault", i, bad);
			fill_page(p + i * words, client, round + 1, i);
		}
		memset(&res, 0, sizeof(res));
		ret = zdev_make_exclusive(d, p, EXCLUSIVE_PAGES, &res);
		FAIL_IF(ret || res.cpages != EXCLUSIVE_PAGES, 16, "make exclusive: %s, %llu pages",
			strerror(-ret), (unsigned long long)res.cpages);
		ret = zdev_check_exclusive(d, p, EXCLUSIVE_PAGES);
		FAIL_IF(ret != -EPERM, 17, "check exclusive while held: %s", strerror(-ret));
		/* A CPU write on each takes it back. */
		for (size_t i = 0; i < EXCLUSIVE_PAGES; i++)
			p[i * words] = word_of(client, round + 1, i, 0);
		ret = zdev_check_exclusive(d, p, EXCLUSIVE_PAGES);
		FAIL_IF(ret, 18, "check exclusive after CPU writes: %s", strerror(-ret));

		/* Second half: home by migration, checked, the next pattern. */
		memset(&res, 0, sizeof(res));
		ret = zdev_migrate_to_system(d, p + half * words, CLIENT_PAGES - half, &res);
		FAIL_IF(ret || res.cpages != CLIENT_PAGES - half, 19,
			"migrate to system: %s, %llu pages", strerror(-ret),
			(unsigned long long)res.cpages);
		for (size_t i = half; i < CLIENT_PAGES; i++) {
			bad = page_wrong_at(p + i * words, client, round, i);
			FAIL_IF(bad >= 0, 20, "page %zu word %ld wrong after migrating back", i, bad);
			fill_page(p + i * words, client, round + 1, i);
		}
		round++;
	}
	/* The last round's pages on the device once more, and home by touch:
	 * every byte, at the end. */
	ret = zdev_migrate_to_device(d, p, CLIENT_PAGES, &res);
	FAIL_IF(ret, 21, "last migrate to device: %s", strerror(-ret));
	for (size_t i = 0; i < CLIENT_PAGES; i++) {
		bad = page_wrong_at(p + i * words, client, round, i);
		FAIL_IF(bad >= 0, 22, "page %zu word %ld wrong at the end", i, bad);
	}
	ret = zdev_close(d);
	FAIL_IF(ret, 23, "zdev_close: %s", strerror(-ret));
	_exit(0);
}

static unsigned long long pool_used(unsigned int device, unsigned int *clients)
{
	struct zdevd_pool_status st;
	int ret = zdevd_pool_status(&zd, device, &st);

	ck_assert_msg(ret == 0, "zdevd status: %s", strerror(-ret));
	if (clients)
		*clients = st.clients;
	return st.used;
}

/* Waits up to SETTLE_MS for zdevd to have seen every client go and both
 * pools to be back at base: whether they are. */
static bool pools_settle(const unsigned long long base[2])
{
	uint64_t end = now_ms() + SETTLE_MS;
	unsigned int clients;

	for (;;) {
		bool back = pool_used(0, &clients) == base[0] && pool_used(1, NULL) == base[1];

		if ((back && clients == 0) || now_ms() >= end)
			return back && clients == 0;
		usleep(10000);
	}
}

START_TEST(sixty_four_clients)
{
	unsigned long long base[2];
	unsigned int clients, failed = 0;
	pid_t pids[CLIENTS];

	base[0] = pool_used(0, &clients);
	base[1] = pool_used(1, NULL);
	ck_assert_uint_eq(clients, 0);
	for (unsigned int c = 0; c < CLIENTS; c++) {
		pids[c] = fork();
		ck_assert_int_ge(pids[c], 0);
		if (pids[c] == 0)
			client_main(c);
	}
	for (unsigned int c = 0; c < CLIENTS; c++) {
		int status;

		ck_assert_int_eq(waitpid(pids[c], &status, 0), pids[c]);
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			fprintf(stderr, "client %u: status %#x\n", c, status);
			failed++;
		}
	}
	ck_assert_msg(!failed, "%u of %u clients failed (their steps are above)", failed, CLIENTS);
	ck_assert_msg(pools_settle(base), "pools used %llu and %llu pages, clients %u, %d s after "
		      "all exited; baseline %llu and %llu", pool_used(0, &clients), pool_used(1, NULL),
		      clients, SETTLE_MS / 1000, base[0], base[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("load");

	check_add_case(s, "sixty_four_clients", sixty_four_clients, NULL, NULL, 300);
	return run_suite_with_zdevd(&zd, NULL, s);
}
