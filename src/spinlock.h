/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_SPINLOCK_H
#define ZDEV_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

/*
 * A test-and-test-and-set lock for sections of a few dozen instructions. On a
 * machine with fewer cores than threads the holder can be preempted, so a
 * waiter yields after a bounded spin instead of burning its time slice.
 */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

struct spinlock {
	atomic_bool held;
};

#define SPINLOCK_INIT { false }

static inline void spin_init(struct spinlock *l)
{
	atomic_init(&l->held, false);
}

static inline void spin_lock(struct spinlock *l)
{
	unsigned int spins = 0;

	/* acquire: the section's reads see what the previous holder wrote. */
	while (atomic_exchange_explicit(&l->held, true, memory_order_acquire)) {
		while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
			if (++spins < 128)
				cpu_relax();
			else
				sched_yield();
		}
	}
}

static inline void spin_unlock(struct spinlock *l)
{
	/* release: publishes the section's writes to the next holder. */
	atomic_store_explicit(&l->held, false, memory_order_release);
}

#endif
