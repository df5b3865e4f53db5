/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_LIB_RESCUE_H
#define ZDEV_LIB_RESCUE_H

/*
 * Crash survival, the client's side (rescue_layout.h). libzdev keeps what
 * zdevd hands over: the process's own uffd, its rescue table, and the stores
 * its device pages live in. The agent thread watches zdevd through a pidfd;
 * if zdevd dies, it copies every page that only the device held back into
 * place through the uffd, then closes the uffd, which unregisters every range
 * and lets every waiting fault go on, and the program carries on without a
 * device until a new session starts (rescue_settle, then a new handshake).
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The uffd the handshake just handed to zdevd: true if kept (the caller must
 * not close it), false when one is kept already. */
bool rescue_keep_uffd(int uffd);
/* True when this process's agent runs already (a fork child's parent's
 * does not count). */
bool rescue_attached(void);
/* After the handshake: fetches the table (and a fork child's own uffd) over
 * sock, which the caller has to itself, numbering its (at most two)
 * requests from seq, and starts the agent. Should any step fail, it drops
 * what it kept: the process only goes without crash survival. */
void rescue_attach(int sock, uint64_t seq, pid_t daemon_pid, unsigned int ndevices);
/* The same from the fork child's atfork handler, over the connection that
 * claimed its uffd (sock is the caller's until it returns). */
void rescue_attach_forked(int sock, pid_t daemon_pid, unsigned int ndevices);
/* A store zdevd handed over (STORE): true if kept (the caller must not
 * close fd); false when no agent runs here to use it, dev is out of range
 * or memory ran out. */
bool rescue_take_store(unsigned int dev, uint64_t id, int fd);
/* A migration to the device of [addr, addr + len) is asked for; its reply
 * came (zdevd handled its zaps' events). */
void rescue_migration_begin(uint64_t addr, uint64_t len);
void rescue_migration_end(void);
/* Around the madvise of a zap zdevd asked for: false, and no zap, once
 * zdevd is lost (the rescue may have looked at those pages already). */
bool rescue_zap_begin(void);
void rescue_zap_end(void);
/* True once zdevd has died and the rescue ran (or runs): the session is
 * over, no request can be served in it. */
bool rescue_daemon_lost(void);
/*
 * Before a new session: waits up to wait_ms for the agent to see zdevd gone
 * (and, once its rescue has begun, for the rescue to end), then forgets the
 * old session: every page it had on a device is home, its uffd closed, and
 * the next handshake hands over a new uffd and starts a new agent. 0; also
 * when no agent ran here. -EBUSY while the zdevd the agent watches lives:
 * that zdevd may still hold pages of ours and our uffd's registrations.
 */
int rescue_settle(int wait_ms);
/* What a new session gives the agent to see zdevd gone: zdevd closes its
 * connections before it exits (and, on SIGTERM, before it has brought every
 * page home), so a broken connection comes first. */
#define RESCUE_SETTLE_MS 1000
/* First in the prepare handler of every fork, and first in its parent
 * handler: a rescue waits for the forks under way before it closes the
 * uffd, and a fork that comes after the rescue has begun waits for its end. */
void rescue_fork_prepare(void);
void rescue_fork_returned(void);
/*
 * Around a fork, in the forking thread, with no migration to a device able to
 * start (the caller holds the connection's lock from before the fork until
 * it returns): rescue_fork_begin() lists this process's pages on a device;
 * rescue_fork_parent() forgets the list in the parent, rescue_fork_child()
 * in the child, after its claim, first putting back every listed page the
 * child misses when zdevd died before the claim gave the child an agent.
 */
void rescue_fork_begin(void);
void rescue_fork_parent(void);
void rescue_fork_child(bool daemon_gone);
/*
 * Before a fork that zdevd gets no event of, whose request to bring every
 * page home failed (zdevd is gone, or going): waits up to wait_ms until
 * no page is left on a device, because zdevd brought it home or the rescue
 * did. 0; -ETIMEDOUT if pages are left. Takes no lock a rescue waits for.
 */
int rescue_fork_wait_home(int wait_ms);
/* In a fork child before rescue_fork_child(): pages were on a device when
 * the parent forked, which the child loses if zdevd dies before its claim. */
bool rescue_fork_has_pages(void);
/* In a fork child, first: the parent's uffd and table are not ours (stores
 * are: the pages we share with the parent live there); no agent runs here
 * yet. */
void rescue_atfork_child(void);

#endif
