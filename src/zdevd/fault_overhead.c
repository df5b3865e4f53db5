/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lathist.h"
#include "page.h"
#include "uffd_compat.h"
#include "uffd_probe.h"
#include "zdevd/fault_overhead.h"

#define SAMPLES 48
#define WARMUP 8

struct toucher {
	volatile char *mem;
	uint64_t took[SAMPLES];		/* each touch, as its thread saw it */
};

static void *touch_pages(void *arg)
{
	struct toucher *t = arg;

	for (int i = 0; i < SAMPLES; i++) {
		const uint64_t t0 = lathist_now_ns();

		(void)t->mem[(size_t)i * PG_SIZE];
		t->took[i] = lathist_now_ns() - t0;
	}
	return NULL;
}

/*
 * Waits until the uffd is readable, for a second at most: 0 or -ETIMEDOUT.
 * Where the fault thread looks for the next fault without sleeping for a
 * while after serving one (loop.c), so does this: a fault it finds that way
 * is delivered without its wake-up, and the part zdevd cannot see must not
 * be larger here than there, or a modelled fault would end early.
 */
static int wait_readable(int uffd, bool spin)
{
	const uint64_t until = lathist_now_ns() + 1000000000ull;
	struct pollfd p = { .fd = uffd, .events = POLLIN };

	if (!spin)
		return poll(&p, 1, 1000) == 1 ? 0 : -ETIMEDOUT;
	while (poll(&p, 1, 0) != 1)
		if (lathist_now_ns() > until)
			return -ETIMEDOUT;
	return 0;
}

/* Serves the toucher's SAMPLES faults; served[i]: the handler's own part
 * of each. 0 or -errno. */
static int serve(int uffd, const void *page, uint64_t *served)
{
	const bool spin = sysconf(_SC_NPROCESSORS_ONLN) > 1;

	for (int i = 0; i < SAMPLES; i++) {
		struct uffdio_copy copy = { .src = (uintptr_t)page, .len = PG_SIZE };
		struct uffd_msg msg;
		uint64_t t0;
		int ret = wait_readable(uffd, spin);

		if (ret)
			return ret;
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			return -EIO;
		t0 = lathist_now_ns();
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			return -EPROTO;
		copy.dst = msg.arg.pagefault.address & ~(uint64_t)(PG_SIZE - 1);
		if (ioctl(uffd, UFFDIO_COPY, &copy))
			return -errno;
		served[i] = lathist_now_ns() - t0;
	}
	return 0;
}

static uint64_t fastest_beyond(const struct toucher *t, const uint64_t *served)
{
	uint64_t best = UINT64_MAX;

	for (int i = WARMUP; i < SAMPLES; i++)
		if (t->took[i] > served[i] && t->took[i] - served[i] < best)
			best = t->took[i] - served[i];
	return best == UINT64_MAX ? 0 : best;
}

uint64_t fault_overhead_measure(void)
{
	static const char page[PG_SIZE] __attribute__((aligned(PG_SIZE)));
	struct toucher t = { 0 };
	uint64_t served[SAMPLES], ret = 0;
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	pthread_t thread;
	char *mem;
	int uffd;

	uffd = uffd_create(UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		uffd = uffd_create(0);
	if (uffd < 0)
		return 0;
	if (uffd_handshake(uffd, 0, NULL, NULL))
		goto out_close;
	mem = mmap(NULL, SAMPLES * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (mem == MAP_FAILED)
		goto out_close;
	reg.range = (struct uffdio_range){ .start = (uintptr_t)mem, .len = SAMPLES * PG_SIZE };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		goto out_unmap;
	t.mem = mem;
	if (pthread_create(&thread, NULL, touch_pages, &t))
		goto out_unmap;
	if (!serve(uffd, page, served)) {
		pthread_join(thread, NULL);
		ret = fastest_beyond(&t, served);
	} else {
		/* The toucher may still wait on a fault: unregistering the
		 * range lets it fault in zeros and end. */
		ioctl(uffd, UFFDIO_UNREGISTER, &reg.range);
		pthread_join(thread, NULL);
	}
out_unmap:
	munmap(mem, SAMPLES * PG_SIZE);
out_close:
	close(uffd);
	return ret;
}
