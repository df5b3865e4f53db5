/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <time.h>

#include "lathist.h"

uint64_t lathist_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lathist_record(struct lathist *h, uint64_t ns)
{
	unsigned int b = ns ? 63 - (unsigned int)__builtin_clzll(ns) : 0;
	uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);

	if (b >= LATHIST_BUCKETS)
		b = LATHIST_BUCKETS - 1;
	/* relaxed: counters for reports, ordered with nothing else. */
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak_explicit(&h->max_ns, &max, ns,
								  memory_order_relaxed,
								  memory_order_relaxed))
		;
}

void lathist_read(struct lathist *h, struct lathist_snap *s)
{
	/* relaxed: a report, not exact while faults are recorded; the
	 * percentiles clamp to the max read, so they stay in order. */
	for (unsigned int i = 0; i < LATHIST_BUCKETS; i++)
		s->bucket[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
	s->max_ns = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
}

uint64_t lathist_percentile(const struct lathist_snap *s, double p)
{
	uint64_t total = 0, seen = 0;

	for (unsigned int i = 0; i < LATHIST_BUCKETS; i++)
		total += s->bucket[i];
	if (!total)
		return 0;
	for (unsigned int i = 0; i < LATHIST_BUCKETS; i++) {
		seen += s->bucket[i];
		/* The bucket's middle: within a factor 1.5 of the truth, and
		 * never above the largest latency seen. */
		if ((double)seen >= p * (double)total)
			return (3ull << i) / 2 < s->max_ns ? (3ull << i) / 2 : s->max_ns;
	}
	return s->max_ns;
}
