/* SPDX-License-Identifier: MIT */
/*
 * The well-behaved client of fuzz-session: a libzdev program with pages on
 * both of the fuzzed zdevd's devices, which never touches them from the CPU
 * and so expects them to stay where it left them whatever another client
 * sends. It takes one command a line on stdin and answers "ok" or what is
 * wrong on stdout:
 *
 *   setup    opens devices 0 (private) and 1 (coherent), fills PAGES pages
 *            and moves the first ON_PRIVATE to device 0, the next
 *            ON_COHERENT to device 1
 *   check    the pages are where setup left them (snapshots), hold its data
 *            (device reads, which move nothing) and each device counts them
 *   restore  after a RELEASE of another client's, which is device-wide: the
 *            data is whole, and the pages go back to the devices
 */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zdev.h"

#define PAGE 4096ul
#define PAGES 64ul
#define ON_PRIVATE 32ul
#define ON_COHERENT 16ul

static struct zdev *dev[2];
static uint8_t *mem;
static uint8_t copy[PAGES * PAGE];

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return -1;
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / PAGE);
}

/* all: every page must move (after a RELEASE, some may be there still). */
static int move_to_devices(bool all)
{
	struct zdev_result res = { 0 };
	int ret;

	ret = zdev_migrate_to_device(dev[0], mem, ON_PRIVATE, &res);
	if (ret || (all && res.cpages != ON_PRIVATE))
		return fail("migrate to device 0: %d, %llu pages", ret,
			    (unsigned long long)res.cpages);
	ret = zdev_migrate_to_device(dev[1], mem + ON_PRIVATE * PAGE, ON_COHERENT, &res);
	if (ret || (all && res.cpages != ON_COHERENT))
		return fail("migrate to device 1: %d, %llu pages", ret,
			    (unsigned long long)res.cpages);
	return 0;
}

static int setup(void)
{
	int ret;

	for (unsigned int i = 0; i < 2; i++) {
		ret = zdev_open(NULL, i, &dev[i]);
		if (ret)
			return fail("zdev_open %u: %d", i, ret);
	}
	mem = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return fail("mmap");
	for (size_t i = 0; i < PAGES * PAGE; i++)
		mem[i] = pattern(i);
	return move_to_devices(true);
}

static int check_data(void)
{
	struct zdev_result res = { 0 };
	int ret = zdev_read(dev[0], mem, PAGES, copy, &res);

	if (ret)
		return fail("device read: %d", ret);
	for (size_t i = 0; i < PAGES * PAGE; i++)
		if (copy[i] != pattern(i))
			return fail("byte %zu: %#x, not %#x", i, copy[i], pattern(i));
	return 0;
}

static uint8_t expected_kind(size_t page)
{
	if (page < ON_PRIVATE)
		return ZDEV_PROT_DEV_PRIVATE_LOCAL;
	if (page < ON_PRIVATE + ON_COHERENT)
		return ZDEV_PROT_DEV_COHERENT_REMOTE;
	return 0;
}

static int check(void)
{
	const uint64_t want[2] = { ON_PRIVATE, ON_COHERENT };
	struct zdev_result res = { 0 };
	uint8_t prot[PAGES];
	int ret;

	ret = zdev_snapshot(dev[0], mem, PAGES, prot, &res);
	if (ret)
		return fail("snapshot: %d", ret);
	for (size_t i = 0; i < PAGES; i++)
		if ((prot[i] & 0xf0) != expected_kind(i))
			return fail("page %zu: snapshot %#x", i, prot[i]);
	for (unsigned int i = 0; i < 2; i++) {
		struct zdev_stats st = { .size = sizeof(st) };

		ret = zdev_get_stats(dev[i], &st);
		if (ret || st.device_pages != want[i])
			return fail("device %u: stats %d, %llu device pages", i, ret,
				    (unsigned long long)st.device_pages);
	}
	return check_data();
}

int main(void)
{
	char line[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		int ret;

		if (!strcmp(line, "setup\n"))
			ret = setup();
		else if (!strcmp(line, "check\n"))
			ret = check();
		else if (!strcmp(line, "restore\n"))
			ret = check_data() ?: move_to_devices(false);
		else
			ret = fail("unknown command");
		if (!ret)
			puts("ok");
	}
	return 0;
}
