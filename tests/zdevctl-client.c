/* SPDX-License-Identifier: MIT */
/*
 * A client for tests/test-zdevctl.sh to show in zdevctl's list:
 *
 *   zdevctl-client DEVICE NPAGES [check]
 *	Opens DEVICE on the zdevd of ZDEV_SOCKET, moves NPAGES pages of its
 *	memory there, says "ready" on standard output, and holds them until
 *	its standard input closes; with check, then reads them back (each
 *	read may be a CPU fault). Exit 77 when zdevd cannot serve it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zdev.h"

int main(int argc, char **argv)
{
	struct zdev_result res = { 0 };
	unsigned int device;
	struct zdev *dev;
	size_t npages;
	char *buf, c;
	int ret;

	if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "check"))) {
		fprintf(stderr, "usage: zdevctl-client DEVICE NPAGES [check]\n");
		return 2;
	}
	device = (unsigned int)strtoul(argv[1], NULL, 0);
	npages = strtoul(argv[2], NULL, 0);
	ret = zdev_open(NULL, device, &dev);
	if (ret) {
		fprintf(stderr, "zdevctl-client: zdev_open: %s\n", strerror(-ret));
		return 77;
	}
	ret = zdev_alloc(dev, npages * 4096, (void **)&buf);
	if (ret)
		goto out_close;
	memset(buf, 0x5a, npages * 4096);
	ret = zdev_migrate_to_device(dev, buf, npages, &res);
	if (ret || res.cpages != npages) {
		fprintf(stderr, "zdevctl-client: %llu of %zu pages moved\n",
			(unsigned long long)res.cpages, npages);
		ret = ret ?: -1;
		goto out_free;
	}
	printf("ready\n");
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	/* Wherever the pages went meanwhile (an unplug brings them home),
	 * their data is what was written. */
	for (size_t i = 0; argc == 4 && i < npages * 4096 && !ret; i++)
		if (buf[i] != 0x5a) {
			fprintf(stderr, "zdevctl-client: byte %zu is %#x\n", i,
				(unsigned char)buf[i]);
			ret = -1;
		}
out_free:
	zdev_free(dev, buf, npages * 4096);
out_close:
	if (ret)
		fprintf(stderr, "zdevctl-client: %s\n", ret < 0 ? strerror(-ret) : "failed");
	zdev_close(dev);
	return ret ? 1 : 0;
}
