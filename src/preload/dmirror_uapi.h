/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PRELOAD_DMIRROR_UAPI_H
#define ZDEV_PRELOAD_DMIRROR_UAPI_H

/*
 * The binary interface of the kernel's HMM test driver (lib/test_hmm.c,
 * the files /dev/hmm_dmirrorN) and of its GUP test file
 * (/sys/kernel/debug/gup_test, mm/gup_test.c), as Linux 6.12 defines them,
 * described here in zdev's words: a program built against the kernel's
 * headers calls the shim's emulation with the same numbers and layouts.
 */

#include <stdint.h>
#include <sys/ioctl.h>

/* One device command: the device accesses npages pages of the caller's
 * memory at addr; ptr is the caller's buffer the data (or the snapshot's
 * bytes) goes to or comes from; cpages and faults are the driver's answer. */
struct dmirror_cmd {
	uint64_t addr;
	uint64_t ptr;
	uint64_t npages;
	uint64_t cpages;
	uint64_t faults;
};

#define DMIRROR_IOC(nr)			_IOWR('H', (nr), struct dmirror_cmd)
#define DMIRROR_READ			DMIRROR_IOC(0x00)
#define DMIRROR_WRITE			DMIRROR_IOC(0x01)
#define DMIRROR_MIGRATE_TO_DEV		DMIRROR_IOC(0x02)
#define DMIRROR_MIGRATE_TO_SYS		DMIRROR_IOC(0x03)
#define DMIRROR_SNAPSHOT		DMIRROR_IOC(0x04)
#define DMIRROR_EXCLUSIVE		DMIRROR_IOC(0x05)
#define DMIRROR_CHECK_EXCLUSIVE		DMIRROR_IOC(0x06)
#define DMIRROR_RELEASE			DMIRROR_IOC(0x07)

/* The driver's snapshot bytes are zdev's ZDEV_PROT_* values (zdev.h). */

/* The memory types of the driver's minors. */
enum dmirror_memory {
	DMIRROR_MEMORY_NONE = 0,	/* no such minor */
	DMIRROR_MEMORY_DEVICE_PRIVATE = 1,
	DMIRROR_MEMORY_DEVICE_COHERENT = 2,
};

/* ---- gup_test: get or pin the pages of a range, as a driver would ---- */

struct gup_test_cmd {
	uint64_t get_delta_usec;	/* out: time the gets or pins took */
	uint64_t put_delta_usec;	/* out: time giving them back took */
	uint64_t addr;
	uint64_t size;			/* in: bytes; out: bytes the loop got through */
	uint32_t nr_pages_per_call;
	uint32_t gup_flags;		/* GUP_FOLL_* */
	uint32_t test_flags;
	uint32_t which_pages[8];	/* DUMP_USER_PAGES_TEST: 1-based page numbers */
};

#define GUP_IOC(nr)			_IOWR('g', (nr), struct gup_test_cmd)
#define GUP_FAST_BENCHMARK		GUP_IOC(1)
#define PIN_FAST_BENCHMARK		GUP_IOC(2)
#define PIN_LONGTERM_BENCHMARK		GUP_IOC(3)
#define GUP_BASIC_TEST			GUP_IOC(4)
#define PIN_BASIC_TEST			GUP_IOC(5)
#define DUMP_USER_PAGES_TEST		GUP_IOC(6)

/* The kernel's FOLL_* bits a caller may pass in gup_flags. */
#define GUP_FOLL_WRITE			0x01u
#define GUP_FOLL_LONGTERM		0x100u

#endif
