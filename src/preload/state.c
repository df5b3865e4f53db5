/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <link.h>
#include <string.h>

#include "page.h"
#include "preload/ranges.h"
#include "preload/state.h"

int shim_stderr = -1;
struct shim shim = { .as_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP };

/* The text of libzdev and of the shim itself. */
static struct {
	uintptr_t start, end;
} ours[2];

static int find_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = info->dlpi_name;
	unsigned int *n = arg;

	(void)size;
	if (*n >= 2 || !name || (!strstr(name, "libzdev.so") && !strstr(name, "libzdev-preload.so")))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD)
			continue;
		/* Our data, .bss past the file's end included, is never the
		 * program's to move. */
		if (ph->p_flags & PF_W)
			ranges_exclude(start & ~(PG_SIZE - 1), pg_up(start + ph->p_memsz));
		if ((ph->p_flags & PF_X) && ours[*n].end <= ours[*n].start) {
			ours[*n].start = start;
			ours[*n].end = start + ph->p_memsz;
		}
	}
	(*n)++;
	return 0;
}

bool state_is_ours(const void *ra)
{
	const uintptr_t a = (uintptr_t)ra;

	for (unsigned int i = 0; i < 2; i++)
		if (a >= ours[i].start && a < ours[i].end)
			return true;
	return false;
}

bool state_as_begin(void)
{
	if (!atomic_load_explicit(&shim.moving, memory_order_relaxed))
		return false;
	/* EDEADLK: this thread holds it for writing already (the policy's
	 * own calls, fork's preparation): the change is excluded as it is. */
	return pthread_rwlock_rdlock(&shim.as_lock) == 0;
}

void state_as_end(bool locked)
{
	if (locked)
		pthread_rwlock_unlock(&shim.as_lock);
}

void state_find_ours(void)
{
	unsigned int n = 0;

	dl_iterate_phdr(find_one, &n);
}
