/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_MODEL_OPTIONS_H
#define ZDEV_ZDEVD_MODEL_OPTIONS_H

/*
 * --link and --fault-latency (zdevd(8), "Device model"), each either for
 * every device (--link pcie4, --fault-latency 20) or for one
 * (--link 0=16, --fault-latency 1=50). A device's own value wins over the
 * one for every device, and an explicit --fault-latency over a preset's.
 */

#include <stdbool.h>
#include <stdint.h>

#include "device.h"

struct model_arg {
	bool set;
	struct devmodel_config cfg;	/* --link: link and (a preset) fault */
};

struct model_args {
	struct model_arg link_all, link[ZDEV_MAX_DEVICES];
	struct model_arg fault_all, fault[ZDEV_MAX_DEVICES];
	/* the highest device named and the argument that named it, checked
	 * against --devices once that is known */
	int top_dev;
	const char *top_option, *top_arg;
};

/* One --link or --fault-latency: 0, or -EINVAL after a message. */
int model_args_link(struct model_args *a, const char *arg);
int model_args_fault(struct model_args *a, const char *arg);
/* Each device's model into devs (whose ndevices is final): 0, or -EINVAL
 * after a message when an option named a device zdevd does not have. */
int model_args_apply(const struct model_args *a, struct devset_config *devs);

#endif
