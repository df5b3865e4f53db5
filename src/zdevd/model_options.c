/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zdevd/model_options.h"

#define GBPS_MIN 0.001
#define GBPS_MAX 10000.0
#define USEC_MAX 1000000.0

static int complain(const char *option, const char *arg, const char *why)
{
	fprintf(stderr, "zdevd: --%s: '%s': %s\n", option, arg, why);
	return -EINVAL;
}

/* A decimal number, whole: 0 or -EINVAL. */
static int parse_number(const char *s, double *out)
{
	char *end;

	if (!*s || *s == '+' || *s == '-' || *s == ' ')
		return -EINVAL;
	*out = strtod(s, &end);
	return *end || !isfinite(*out) ? -EINVAL : 0;
}

/*
 * "DEV=VALUE" or "VALUE": the model_arg VALUE is for (one device's, or
 * every device's), VALUE in *value. 0 or -EINVAL after a message.
 */
static int pick_target(struct model_args *a, const char *option, const char *arg,
		       struct model_arg *all, struct model_arg *each, struct model_arg **target,
		       const char **value)
{
	const char *eq = strchr(arg, '=');
	unsigned long dev;
	char *end;

	if (!eq) {
		*target = all;
		*value = arg;
		return 0;
	}
	if (eq == arg || arg[0] < '0' || arg[0] > '9')
		return complain(option, arg, "DEV must be a device's index, as in 0=VALUE");
	dev = strtoul(arg, &end, 10);
	if (end != eq || dev >= ZDEV_MAX_DEVICES) {
		char why[96];

		snprintf(why, sizeof(why), "DEV must be a device's index, 0 to %d",
			 ZDEV_MAX_DEVICES - 1);
		return complain(option, arg, why);
	}
	if ((int)dev > a->top_dev) {
		a->top_dev = (int)dev;
		a->top_option = option;
		a->top_arg = arg;
	}
	*target = &each[dev];
	*value = eq + 1;
	return 0;
}

int model_args_link(struct model_args *a, const char *arg)
{
	struct model_arg *t;
	const char *v;
	double gbps;
	int ret;

	ret = pick_target(a, "link", arg, &a->link_all, a->link, &t, &v);
	if (ret)
		return ret;
	t->set = true;
	t->cfg = (struct devmodel_config){ 0 };
	if (!devmodel_preset(v, &t->cfg))
		return 0;
	if (parse_number(v, &gbps))
		return complain("link", arg,
				"a bandwidth in GB/s (such as 16 or 31.5) or a preset: pcie4, pcie5, cxl");
	if (gbps < GBPS_MIN || gbps > GBPS_MAX)
		return complain("link", arg, "the bandwidth must be 0.001 to 10000 GB/s");
	t->cfg.link_bytes_per_sec = (uint64_t)(gbps * 1e9 + 0.5);
	return 0;
}

int model_args_fault(struct model_args *a, const char *arg)
{
	struct model_arg *t;
	const char *v;
	double usec;
	int ret;

	ret = pick_target(a, "fault-latency", arg, &a->fault_all, a->fault, &t, &v);
	if (ret)
		return ret;
	if (parse_number(v, &usec))
		return complain("fault-latency", arg, "a latency in microseconds (such as 20 or 2.5)");
	if (usec > USEC_MAX)
		return complain("fault-latency", arg, "the latency must be at most 1000000 us (1 s)");
	t->set = true;
	t->cfg = (struct devmodel_config){ .fault_ns = (uint64_t)(usec * 1e3 + 0.5) };
	return 0;
}

static const struct model_arg *pick(const struct model_arg *each, const struct model_arg *all)
{
	return each->set ? each : all->set ? all : NULL;
}

int model_args_apply(const struct model_args *a, struct devset_config *devs)
{
	if (a->top_option && (unsigned int)a->top_dev >= devs->ndevices) {
		char why[96];

		snprintf(why, sizeof(why), "names device %d, but --devices is %u", a->top_dev,
			 devs->ndevices);
		return complain(a->top_option, a->top_arg, why);
	}
	for (unsigned int i = 0; i < ZDEV_MAX_DEVICES; i++) {
		const struct model_arg *link = pick(&a->link[i], &a->link_all),
				       *fault = pick(&a->fault[i], &a->fault_all);

		devs->model[i] = link ? link->cfg : (struct devmodel_config){ 0 };
		if (fault)
			devs->model[i].fault_ns = fault->cfg.fault_ns;
	}
	return 0;
}
