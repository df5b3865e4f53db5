/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_ZDEVD_MODEL_WAIT_H
#define ZDEV_ZDEVD_MODEL_WAIT_H

/*
 * A request's share of the device cost model (devmodel.h): what it moved
 * over each modelled link takes at least the link's time, measured from
 * the request's start, before its reply goes. Only the client that asked
 * waits: its worker sleeps, and the other clients' requests and every CPU
 * fault go on meanwhile.
 */

#include <stdint.h>

#include "zdevd/zdevd.h"

/* A request that may move pages begins on the calling worker: its start
 * (CLOCK_MONOTONIC ns), or 0 when no device has a model, and then nothing
 * is counted or waited for. */
uint64_t model_wait_begin(struct zdevd *d);
/* Before the reply of the request that began at t0: waits for what it
 * moved to have crossed the links, in each direction behind the transfers
 * queued before it. Nothing when t0 is 0. */
void model_wait_end(struct zdevd *d, uint64_t t0);

#endif
