/* SPDX-License-Identifier: MIT */
/*
 * A program with a SIGSEGV handler of its own, as runtimes with guard pages
 * or a JIT have: it fills a large buffer, then walks it through a window it
 * keeps PROT_NONE, and its handler opens each page the walk faults on. It
 * prints how many faults were its own and a checksum, which must be the
 * same under the shim (whose libzdev handler comes first) as without it.
 * Knows nothing of zdev.
 */
#include "config.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BUF_BYTES	(64ul << 20)
#define PAGE		4096ul
#define GUARDED_PAGES	256
#define ROUNDS		20

static uint8_t *guarded;
static volatile sig_atomic_t own_faults;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	(void)sig;
	(void)uc;
	if (a < (uintptr_t)guarded || a >= (uintptr_t)guarded + GUARDED_PAGES * PAGE)
		abort();	/* not one of ours: a real bug */
	own_faults++;
	mprotect((void *)(a & ~(PAGE - 1)), PAGE, PROT_READ | PROT_WRITE);
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };
	uint64_t *buf = malloc(BUF_BYTES), sum = 0;
	const size_t words = BUF_BYTES / sizeof(*buf);

	guarded = mmap(NULL, GUARDED_PAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!buf || guarded == MAP_FAILED || sigaction(SIGSEGV, &sa, NULL))
		return 2;
	for (size_t i = 0; i < words; i++)
		buf[i] = i * 0x9e3779b97f4a7c15ull;
	for (int r = 0; r < ROUNDS; r++) {
		/* The guarded window closes again each round. */
		memset(guarded, r, GUARDED_PAGES * PAGE);
		mprotect(guarded, GUARDED_PAGES * PAGE, PROT_NONE);
		for (size_t p = 0; p < GUARDED_PAGES; p++)
			sum += guarded[p * PAGE + (size_t)r];
		for (size_t i = (size_t)r; i < words; i += 509)
			sum += buf[i] >> (r % 7);
		usleep(10000);
	}
	printf("%d own faults, sum %llu\n", (int)own_faults, (unsigned long long)sum);
	free(buf);
	return 0;
}
