/* SPDX-License-Identifier: MIT */
/*
 * The driver's commands, each on libzdev's call of the same meaning, with
 * the driver's checks, counters and errors (lib/test_hmm.c of Linux 6.12):
 * the command is read from the program's memory and written back only when
 * it succeeded; cpages and faults start at 0.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "page.h"
#include "preload/dmirror.h"
#include "preload/fdtab.h"
#include "zdev.h"

/* The driver's MIGRATE_TO_DEV and EXCLUSIVE end with a read of the range
 * through the device's own table into the caller's buffer: the data the
 * device now holds. */
static int read_back(struct dmirror *d, struct dmirror_cmd *cmd)
{
	struct zdev_result res = { 0 };
	int ret = zdev_read(d->dev, (void *)(uintptr_t)cmd->addr, cmd->npages,
			    (void *)(uintptr_t)cmd->ptr, &res);

	if (!ret)
		cmd->cpages = res.cpages;
	return ret;
}

static int migrate_to_dev(struct dmirror *d, struct dmirror_cmd *cmd)
{
	struct zdev_result res = { 0 };
	int ret = zdev_migrate_to_device(d->dev, (void *)(uintptr_t)cmd->addr, cmd->npages, &res);

	return ret ?: read_back(d, cmd);
}

static int exclusive(struct dmirror *d, struct dmirror_cmd *cmd)
{
	struct zdev_result res = { 0 };
	int ret = zdev_make_exclusive(d->dev, (void *)(uintptr_t)cmd->addr, cmd->npages, &res);

	/* 6.12's driver answers EBUSY whenever a page could not be made
	 * exclusive, whatever the reason; the pages before it stay so. */
	if (ret)
		return ret == -ENOMEM || ret == -ENODEV ? ret : -EBUSY;
	return read_back(d, cmd);
}

/* One command on d: 0 with cmd's counters set, or -errno. */
static int run(struct dmirror *d, unsigned long req, struct dmirror_cmd *cmd)
{
	void *addr = (void *)(uintptr_t)cmd->addr, *ptr = (void *)(uintptr_t)cmd->ptr;
	struct zdev_result res = { 0 };
	int ret;

	switch (req) {
	case DMIRROR_READ:
		ret = zdev_read(d->dev, addr, cmd->npages, ptr, &res);
		break;
	case DMIRROR_WRITE:
		ret = zdev_write(d->dev, addr, cmd->npages, ptr, &res);
		break;
	case DMIRROR_MIGRATE_TO_DEV:
		return migrate_to_dev(d, cmd);
	case DMIRROR_MIGRATE_TO_SYS:
		ret = zdev_migrate_to_system(d->dev, addr, cmd->npages, &res);
		break;
	case DMIRROR_SNAPSHOT:
		ret = zdev_snapshot(d->dev, addr, cmd->npages, ptr, &res);
		break;
	case DMIRROR_EXCLUSIVE:
		return exclusive(d, cmd);
	case DMIRROR_CHECK_EXCLUSIVE:
		return zdev_check_exclusive(d->dev, addr, cmd->npages);
	case DMIRROR_RELEASE:
		return zdev_release(d->dev);
	default:
		return -EINVAL;
	}
	if (!ret) {
		cmd->cpages = res.cpages;
		cmd->faults = res.faults;
	}
	return ret;
}

long dmirror_ioctl(struct fdtab_file *f, unsigned long req, void *arg)
{
	struct dmirror *d = f->priv;
	struct dmirror_cmd cmd;
	int ret;

	/* The kernel's mirror stays bound to the address space of the
	 * process that opened the file; a fork child's is another one, which
	 * no handle of the parent can reach (zdev-preload(7)). */
	if (d->opener != getpid())
		return -EINVAL;
	if (dmirror_copy_in(&cmd, (uint64_t)(uintptr_t)arg, sizeof(cmd)))
		return -EFAULT;
	/* The driver's own checks, in its order, before it looks at the
	 * command: an unaligned address, and a range that is empty or wraps
	 * (npages is shifted as the driver shifts it, overflow and all). */
	if (cmd.addr & (PG_SIZE - 1))
		return -EINVAL;
	if (cmd.addr >= cmd.addr + (cmd.npages << PG_SHIFT))
		return -EINVAL;
	cmd.cpages = 0;
	cmd.faults = 0;
	ret = run(d, req, &cmd);
	if (ret)
		return ret;
	return dmirror_copy_out((uint64_t)(uintptr_t)arg, &cmd, sizeof(cmd));
}
