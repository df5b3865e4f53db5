/* SPDX-License-Identifier: MIT */
/* zdevd's --pidfile: see pidfile.h. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zdevd/pidfile.h"

static int complain(const char *path, const char *why)
{
	fprintf(stderr, "zdevd: --pidfile: '%s': %s\n", path, why);
	return -EINVAL;
}

/* Says which process holds the file, from what it wrote there. */
static int held(int fd, const char *path)
{
	char pid[24] = "", why[64];
	ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

	pid[n > 0 ? n : 0] = '\0';
	pid[strcspn(pid, "\n")] = '\0';
	if (pid[0])
		snprintf(why, sizeof(why), "zdevd %s runs with it", pid);
	else
		snprintf(why, sizeof(why), "another zdevd runs with it");
	complain(path, why);
	return -EEXIST;
}

/* Whether fd is still the file at path: the zdevd that held it may have
 * removed it between our open and our lock. */
static bool still_there(int fd, const char *path)
{
	struct stat a, b;

	return !fstat(fd, &a) && !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int pidfile_claim(const char *path)
{
	int fd, ret;

	for (int tries = 0; tries < 8; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
		if (fd < 0) {
			ret = -errno;
			complain(path, strerror(errno));
			return ret;
		}
		/* An flock is the running zdevd's alone and goes with it: a
		 * pid in the file could be another process's by now. */
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			ret = errno == EWOULDBLOCK ? held(fd, path) : -errno;
			if (ret != -EEXIST)
				complain(path, strerror(-ret));
			close(fd);
			return ret;
		}
		if (still_there(fd, path))
			return fd;
		close(fd);
	}
	complain(path, "removed again and again while zdevd locked it");
	return -EAGAIN;
}

int pidfile_write(int fd, const char *path, pid_t pid)
{
	char line[24];
	int len = snprintf(line, sizeof(line), "%ld\n", (long)pid);
	int ret;

	errno = 0;
	if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)len, 0) != len) {
		ret = errno ? -errno : -EIO;
		complain(path, strerror(-ret));
		return ret;
	}
	return 0;
}

void pidfile_remove(int fd, const char *path)
{
	/* Unlinked before the lock goes: a zdevd starting now either finds
	 * no file or one it cannot lock, never this one unlocked. */
	unlink(path);
	close(fd);
}
