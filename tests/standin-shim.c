/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for libzdev-preload.so in zdev-run's tests. Preloaded into every
 * process image of the program, it writes one statistics file in the format
 * of zdev-run(1), FILES, with known counts (and keys zdev-run does not know,
 * which it must step over), so that what zdev-run sums can be checked
 * without a device. It reports the ZDEV_POLICY and ZDEV_SEED it was given.
 * With STANDIN_SHIM_MALFORMED=1 the file is cut short instead.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((constructor)) static void standin_write_stats(void)
{
	const char *dir = getenv("ZDEV_STATS_DIR"), *policy = getenv("ZDEV_POLICY");
	const char *seed = getenv("ZDEV_SEED"), *bad = getenv("STANDIN_SHIM_MALFORMED");
	char path[4096], hist[256];
	struct timespec ts;
	int fd, n = 0;

	if (!dir || !*dir)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(path, sizeof(path), "%s/%d.%lld%09ld.json", dir, (int)getpid(),
		 (long long)ts.tv_sec, ts.tv_nsec);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (bad && !strcmp(bad, "1")) {
		dprintf(fd, "{\"pid\":%d,\"cpu_faults\":", (int)getpid());
		close(fd);
		return;
	}
	/* Four faults in [1024, 2048) ns and one in [2048, 4096) ns. */
	for (int i = 0; i < 40; i++)
		n += snprintf(hist + n, sizeof(hist) - (size_t)n, "%s%d", i ? "," : "",
			      i == 10 ? 4 : i == 11 ? 1 : 0);
	dprintf(fd,
		"{\"pid\":%d,\"policy\":\"%s\",\"seed\":%s,\"cpu_faults\":5,\"device_faults\":2,"
		"\"pages_to_device\":100,\"pages_to_system\":40,\"exclusive_grants\":3,"
		"\"exclusive_revokes\":1,\"peak_device_pages\":256,\"managed_peak_bytes\":1048576,"
		"\"fault_max_ns\":3000,\"fault_p50_ns\":1536,\"standin\":{\"a\":[1,2.5,-3e2,\"x\\\"y\"],"
		"\"b\":null,\"c\":true},\"fault_hist\":[%s]}\n",
		(int)getpid(), policy ? policy : "none", seed && *seed ? seed : "0", hist);
	close(fd);
}
