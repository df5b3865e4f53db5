/* SPDX-License-Identifier: MIT */
/* zdev-run: where zdevd and the shim are, and the private directory. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "tools/zdev-run.h"

#ifndef BINDIR
#define BINDIR "/usr/local/bin"
#endif
#ifndef LIBDIR
#define LIBDIR "/usr/local/lib"
#endif

#define SHIM_NAME "libzdev-preload.so"

/* Whether path is a regular file this process may open with mode (X_OK or
 * R_OK). */
static bool usable(const char *path, int mode)
{
	struct stat st;

	return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, mode);
}

/* dir/name into buf if that is usable with mode. */
static bool try_in(char *buf, size_t len, const char *dir, const char *name, int mode)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n > 0 && (size_t)n < len && usable(buf, mode);
}

/*
 * The directory of the running binary into buf, and whether it is a build
 * tree's .libs, where libtool's wrapper scripts keep the real binaries:
 * then what sits beside the wrapper is one level up. 0 or -errno.
 */
static int exe_dir(char *buf, size_t len, bool *in_libs)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	slash = strrchr(buf, '/');
	*in_libs = slash && !strcmp(slash + 1, ".libs");
	return 0;
}

/* The first executable name in a directory of $PATH. */
static bool try_path_env(char *buf, size_t len, const char *name)
{
	const char *path = getenv("PATH"), *p, *colon;
	char dir[PATH_MAX];

	if (!path)
		return false;
	for (p = path;; p = colon + 1) {
		size_t n;

		colon = strchrnul(p, ':');
		n = (size_t)(colon - p);
		/* An empty entry is the current directory. */
		if (n < sizeof(dir)) {
			memcpy(dir, n ? p : ".", n ? n : 1);
			dir[n ? n : 1] = '\0';
			if (try_in(buf, len, dir, name, X_OK))
				return true;
		}
		if (!*colon)
			return false;
	}
}

int run_find_zdevd(char *buf, size_t len)
{
	const char *env = getenv("ZDEVD");
	char dir[PATH_MAX];
	bool in_libs;

	if (env && *env) {
		if (snprintf(buf, len, "%s", env) >= (int)len || !usable(buf, X_OK)) {
			log_err("ZDEVD=%s: not an executable file", env);
			return -ENOENT;
		}
		return 0;
	}
	if (!exe_dir(dir, sizeof(dir), &in_libs)) {
		if (in_libs && try_in(buf, len, dir, "../zdevd", X_OK))
			return 0;
		if (try_in(buf, len, dir, "zdevd", X_OK))
			return 0;
	}
	if (try_in(buf, len, BINDIR, "zdevd", X_OK) || try_path_env(buf, len, "zdevd"))
		return 0;
	log_err("cannot find zdevd (not beside zdev-run, in %s or on PATH): set ZDEVD to it", BINDIR);
	return -ENOENT;
}

/* An absolute path in buf, which LD_PRELOAD can hold. 0 or -errno. */
static int shim_path(char *buf, size_t len)
{
	char abs[PATH_MAX];

	if (!realpath(buf, abs))
		return -errno;
	if (strlen(abs) >= len)
		return -ENAMETOOLONG;
	/* LD_PRELOAD separates its entries with either. */
	if (strpbrk(abs, " :"))
		return -EINVAL;
	strcpy(buf, abs);
	return 0;
}

int run_find_shim(char *buf, size_t len)
{
	const char *env = getenv("ZDEV_PRELOAD");
	char dir[PATH_MAX];
	bool in_libs, found;
	int ret;

	if (env && *env) {
		found = snprintf(buf, len, "%s", env) < (int)len && usable(buf, R_OK);
		if (!found) {
			log_err("ZDEV_PRELOAD=%s: not a readable file", env);
			return -ENOENT;
		}
	} else {
		found = !exe_dir(dir, sizeof(dir), &in_libs) &&
			(try_in(buf, len, dir, ".libs/" SHIM_NAME, R_OK) ||
			 (in_libs && try_in(buf, len, dir, SHIM_NAME, R_OK)));
		if (!found && !try_in(buf, len, LIBDIR, SHIM_NAME, R_OK)) {
			log_err("cannot find the shim %s (not in the build tree beside zdev-run, nor in %s): set ZDEV_PRELOAD to it",
				SHIM_NAME, LIBDIR);
			return -ENOENT;
		}
	}
	ret = shim_path(buf, len);
	if (ret)
		log_err("%s: %s", buf,
			ret == -EINVAL ? "LD_PRELOAD cannot hold a path with a space or a colon"
				       : strerror(-ret));
	return ret;
}

int run_make_dir(char *buf, size_t len)
{
	const char *bases[] = { getenv("XDG_RUNTIME_DIR"), "/tmp" };
	const size_t sun_len = sizeof(((struct sockaddr_un *)0)->sun_path);
	char stats[PATH_MAX];
	int ret = -ENAMETOOLONG;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		int n;

		if (!bases[i] || !*bases[i])
			continue;
		n = snprintf(buf, len, "%s/zdev-run.XXXXXX", bases[i]);
		if (n < 0 || (size_t)n >= len ||
		    (size_t)n + 1 + strlen(RUN_SOCKET_NAME) >= sun_len)
			continue;
		if (!mkdtemp(buf)) {
			ret = -errno;
			continue;
		}
		snprintf(stats, sizeof(stats), "%s/" RUN_STATS_NAME, buf);
		if (!mkdir(stats, 0700))
			return 0;
		ret = -errno;
		rmdir(buf);
	}
	log_err("cannot make a private directory under $XDG_RUNTIME_DIR or /tmp: %s", strerror(-ret));
	return ret;
}

/* Removes every entry of dir that is a file or an empty directory. */
static void empty_dir(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) && errno == EISDIR)
			unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

bool run_policy_fell_back(const char *stats_dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/" RUN_POLICY_NONE_MARK, stats_dir);
	return !access(path, F_OK);
}

void run_remove_dir(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/" RUN_STATS_NAME, dir);
	empty_dir(path);
	if (rmdir(path) && errno != ENOENT)
		log_warn("%s: %s: left in place", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/" RUN_SOCKET_NAME, dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/" RUN_TRACE_NAME, dir);
	unlink(path);
	if (rmdir(dir))
		log_warn("%s: %s: left in place", dir, strerror(errno));
}
