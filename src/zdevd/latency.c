/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <time.h>

#include "zdevd/zdevd.h"

uint64_t lat_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lat_record(struct lat_hist *h, uint64_t ns)
{
	unsigned int b = ns ? 63 - (unsigned int)__builtin_clzll(ns) : 0;
	uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);

	if (b >= LAT_BUCKETS)
		b = LAT_BUCKETS - 1;
	/* relaxed: counters for reports, ordered with nothing else. */
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak_explicit(&h->max_ns, &max, ns,
								  memory_order_relaxed,
								  memory_order_relaxed))
		;
}

uint64_t lat_percentile(struct lat_hist *h, double p)
{
	uint64_t counts[LAT_BUCKETS], total = 0, seen = 0, max;

	for (unsigned int i = 0; i < LAT_BUCKETS; i++) {
		counts[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		total += counts[i];
	}
	if (!total)
		return 0;
	max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
	for (unsigned int i = 0; i < LAT_BUCKETS; i++) {
		seen += counts[i];
		/* The bucket's middle: within a factor 1.5 of the truth, and
		 * never above the largest latency seen. */
		if ((double)seen >= p * (double)total)
			return (3ull << i) / 2 < max ? (3ull << i) / 2 : max;
	}
	return max;
}
