/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_XMAP_LAYOUT_H
#define ZDEV_XMAP_LAYOUT_H

/*
 * The client's exclusive-page map, which libzdev keeps in its own memory and
 * zdevd reads with process_vm_readv: the one record of which pages a device
 * holds exclusively, so that the SIGSEGV handler revokes without a message
 * and zdevd learns of revocations before its next access to the process.
 *
 * A directory of XMAP_DIR_ENTRIES pointers, one per GiB of the 47-bit user
 * address space, each NULL or a leaf of one 16-bit state per page. Leaves are
 * mapped on demand and never unmapped, so a lock-free reader (the signal
 * handler, zdevd) never meets a freed leaf.
 */

#include <stdint.h>

#define XMAP_PAGE_SHIFT		12
#define XMAP_LEAF_SHIFT		18	/* pages a leaf covers: 1 GiB */
#define XMAP_LEAF_PAGES		(1ul << XMAP_LEAF_SHIFT)
#define XMAP_ADDR_BITS		47
#define XMAP_DIR_ENTRIES	(1ul << (XMAP_ADDR_BITS - XMAP_PAGE_SHIFT - XMAP_LEAF_SHIFT))

/* A page's state */
#define XS_PROT_MASK	0x0007u		/* PROT_READ/WRITE/EXEC to restore */
#define XS_DEV_SHIFT	4
#define XS_DEV_MASK	(0x7u << XS_DEV_SHIFT)
#define XS_EXCL		0x0100u		/* the device holds it; the CPU may not */
#define XS_BUSY		0x0200u		/* pinned (a device atomic in flight, or a
					 * grant not PROT_NONE yet): revocation waits */
#define XS_REVOKING	0x0400u		/* a thread is restoring the protection */
#define XS_WAS		0x0800u		/* was exclusive until lately: a fault here
					 * may have raced the revocation */

static inline unsigned int xs_dev(uint16_t s)
{
	return (s & XS_DEV_MASK) >> XS_DEV_SHIFT;
}

static inline uint16_t xs_excl(unsigned int dev, unsigned int prot)
{
	return (uint16_t)(XS_EXCL | (dev << XS_DEV_SHIFT) | (prot & XS_PROT_MASK));
}

#endif
