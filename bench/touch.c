/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "figure.h"
#include "page.h"
#include "touch.h"


void page_order(size_t *v, size_t n, unsigned int seed, bool random)
{
	for (size_t i = 0; i < n; i++)
		v[i] = i;
	for (size_t i = n - 1; random && i > 0; i--) {
		size_t j = (size_t)rand_r(&seed) % (i + 1), t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

void touch_pages(volatile char *buf, const size_t *order, size_t n, double *lat)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		(void)buf[order[i] * PG_SIZE];
		lat[i] = (double)(now_ns() - t0);
	}
}

double percentile(double *v, size_t n, double p)
{
	median(v, (int)n);	/* sorts */
	return v[(size_t)(p * (double)(n - 1))];
}

int touch_round_zdev(struct zdev *dev, give_fn give, size_t npages, const size_t *order,
		     double *lat)
{
	struct zdev_result res;
	char *buf;
	int ret;

	ret = zdev_alloc(dev, npages * PG_SIZE, (void **)&buf);
	if (ret)
		return ret;
	memset(buf, 0x5a, npages * PG_SIZE);
	ret = give(dev, buf, npages, &res);
	if (!ret)
		touch_pages(buf, order, npages, lat);
	zdev_free(dev, buf, npages * PG_SIZE);
	return ret;
}
