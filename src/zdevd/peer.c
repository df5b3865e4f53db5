/* SPDX-License-Identifier: MIT */
/* Who may use zdevd: its own user, and with --group root and the group. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "zdevd/peer.h"

int peer_group_by_name(const char *name, gid_t *out)
{
	struct group gr, *found = NULL;
	size_t len = 4096;
	int ret;

	for (;;) {
		char *buf = malloc(len);

		if (!buf)
			return -ENOMEM;
		ret = getgrnam_r(name, &gr, buf, len, &found);
		if (!ret && found)
			*out = found->gr_gid;
		free(buf);
		/* ERANGE: a group with many members needs a larger buffer. */
		if (ret != ERANGE || len >= (1u << 20))
			break;
		len *= 2;
	}
	if (ret)
		return -ret;
	return found ? 0 : -ENOENT;
}

static bool in_list(gid_t gid, const gid_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == gid)
			return true;
	return false;
}

/* The groups of the user uid whose primary group is gid, from the group
 * database: for kernels before 4.13, without SO_PEERGROUPS. */
static int database_groups(uid_t uid, gid_t gid, gid_t **out, size_t *nout)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int n = 64;

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) || !found)
		return -ENOENT;
	for (;;) {
		gid_t *list = malloc((size_t)n * sizeof(*list));
		int want = n;

		if (!list)
			return -ENOMEM;
		if (getgrouplist(found->pw_name, gid, list, &want) >= 0) {
			*out = list;
			*nout = (size_t)want;
			return 0;
		}
		free(list);
		/* want now says how many there are. */
		if (want <= n)
			return -EIO;
		n = want;
	}
}

/* The peer's supplementary groups as the kernel saw them at connect(). */
static int peer_groups(int sock, gid_t **out, size_t *nout)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (;;) {
		gid_t *list = malloc(len ? len : sizeof(gid_t));
		socklen_t got = len;

		if (!list)
			return -ENOMEM;
		if (!getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, list, &got)) {
			*out = list;
			*nout = got / sizeof(gid_t);
			return 0;
		}
		free(list);
		/* ERANGE: got now says how much room the list needs. */
		if (errno != ERANGE || got <= len)
			return -errno;
		len = got;
	}
}

static bool is_member(const struct zdevd *d, int sock, const struct ucred *cred)
{
	gid_t *groups = NULL;
	size_t n = 0;
	bool member;
	int ret;

	if (cred->gid == d->cfg.group)
		return true;
	ret = peer_groups(sock, &groups, &n);
	if (ret == -ENOPROTOOPT)
		ret = database_groups(cred->uid, cred->gid, &groups, &n);
	if (ret) {
		log_warn("pid %d: its groups are unknown (%s): taken as not in group %u",
			 (int)cred->pid, strerror(-ret), (unsigned int)d->cfg.group);
		return false;
	}
	member = in_list(d->cfg.group, groups, n);
	free(groups);
	return member;
}

bool peer_admitted(const struct zdevd *d, int sock, const struct ucred *cred)
{
	if (cred->uid == geteuid())
		return true;
	if (d->cfg.have_group) {
		/* Root could read and change zdevd's memory anyway:
		 * serving it gives it nothing. */
		if (cred->uid == 0 || is_member(d, sock, cred))
			return true;
		log_client_warn("refusing pid %d: uid %u is not ours, nor root, nor in group %u",
				(int)cred->pid, (unsigned int)cred->uid, (unsigned int)d->cfg.group);
		return false;
	}
	log_client_warn("refusing pid %d: uid %u is not ours (see --group)", (int)cred->pid,
			(unsigned int)cred->uid);
	return false;
}

static bool has_capability(const struct __user_cap_data_struct *data, unsigned int cap)
{
	return data[cap / 32].effective & (1u << (cap % 32));
}

void peer_check_capabilities(const struct zdevd *d)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (!d->cfg.have_group || syscall(SYS_capget, &hdr, data))
		return;
	/* process_vm_readv/writev and /proc/PID/mem, maps, smaps and pagemap
	 * check ptrace access to the client; the /proc files are also the
	 * client's user's, 0600 or 0400. */
	if (!has_capability(data, CAP_SYS_PTRACE) || !has_capability(data, CAP_DAC_OVERRIDE))
		log_warn("--group: without CAP_SYS_PTRACE and CAP_DAC_OVERRIDE zdevd cannot serve other users' processes (see zdevd(8), SECURITY)");
}
