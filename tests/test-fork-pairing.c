/* SPDX-License-Identifier: MIT */
/*
 * Fork children of a process whose threads fork at the same time: each child
 * must be served through its own uffd (the one its own fork event brought),
 * whatever order the children say hello in. A child paired with a sibling's
 * uffd would lose its device pages when that sibling exits first, so the
 * children here exit at staggered times and check every byte after.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "page.h"
#include "zdev.h"
#include "zdevd-harness.h"
#include "zdevd-check.h"

#define NPAGES 64
#define THREADS 3
#define FORKS 8

static struct zdevd_instance zd;
static uint64_t *shared_buf;

static uint64_t word(size_t i)
{
	return 0x5a5a000000000000ull ^ (i * 0x9e3779b97f4a7c15ull);
}

/* The child: waits its turn, then reads every device page (each fault
 * served through its uffd) and writes its own copy. */
static void child_main(unsigned int delay_ms)
{
	volatile uint64_t *w = shared_buf;

	usleep(delay_ms * 1000);
	for (size_t i = 0; i < NPAGES * PG_SIZE / 8; i++)
		if (w[i] != word(i)) {
			fprintf(stderr, "child %d: word %zu = %#llx\n", (int)getpid(), i,
				(unsigned long long)w[i]);
			_exit(1);
		}
	for (size_t i = 0; i < NPAGES * PG_SIZE / 8; i += 512)
		w[i] = (uint64_t)getpid();
	for (size_t i = 0; i < NPAGES * PG_SIZE / 8; i += 512)
		if (w[i] != (uint64_t)getpid())
			_exit(2);
	_exit(0);
}

struct forker {
	pthread_t thread;
	unsigned int id;
	pid_t pids[FORKS];
};

static void *forker_main(void *arg)
{
	struct forker *f = arg;

	for (unsigned int k = 0; k < FORKS; k++) {
		pid_t pid = fork();

		if (pid == 0)
			child_main((f->id * FORKS + k) % 7 * 7);
		f->pids[k] = pid;
	}
	return NULL;
}

START_TEST(children_of_threads_forking_at_once)
{
	struct forker forkers[THREADS];
	struct zdev_result res = { 0 };
	struct zdev *d;

	shared_buf = mmap(NULL, NPAGES * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	ck_assert_ptr_ne(shared_buf, MAP_FAILED);
	for (size_t i = 0; i < NPAGES * PG_SIZE / 8; i++)
		shared_buf[i] = word(i);
	ck_assert_int_eq(zdev_open(NULL, 0, &d), 0);
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(zdev_migrate_to_device(d, shared_buf, NPAGES, &res), 0);
		for (unsigned int t = 0; t < THREADS; t++) {
			forkers[t].id = t;
			ck_assert_int_eq(pthread_create(&forkers[t].thread, NULL, forker_main,
							&forkers[t]), 0);
		}
		for (unsigned int t = 0; t < THREADS; t++) {
			pthread_join(forkers[t].thread, NULL);
			for (unsigned int k = 0; k < FORKS; k++) {
				int status;

				ck_assert_int_gt(forkers[t].pids[k], 0);
				ck_assert_int_eq(waitpid(forkers[t].pids[k], &status, 0),
						 forkers[t].pids[k]);
				ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
					      "round %d: child %u.%u: status %#x", round, t, k,
					      status);
			}
		}
	}
	for (size_t i = 0; i < NPAGES * PG_SIZE / 8; i++)
		ck_assert_uint_eq(shared_buf[i], word(i));
	ck_assert_int_eq(zdev_close(d), 0);
	munmap(shared_buf, NPAGES * PG_SIZE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fork-pairing");

	check_add_case(s, "children_of_threads_forking_at_once", children_of_threads_forking_at_once,
		       NULL, NULL, 120);
	return run_suite_with_zdevd(&zd, NULL, s);
}
