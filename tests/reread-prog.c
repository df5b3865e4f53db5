/* SPDX-License-Identifier: MIT */
/*
 * reread-prog MIB SECONDS: fills MIB MiB of fresh private anonymous memory,
 * then reads every page of it over and over for SECONDS without writing,
 * and prints the pages and their sum. Memory a program keeps reading, which
 * soft-dirty bits cannot tell from idle memory: test-shim-evict.sh runs it
 * under the evict policy.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "page.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const size_t len = argc > 1 ? strtoul(argv[1], NULL, 0) << 20 : 0;
	const double seconds = argc > 2 ? strtod(argv[2], NULL) : 0, until = now_s() + seconds;
	const size_t npages = len / PG_SIZE;
	volatile uint64_t *mem;
	uint64_t sum = 0;

	if (!npages || seconds <= 0) {
		fprintf(stderr, "usage: reread-prog MIB SECONDS\n");
		return 2;
	}
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("reread-prog: mmap");
		return 1;
	}
	for (size_t p = 0; p < npages; p++)
		mem[p * (PG_SIZE / 8)] = p * 2654435761u;
	do {
		sum = 0;
		for (size_t p = 0; p < npages; p++)
			sum += mem[p * (PG_SIZE / 8)];
	} while (now_s() < until);
	printf("%zu pages, sum %llu\n", npages, (unsigned long long)sum);
	return 0;
}
