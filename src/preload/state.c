/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
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

static bool is_ours(const char *name)
{
	return strstr(name, "libzdev.so") || strstr(name, "libzdev-preload.so");
}

/*
 * Whether a migration runs through the library's code: libzdev's calls go
 * to libc, and in a sanitized program through the sanitizer's interceptors
 * first. Between zdevd's request to zap the pages it copied and the answer,
 * the policy thread must touch none of the pages being moved, or its fault
 * waits for the very migration it is in: so these libraries' data, which
 * their code touches there (libasan's runs to megabytes), is never moved.
 */
static bool runs_migrations(const char *name)
{
	static const char *const libs[] = { "/libc.so", "/libasan.so", "/libubsan.so",
					    "/libtsan.so", "/liblsan.so", "/libhwasan.so" };

	if (is_ours(name))
		return true;
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
		if (strstr(name, libs[i]))
			return true;
	return false;
}

static int find_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	const char *name = info->dlpi_name;
	unsigned int *n = arg;
	bool mine;

	(void)size;
	if (!name || !runs_migrations(name))
		return 0;
	mine = is_ours(name) && *n < 2;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type != PT_LOAD)
			continue;
		/* The data, .bss past the file's end included, is never the
		 * program's to move. */
		if (ph->p_flags & PF_W)
			ranges_exclude(start & ~(PG_SIZE - 1), pg_up(start + ph->p_memsz));
		if (mine && (ph->p_flags & PF_X) && ours[*n].end <= ours[*n].start) {
			ours[*n].start = start;
			ours[*n].end = start + ph->p_memsz;
		}
	}
	*n += mine;
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

/* The top of the 47-bit user address space that AddressSanitizer's shadow
 * covers on x86-64 and on the other 64-bit targets it maps the same way. */
#define ASAN_USER_END	(1ull << 47)

/*
 * A program built with AddressSanitizer has its shadow memory: terabytes of
 * private anonymous mappings that the program never addresses itself and
 * that the sanitizer touches on every access the program makes. Managed,
 * it would take nearly every pick of the stress policy (picks go by size)
 * and leave the program's own memory all but unmoved; it is no more the
 * program's memory than libzdev's is. libasan tells where it is.
 */
static void exclude_asan_shadow(void)
{
	void (*get)(size_t *, size_t *);
	size_t scale = 0, offset = 0;

	*(void **)&get = dlsym(RTLD_DEFAULT, "__asan_get_shadow_mapping");
	if (!get)
		return;
	get(&scale, &offset);
	if (offset)
		ranges_exclude(offset, offset + (ASAN_USER_END >> scale));
}

void state_find_ours(void)
{
	unsigned int n = 0;

	dl_iterate_phdr(find_one, &n);
	exclude_asan_shadow();
}
