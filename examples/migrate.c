/* SPDX-License-Identifier: MIT */
/*
 * The first zdev program: allocate memory, fill it, move it to device 0,
 * touch part of it from the CPU (those pages fault back), and show what moved.
 *
 *   zdevd --foreground --socket /tmp/zdev.sock &
 *   ZDEV_SOCKET=/tmp/zdev.sock ./migrate
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zdev.h>

#define NPAGES 1024

int main(void)
{
	struct zdev_result res = { 0 };
	struct zdev_stats st = { .size = sizeof(st) };
	const size_t nints = NPAGES * 4096 / sizeof(int);
	struct zdev *dev;
	uint64_t sum = 0, expected = 0;
	int *buf, ret;

	ret = zdev_open(NULL, 0, &dev);
	if (ret) {
		fprintf(stderr, "zdev_open: %s (is zdevd running? see ZDEV_SOCKET)\n", strerror(-ret));
		return 1;
	}
	ret = zdev_alloc(dev, NPAGES * 4096, (void **)&buf);
	if (ret)
		goto out_err;
	for (size_t i = 0; i < nints; i++)
		buf[i] = (int)i;
	printf("migrate: wrote %d pages (%d MiB) of memory from the CPU\n", NPAGES, NPAGES / 256);

	ret = zdev_migrate_to_device(dev, buf, NPAGES, &res);
	if (ret)
		goto out_err;
	printf("migrate: moved %llu pages to device 0: only the device has their data now\n",
	       (unsigned long long)res.cpages);

	/* Read the first quarter from the CPU: each page faults back. */
	for (size_t i = 0; i < nints / 4; i++) {
		sum += (uint64_t)buf[i];
		expected += i;
	}
	printf("migrate: read the first quarter from the CPU: each page faulted back, data %s\n",
	       sum == expected ? "intact" : "WRONG");

	ret = zdev_get_stats(dev, &st);
	if (ret)
		goto out_err;
	printf("migrate: zdevd served %llu CPU faults; pages to the device %llu, back to system "
	       "memory %llu, still on the device %llu\n",
	       (unsigned long long)st.cpu_faults, (unsigned long long)st.pages_to_device,
	       (unsigned long long)st.pages_to_system, (unsigned long long)st.device_pages);
	zdev_free(dev, buf, NPAGES * 4096);
	zdev_close(dev);
	return sum == expected ? 0 : 1;

out_err:
	fprintf(stderr, "zdev: %s\n", strerror(-ret));
	zdev_close(dev);
	return 1;
}
