/* SPDX-License-Identifier: MIT */
#ifndef ZDEV_PROTO_H
#define ZDEV_PROTO_H

/*
 * The zdevd wire protocol, shared by the daemon and libzdev.
 *
 * A client process holds one SOCK_SEQPACKET connection: every message is one
 * datagram, a header and a fixed body for its type. Requests carry a sequence
 * number the reply repeats. Bulk data never crosses the socket: the daemon
 * reads and writes the buffers the request names in the client's own memory.
 *
 *   HELLO    -> HELLO_OK        version and pid; the answer may carry an fd of
 *                               /dev/userfaultfd and names the proof address
 *   UFFD     -> REPLY           the process's one uffd (SCM_RIGHTS), which the
 *                               daemon proves through a page the client mapped
 *                               at the proof address before it uses it
 *   OPEN     -> REPLY           the client starts using a device
 *   CLOSE    -> REPLY           its pages on that device come back to system RAM
 *   MIGRATE_TO_DEV -> ZAP* -> REPLY
 *            the daemon asks the client to zap each range it copied (only the
 *            client can madvise itself); the client answers each ZAP with ZAPPED
 *            and, before that, to turn a private file mapping whose
 *            copy-on-write pages are to move into anonymous memory (ANONYMIZE,
 *            answered with ANONYMIZED): a uffd cannot register a file mapping
 *   MIGRATE_TO_SYS, READ, WRITE, SNAPSHOT, RELEASE, SET_FLAGS -> REPLY
 *   STATS    -> STATS_OK
 *   a fork child says HELLO with ZHELLO_FORKED from its atfork handler, and
 *   proves with a proof page (UFFD without an fd) which of its parent's fork
 *   events brought its uffd
 *   STATUS   -> STATUS_OK       zdevctl: the whole daemon
 *   DEVICE_STATUS -> DEVICE_STATUS_OK  zdevctl: one device's counters over
 *                               every client (req.device)
 *   CLIENTS  -> CLIENTS_OK      zdevctl: a page of the client processes, by
 *                               pid, those after req.arg; `more` says whether
 *                               another page follows
 *   EXCLUSIVE, ATOMIC_ADD -> XMAP* -> REPLY
 *            only the client can mprotect itself: the daemon asks it to grant
 *            (populate writable, record, PROT_NONE), revoke or forget ranges
 *            of its exclusive-page map (xmap_layout.h); each XMAP is answered
 *            with XMAP_DONE. READ, WRITE and MIGRATE_TO_DEV may ask the same.
 *            ATOMIC_ADD's REPLY carries the counter's old value in old_value.
 *   CHECK_EXCLUSIVE -> REPLY
 *   XMOVED   -> REPLY           on a second connection (HELLO with ZHELLO_AUX):
 *            was addr moved by mremap while exclusive? status 0 and the
 *            protection to restore in prot, or -ENOENT
 *   RESCUE   -> REPLY + fd      what the client keeps to take its device pages
 *            back if zdevd dies (rescue_layout.h): arg RESCUE_TABLE (dev_pages =
 *            the pages of each device), RESCUE_UFFD (a fork child's own uffd,
 *            which only zdevd held)
 *   STORE (+ fd) -> STORED      in the middle of a MIGRATE_TO_DEV, before any
 *            page goes into a new store of the client's, zdevd hands it over
 *   FORK_PREPARE -> REPLY       without fork events (HELLO_OK lacks
 *            ZFEAT_FORK_EVENTS), from the atfork prepare handler: every
 *            device page of the process comes home before it forks
 *   UNPLUG, PLUG -> REPLY       zdevctl, root or zdevd's own user: device
 *            req.device goes (every page on it comes home; cpages = how
 *            many), or comes back fresh and empty
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lathist.h"

#define ZDEV_PROTO_VERSION 10
#define ZDEV_PROTO_MAGIC 0x7a646576u	/* "zdev" */
#define ZDEV_MAX_DEVICES 8

enum zmsg_type {
	ZMSG_HELLO = 1,
	ZMSG_HELLO_OK,
	ZMSG_UFFD,
	ZMSG_OPEN,
	ZMSG_CLOSE,
	ZMSG_MIGRATE_TO_DEV,
	ZMSG_ZAP,
	ZMSG_ZAPPED,
	ZMSG_MIGRATE_TO_SYS,
	ZMSG_READ,
	ZMSG_WRITE,
	ZMSG_SNAPSHOT,
	ZMSG_RELEASE,
	ZMSG_SET_FLAGS,
	ZMSG_STATS,
	ZMSG_STATS_OK,
	ZMSG_STATUS,
	ZMSG_STATUS_OK,
	ZMSG_REPLY,
	ZMSG_EXCLUSIVE,
	ZMSG_CHECK_EXCLUSIVE,
	ZMSG_ATOMIC_ADD,
	ZMSG_XMAP,
	ZMSG_XMAP_DONE,
	ZMSG_XMOVED,
	ZMSG_RESCUE,
	ZMSG_ANONYMIZE,
	ZMSG_ANONYMIZED,
	ZMSG_STORE,
	ZMSG_STORED,
	ZMSG_EXCLUSIVE_HELD,
	ZMSG_FORK_PREPARE,
	ZMSG_DEVICE_STATUS,
	ZMSG_DEVICE_STATUS_OK,
	ZMSG_CLIENTS,
	ZMSG_CLIENTS_OK,
	ZMSG_UNPLUG,
	ZMSG_PLUG,
	ZMSG_TYPE_END,
};

struct zmsg_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t size;		/* bytes of the whole message */
	uint64_t seq;
};

/* HELLO flags */
#define ZHELLO_FORKED (1u << 0)	/* no uffd: this process's came with a fork event */
#define ZHELLO_AUX (1u << 1)	/* a second connection of a known process, for
				 * XMOVED from its SIGSEGV handler */

struct zmsg_hello {
	struct zmsg_hdr hdr;
	uint32_t version;
	uint32_t flags;
	int32_t pid;
	int32_t parent_pid;	/* ZHELLO_FORKED: the process that forked us */
};

/* HELLO_OK features */
#define ZFEAT_KERNEL_FAULTS (1u << 0)	/* the fd sent with it makes uffds that
					 * serve kernel-mode faults too */
#define ZFEAT_HAVE_MM (1u << 1)		/* zdevd knows this process already: no
					 * UFFD step */
#define ZFEAT_PROVE_FORK (1u << 2)	/* a fork child: the UFFD step carries no
					 * fd, the proof page tells which fork
					 * event's uffd is this process's */
#define ZFEAT_FORK_EVENTS (1u << 3)	/* zdevd gets the process's fork events:
					 * a fork child shares its device pages;
					 * without, the client sends FORK_PREPARE */

struct zmsg_hello_ok {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t version;
	uint32_t features;
	uint32_t ndevices;
	int32_t daemon_pid;
	uint32_t pad;
	/* Where the client maps one fresh page for the ownership proof: a
	 * random address, so a foreign uffd finds no mapping there. */
	uint64_t proof_addr;
	/* Since version 7: each device's memory type, ZDEV_MEMORY_DEVICE_*
	 * (include/zdev.h); 0 past ndevices. */
	uint8_t memory_type[ZDEV_MAX_DEVICES];
};

/* Every request of one device and range: UFFD (addr = proof page), OPEN,
 * CLOSE, MIGRATE_*, READ, WRITE, SNAPSHOT, RELEASE, SET_FLAGS (arg = flags),
 * FORKED (arg = child pid), STATS, STATUS, DEVICE_STATUS, CLIENTS (arg = the
 * pid to list after, 0 for the first page); EXCLUSIVE and CHECK_EXCLUSIVE
 * (arg = the client's exclusive-page map directory), ATOMIC_ADD (addr = the
 * counter, npages = 1, arg = delta, buf = the map directory),
 * EXCLUSIVE_HELD (the shim's exclusive access, held with the pages unmapped),
 * UNPLUG and PLUG (device). */
struct zmsg_req {
	struct zmsg_hdr hdr;
	uint32_t device;
	uint32_t pad;
	uint64_t addr;
	uint64_t npages;
	uint64_t buf;		/* READ/WRITE/SNAPSHOT: the client buffer */
	uint64_t arg;
};

/* RESCUE: what arg asks for */
enum zrescue_what {
	RESCUE_TABLE = 1,
	RESCUE_UFFD,
};

/* ZAP: the daemon asks; ZAPPED: the client answers (status = madvise result).
 * ANONYMIZE / ANONYMIZED the same, for a whole mapping with protection prot. */
struct zmsg_zap {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t prot;
	uint64_t addr;
	uint64_t len;
};

/* STORE: the daemon hands over a new store of the client's on device (its
 * fd with it); STORED: the client answers, status 0 if it keeps it. */
struct zmsg_store {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t device;
	uint64_t id;
};

/* XMAP: the daemon asks, during EXCLUSIVE / ATOMIC_ADD / a device access;
 * XMAP_DONE: the client answers with status 0 or -errno and, for GRANT, len =
 * the bytes it granted (a prefix of the range). */
enum xmap_op {
	XMAP_GRANT = 1,		/* populate writable, record as dev's, PROT_NONE */
	XMAP_REVOKE,		/* give the CPU its access back */
	XMAP_FORGET,		/* drop the records only: the program changed
				 * the protection itself */
};
#define XMAP_F_BUSY (1u << 0)	/* GRANT: pin for a device atomic too */

struct zmsg_xmap {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t op;
	uint64_t addr;
	uint64_t len;
	uint32_t device;
	uint32_t prot;		/* GRANT: the protection to restore later */
	uint32_t flags;
	uint32_t pad;
};

struct zmsg_reply {
	struct zmsg_hdr hdr;
	int32_t status;		/* 0 or -errno */
	uint32_t pad;
	union {			/* which one, the request's type says */
		uint64_t cpages;	/* pages the request reached (the driver's cpages) */
		uint64_t old_value;	/* ATOMIC_ADD: the counter before the add */
		uint64_t prot;		/* XMOVED: the protection to give back */
		uint64_t dev_pages;	/* RESCUE_TABLE: the pages of each device */
	};
	uint64_t faults;	/* READ, WRITE: fault rounds the access took */
};

struct zmsg_stats_ok {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t pad;
	uint64_t cpu_faults;
	uint64_t device_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	uint64_t device_pages;
	uint64_t pool_pages_total;
	uint64_t pool_pages_used;
	uint64_t pool_limit_pages;
	uint64_t peak_device_pages;	/* the most device_pages ever was */
	/* The process's CPU faults on device pages, every device's: their
	 * service time, bucket i holding [2^i, 2^(i+1)) ns (lathist.h). */
	uint64_t fault_p50_ns;
	uint64_t fault_p99_ns;
	uint64_t fault_max_ns;
	uint64_t fault_hist[LATHIST_BUCKETS];
};

struct zmsg_status_device {
	uint64_t pool_pages_total;
	uint64_t pool_pages_used;
	uint64_t pool_limit_pages;
	uint32_t chunks;
	uint32_t memory_type;		/* ZDEV_MEMORY_DEVICE_* (since version 7) */
	uint64_t peak_pages_used;	/* the most pool_pages_used was seen to be */
	uint64_t warm_pages;		/* ready for the next new process (since 8) */
	/* its cost model (zdevd --link, --fault-latency; 0: none) and the
	 * time the model added to requests and faults (since 10) */
	uint64_t link_bytes_per_sec;
	uint64_t fault_latency_ns;
	uint64_t model_added_ns;
};

struct zmsg_status_ok {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t ndevices;
	uint32_t clients;
	uint32_t features;	/* ZFEAT_KERNEL_FAULTS and ZFEAT_FORK_EVENTS:
				 * what zdevd can give every client */
	uint64_t cpu_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t fault_p50_ns;
	uint64_t fault_p99_ns;
	uint64_t fault_max_ns;
	struct zmsg_status_device dev[ZDEV_MAX_DEVICES];
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	uint64_t clients_total;		/* client processes ever, fork children too */
	uint64_t device_faults;		/* device accesses that missed a mirror page */
	uint64_t uptime_ns;		/* since zdevd made its devices */
	int32_t daemon_pid;
	uint32_t unplugged;		/* bit i: device i is unplugged (since 9) */
};

/* One device's counters over every client since zdevd started. */
struct zmsg_device_status_ok {
	struct zmsg_hdr hdr;
	int32_t status;		/* -ENODEV for a device zdevd lacks */
	uint32_t device;
	uint64_t cpu_faults;
	uint64_t device_faults;
	uint64_t pages_to_device;
	uint64_t pages_to_system;
	uint64_t exclusive_grants;
	uint64_t exclusive_revokes;
	uint32_t clients;	/* client processes with pages on it now */
	uint32_t pad;
};

struct zmsg_client {
	int32_t pid;
	uint32_t uid;
	uint32_t handles;	/* device handles open, every device's */
	uint32_t pad;
	char comm[16];		/* /proc/PID/comm, "" when unreadable */
	uint64_t device_pages[ZDEV_MAX_DEVICES];
};

#define ZMSG_CLIENTS_PER_PAGE 4

struct zmsg_clients_ok {
	struct zmsg_hdr hdr;
	int32_t status;
	uint32_t count;		/* entries of client[] used */
	uint32_t more;		/* 1: clients with a larger pid follow */
	uint32_t pad;
	struct zmsg_client client[ZMSG_CLIENTS_PER_PAGE];
};

union zmsg {
	struct zmsg_hdr hdr;
	struct zmsg_hello hello;
	struct zmsg_hello_ok hello_ok;
	struct zmsg_req req;
	struct zmsg_zap zap;
	struct zmsg_xmap xmap;
	struct zmsg_store store;
	struct zmsg_reply reply;
	struct zmsg_stats_ok stats_ok;
	struct zmsg_status_ok status_ok;
	struct zmsg_device_status_ok device_status_ok;
	struct zmsg_clients_ok clients_ok;
};

/* libzdev's SIGSEGV handler holds a union zmsg, maybe on a small alternate
 * stack: the client list comes in pages so that it never makes it larger. */
_Static_assert(sizeof(struct zmsg_clients_ok) <= sizeof(struct zmsg_status_ok),
	       "a page of clients makes union zmsg larger");

/* Fills the header of a message of the given type. */
void zmsg_init(union zmsg *m, enum zmsg_type type, uint64_t seq);

/*
 * Checks a received datagram of len bytes: magic, a known type, and exactly
 * the size of that type. Returns the type, or -EPROTO / -EMSGSIZE / -EBADMSG.
 */
int zmsg_check(const void *buf, size_t len);

const char *zmsg_type_name(int type);

/* SCM_RIGHTS helpers on a SOCK_SEQPACKET socket. send: fd < 0 sends none.
 * recv: *fd is -1 when the datagram carried none; extra fds are closed, and
 * so is the fd of a message refused with an error. */
int zmsg_send(int sock, const union zmsg *m, int fd);
/* len bytes as one datagram, whatever they hold, with fd (may be -1) and
 * sendmsg() flags: the bytes sent, or -errno. */
int zmsg_send_bytes(int sock, const void *buf, size_t len, int fd, int flags);
int zmsg_recv(int sock, union zmsg *m, int *fd);
/* The same with recvmsg() flags (MSG_DONTWAIT: -EAGAIN when none waits). */
int zmsg_recv_flags(int sock, union zmsg *m, int *fd, int flags);

/* A connection to the zdevd listening on path: the fd, or -errno. */
int zmsg_connect(const char *path);
/* One request with no fd, as a tool asks it: sends type (req.device and
 * req.arg set), and receives into m. 0 when the answer is of type answer
 * and carries seq, else -EPROTO or the send's or receive's -errno. */
int zmsg_ask(int sock, enum zmsg_type type, enum zmsg_type answer, uint32_t device, uint64_t arg,
	     uint64_t seq, union zmsg *m);

/* The socket path: $ZDEV_SOCKET, $XDG_RUNTIME_DIR/zdev/zdevd.sock, /run/zdev/zdevd.sock. */
int proto_default_socket(char *buf, size_t len);

#endif
