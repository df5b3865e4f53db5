/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "parallel.h"

#define MAX_PARTS 4

struct part {
	parallel_fn fn;
	void *ctx;
	size_t lo, hi;
	int ret;
};

static void *run_part(void *arg)
{
	struct part *p = arg;

	p->ret = p->fn(p->ctx, p->lo, p->hi);
	return NULL;
}

int parallel_run(parallel_fn fn, void *ctx, size_t n, size_t min_part)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct part parts[MAX_PARTS];
	pthread_t threads[MAX_PARTS];
	bool started[MAX_PARTS] = { false };
	size_t nparts = cpus > 1 ? (size_t)cpus : 1;
	int ret = 0;

	if (nparts > MAX_PARTS)
		nparts = MAX_PARTS;
	while (nparts > 1 && n / nparts < min_part)
		nparts--;
	for (size_t i = 0; i < nparts; i++)
		parts[i] = (struct part){ .fn = fn, .ctx = ctx, .lo = n * i / nparts,
					  .hi = n * (i + 1) / nparts };
	for (size_t i = 1; i < nparts; i++)
		started[i] = !pthread_create(&threads[i], NULL, run_part, &parts[i]);
	for (size_t i = 0; i < nparts; i++) {
		/* A part whose thread could not start runs here. */
		if (i == 0 || !started[i])
			run_part(&parts[i]);
	}
	for (size_t i = 1; i < nparts; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
	for (size_t i = 0; i < nparts && !ret; i++)
		ret = parts[i].ret;
	return ret;
}
