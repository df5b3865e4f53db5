/* SPDX-License-Identifier: MIT */
/*
 * The first zdev program: allocate memory, fill it, move it to device 0,
 * touch part of it from the CPU (those pages fault back), and show what moved.
 *
 *   zdevd --foreground --socket /tmp/zdev.sock &
 *   ZDEV_SOCKET=/tmp/zdev.sock ./migrate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zdev.h>

#define NPAGES 1024

int main(void)
{
	struct zdev_result res = { 0 };
	struct zdev_stats st = { .size = sizeof(st) };
	struct zdev *dev;
	uint64_t sum = 0;
	int *buf, ret;

	ret = zdev_open(NULL, 0, &dev);
	if (ret) {
		fprintf(stderr, "zdev_open: %s (is zdevd running? see ZDEV_SOCKET)\n", strerror(-ret));
		return 1;
	}
	ret = zdev_alloc(dev, NPAGES * 4096, (void **)&buf);
	if (ret)
		goto out_err;
	for (size_t i = 0; i < NPAGES * 1024; i++)
		buf[i] = (int)i;

	ret = zdev_migrate_to_device(dev, buf, NPAGES, &res);
	if (ret)
		goto out_err;
	printf("migrated %llu pages to device 0\n", (unsigned long long)res.cpages);

	/* Read the first quarter from the CPU: each page faults back. */
	for (size_t i = 0; i < NPAGES * 1024 / 4; i++)
		sum += (uint64_t)buf[i];
	printf("CPU read a quarter back, sum %llu\n", (unsigned long long)sum);

	ret = zdev_get_stats(dev, &st);
	if (ret)
		goto out_err;
	printf("cpu faults %llu, pages to device %llu, to system %llu, still on device %llu\n",
	       (unsigned long long)st.cpu_faults, (unsigned long long)st.pages_to_device,
	       (unsigned long long)st.pages_to_system, (unsigned long long)st.device_pages);
	zdev_free(dev, buf, NPAGES * 4096);
	zdev_close(dev);
	return 0;

out_err:
	fprintf(stderr, "zdev: %s\n", strerror(-ret));
	zdev_close(dev);
	return 1;
}
