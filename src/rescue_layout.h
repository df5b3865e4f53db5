/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_RESCUE_LAYOUT_H
#define ZDEV_RESCUE_LAYOUT_H

/*
 * What a client needs to take its device pages back if zdevd dies
 * (docs/architecture.md, "Surviving zdevd"), shared by zdevd, which writes it, and libzdev, which reads it only
 * once zdevd is gone.
 *
 * Stores: per process and device, a memfd the size of the device's memory.
 * A device page with pfn p that holds this process's data lives at offset
 * p * 4096 of its store: zdevd maps the store over every 2 MiB block of the
 * pool the process's pages occupy, and a block holds one store's pages at a
 * time. A fork child's shared pages live in its parent's store, whose fd the
 * child inherited.
 *
 * The rescue table: a memfd of ndevices * dev_pages entries; entry
 * dev * dev_pages + pfn says at which address this process maps that device
 * page and which store holds it. zdevd writes an entry after the page's data
 * is in the store and before the client loses its own copy (the zap), and
 * clears it before the device page is freed, so at any moment zdevd may die
 * the table names every page only the device holds.
 */

#include <stdatomic.h>
#include <stdint.h>

#define RESCUE_VALID 1ull	/* in vaddr: the entry is in use */

struct rescue_entry {
	/* The page's address | RESCUE_VALID, or 0. Written last, with
	 * release order, so a valid entry's store is never torn. */
	_Atomic uint64_t vaddr;
	uint64_t store;		/* the store's id */
};

#endif
