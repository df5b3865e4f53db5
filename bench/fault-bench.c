/* SPDX-License-Identifier: MIT */
/*
 * fault_p50, fault_p99: a CPU read of a device-private page until the access
 * completes, every page once in random order, against a minimal handler in a
 * separate process (blocking read(2), UFFDIO_COPY from its own buffer, not
 * pinned) serving the same kind of MISSING faults in the same run.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon-cpu.h"
#include "figure.h"
#include "page.h"
#include "touch.h"
#include "proto.h"
#include "uffd_probe.h"
#include "zdev.h"
#include "zdevd-harness.h"

#define NPAGES 4096
#define ROUNDS 3

/* ---- the baseline: a minimal handler process ---- */

static void handler_main(int sock)
{
	static char page[PG_SIZE] __attribute__((aligned(PG_SIZE)));
	struct uffd_msg msg;
	int uffd;

	memset(page, 0x5a, sizeof(page));
	if (zmsg_recv(sock, &(union zmsg){ 0 }, &uffd) < 0 || uffd < 0)
		_exit(1);
	/* blocking reads */
	fcntl(uffd, F_SETFL, fcntl(uffd, F_GETFL) & ~O_NONBLOCK);
	for (;;) {
		struct uffdio_copy copy = { .src = (uintptr_t)page, .len = PG_SIZE };

		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			_exit(0);
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		copy.dst = msg.arg.pagefault.address & ~(PG_SIZE - 1);
		ioctl(uffd, UFFDIO_COPY, &copy);
	}
}

static int baseline_round(const size_t *order, double *lat)
{
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	int sv[2], uffd, status;
	union zmsg m;
	char *buf;
	pid_t pid;

	uffd = uffd_create(0);
	if (uffd < 0 || uffd_handshake(uffd, 0, NULL, NULL))
		return -1;
	buf = mmap(NULL, NPAGES * PG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	reg.range.start = (uintptr_t)buf;
	reg.range.len = NPAGES * PG_SIZE;
	if (buf == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -1;
	socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		handler_main(sv[1]);
	}
	close(sv[1]);
	zmsg_init(&m, ZMSG_HELLO, 0);
	zmsg_send(sv[0], &m, uffd);
	close(uffd);
	touch_pages(buf, order, NPAGES, lat);
	munmap(buf, NPAGES * PG_SIZE);
	close(sv[0]);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return 0;
}

int main(void)
{
	static double zlat[ROUNDS * NPAGES], blat[ROUNDS * NPAGES];
	struct zdevd_instance z;
	struct zdev *dev;
	size_t *order = malloc(NPAGES * sizeof(*order));
	double cpu0, cpu1;
	int ret;

	zdevd_start_plain(&z, NULL);
	ret = zdev_open(NULL, 0, &dev);
	if (ret) {
		fprintf(stderr, "fault-bench: zdev_open: %s\n", strerror(-ret));
		zdevd_stop(&z);
		return 1;
	}
	cpu0 = process_cpu_seconds(z.pid);
	for (int r = 0; r < ROUNDS; r++) {
		page_order(order, NPAGES, 1000 + r, true);
		ret = touch_round_zdev(dev, zdev_migrate_to_device, NPAGES, order, zlat + r * NPAGES);
		if (!ret)
			ret = baseline_round(order, blat + r * NPAGES);
		if (ret) {
			fprintf(stderr, "fault-bench: round %d failed: %s\n", r, strerror(ret < 0 ? -ret : EIO));
			break;
		}
	}
	cpu1 = process_cpu_seconds(z.pid);
	zdev_close(dev);
	zdevd_stop(&z);
	if (ret)
		return 1;
	{
		double zp50 = percentile(zlat, ROUNDS * NPAGES, 0.50) / 1e3;
		double zp99 = percentile(zlat, ROUNDS * NPAGES, 0.99) / 1e3;
		double bp50 = percentile(blat, ROUNDS * NPAGES, 0.50) / 1e3;
		double bp99 = percentile(blat, ROUNDS * NPAGES, 0.99) / 1e3;

		figure("fault_p50", zp50, "us", bp50, "us");
		figure("fault_p99", zp99, "us", bp99, "us");
		printf("zdevd cpu: %.3f s for %d faults\n", cpu1 - cpu0, ROUNDS * NPAGES);
	}
	free(order);
	return 0;
}
