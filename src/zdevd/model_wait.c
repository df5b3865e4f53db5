/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "devmodel.h"
#include "lathist.h"
#include "page.h"
#include "zdevd/model_wait.h"

static bool any_model(const struct devset *ds)
{
	for (unsigned int i = 0; i < ds->ndevices; i++)
		if (devmodel_on(&ds->dev[i].model))
			return true;
	return false;
}

uint64_t model_wait_begin(struct zdevd *d)
{
	if (!any_model(&d->devs))
		return 0;
	devmodel_begin();
	return lathist_now_ns();
}

void model_wait_end(struct zdevd *d, uint64_t t0)
{
	struct devmodel *last = NULL;
	uint64_t deadline = 0;

	if (!t0)
		return;
	for (unsigned int i = 0; i < d->devs.ndevices; i++) {
		struct devmodel *m = &d->devs.dev[i].model;
		uint64_t pages[DEVMODEL_DIRS];

		devmodel_moved(i, pages);
		if (!m->cfg.link_bytes_per_sec)
			continue;
		for (int dir = 0; dir < DEVMODEL_DIRS; dir++) {
			uint64_t end;

			if (!pages[dir])
				continue;
			end = devmodel_reserve(m, (enum devmodel_dir)dir, t0, pages[dir] * PG_SIZE);
			if (end > deadline) {
				deadline = end;
				last = m;
			}
		}
	}
	devmodel_end();
	/* The links of several devices carry their parts at once: the request
	 * ends with the last, whose device the wait is charged to. */
	if (last)
		atomic_fetch_add_explicit(&last->added_ns, devmodel_wait_until(deadline),
					  memory_order_relaxed);
}
