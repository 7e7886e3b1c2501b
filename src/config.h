/* dnsfence.yaml and the per-VM policies: loading (all problems collected,
 * each as FILE:LINE:COLUMN: message), a normalised dump, and release. */
#ifndef DNSFENCE_CONFIG_H
#define DNSFENCE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "policy.h"
#include "util.h"

#define TABLE_NAME_MAX 32
#define DEFAULT_CONTROL "/run/dnsfence/control.sock"

struct listen_addr {
	struct ipaddr addr;
	uint16_t port;
};

struct kv {
	char *key, *value;
	int line, col;
};

struct stub_zone {
	char *zone;
	char **addrs;
	struct srcpos *addr_pos; /* where each server was written */
	size_t naddrs;
};

struct limits {
	uint32_t set_size;	   /* elements per VM set (kernel-enforced) */
	uint32_t addrs_per_answer; /* addresses admitted from one answer */
	uint32_t inflight_per_vm;  /* queries being resolved per VM */
	uint32_t upstream;	   /* ... every VM's together */
	uint32_t query_rate;	   /* queries per second per VM, on average */
	uint32_t query_burst;	   /* ... and at once */
	uint32_t tcp_clients;	   /* open DNS-over-TCP connections */
	uint32_t tcp_per_vm;	   /* ... of one VM */
	uint32_t tcp_idle;	   /* seconds */
};

/* capture: a nat prerouting chain in our table that redirects DNS sent
 * to other addresses (Qubes' 10.139.1.1/2) to our listen port. */
struct capture {
	bool on;	   /* the key is present */
	bool has_group;	   /* from-group given: only from those interfaces */
	uint32_t group;	   /* iifgroup */
	struct ipaddr *to; /* udp/tcp 53 to these is redirected */
	struct srcpos *to_pos;
	size_t nto;
	bool any; /* every udp/tcp 53 from the group, whatever its address */
};

struct config {
	/* Which files and when: the privileged process numbers each load
	 * (the engine installs generation gen), config_at() sets at. */
	uint32_t gen;
	int64_t at;
	char *file;
	char *conf_file; /* as named on the command line, for messages */
	struct listen_addr *listen;
	size_t nlisten;
	bool freebind; /* IP_FREEBIND / IPV6_FREEBIND on the listeners */
	char *policies;
	char *control;
	char *control_group; /* its name (the number when it has none) */
	gid_t control_gid;   /* may use the control socket, with root */
	char *table;
	uint32_t log_drops;  /* log lines per second for dropped packets */
	int32_t priority;    /* of the forward base chain (default -10) */
	bool has_from_group; /* the forward chain judges only iifgroup ... */
	uint32_t from_group; /* ... this group; the rest is accepted */
	bool reject;   /* not admitted: reject admin-prohibited, no drop */
	bool ct_purge; /* a change ends the connections it no longer admits */
	struct capture capture;
	char *trust_anchor;
	struct srcpos trust_anchor_pos; /* 0:0 for the default */
	char *root_hints;
	struct srcpos root_hints_pos;
	char **forward;
	struct srcpos *forward_pos;
	size_t nforward;
	struct stub_zone *stubs;
	size_t nstubs;
	struct kv *options;
	size_t noptions;
	struct ttl_conf ttl;
	struct limits limits;
	struct vm *vms;
	size_t nvms;
	/* The indices of vms sorted by name (config_index_internal), so
	 * that finding a VM by name costs a binary search (config_vm). */
	size_t *vm_order;
	/* Every VM's addresses and every listen address, sorted, once each:
	 * never admitted through a name (config_addr_class). */
	struct ipaddr *internal;
	size_t ninternal;
};

/** Load the configuration and every policy. Returns NULL when d holds at
 * least one problem. */
struct config *config_load(const char *path, struct diag *d);
struct cfgfs;
/** The same, with every file read through fs (cfgfs.h): recorded from
 * the file system, or replayed from such a record. */
struct config *config_load_fs(struct cfgfs *fs, const char *path,
	struct diag *d);
/** Load one policy file for VM name (exposed for tests and fuzzing). */
int config_load_policy_buf(struct vm *vm, const char *name, const char *file,
	const char *buf, size_t len, struct diag *d);
/** The normalised configuration; an allow rule whose until has passed
 * (by the wall clock now) is marked as ended. */
void config_dump(const struct config *c, FILE *out);
/** Only the control socket's path, from the main file alone (for
 * dnsfencectl, whose users need not read the policies): its `control:`,
 * relative to its directory, or the default. NULL when d has problems. */
char *config_control_path(const char *path, struct diag *d);
void config_free(struct config *c);

/** The configuration in force at UTC epoch second now: a deep copy of c
 * (as loaded from the files) without the allow rules whose until is at
 * or before now, each VM's port atoms recomputed. Everything else is c's.
 * Pure; free with config_free. The daemon keeps c and installs
 * config_at(c, now) at start, at each reload and at each until. */
struct config *config_at(const struct config *c, int64_t now);
/** The earliest until of any allow rule of c, past or not; 0 if none. */
int64_t config_next_until(const struct config *c);

/** An allow rule with an until, as dnsfencectl status shows it. */
struct until_info {
	const char *vm;		     /* c's VM name */
	const struct rule *rule;     /* in c */
	char text[NAME_MAX_LEN + 3]; /* "*.example.com", "192.0.2.0/24" */
	int64_t until;		     /* UTC epoch seconds */
};

/** The allow rules of c whose until is still ahead at now (until > now),
 * in the order of the configuration (VMs by name, rules as written):
 * fills out[0 .. min(n, max)) and returns n, so a caller may ask
 * with max 0 first for the size. */
size_t config_untils(const struct config *c, int64_t now,
	struct until_info *out, size_t max);
/** The same for the rules that have ended at now (until <= now). */
size_t config_ended(const struct config *c, int64_t now, struct until_info *out,
	size_t max);

/** The class of a in an answer for a name (the DNS rebinding guard):
 * ADDR_INTERNAL when it is an address of one of c's VMs or one of its
 * listen addresses, else policy_addr_class(a). */
enum addr_class config_addr_class(const struct config *c,
	const struct ipaddr *a);
/** Fill c->internal from c's VMs and listen addresses, and c->vm_order
 * (config_load does; for configurations made by hand). */
void config_index_internal(struct config *c);
/** c's VM named name, or NULL: a binary search once c is indexed, a walk
 * over its VMs before. */
const struct vm *config_vm(const struct config *c, const char *name);

/** The port DNS redirected for family (AF_INET, AF_INET6) goes to: that
 * of c's first listen address of that family; 0 if it has none. */
uint16_t config_capture_port(const struct config *c, int family);

#define DEFAULT_PRIORITY (-10) /* nftables: priority */
#define PRIORITY_MIN (-1000)
#define PRIORITY_MAX 1000

#define HOSTPORT_MAX 64 /* bytes of ADDR<sep>PORT, "[V6ADDR]:65535" fits */

/** Parse ADDR or ADDR<sep>PORT into addr (and *port, left alone when no
 * port is written). sep ':' (listen addresses): an IPv6 address with a
 * port is written [V6ADDR]:PORT, and one with two or more ':' and no
 * brackets is a bare IPv6 address. sep '@' (libunbound's server syntax):
 * ADDR@PORT for either family, never brackets. PORT is 1-5 decimal digits
 * and at most 65535; 0 only when zero_ok. Strict: an empty address or
 * port, a sign, spaces, a second separator, or a string longer than
 * HOSTPORT_MAX are refused (-1). Exposed for tests. */
int config_parse_hostport(const char *s, char sep, bool zero_ok,
	struct ipaddr *addr, uint16_t *port);

#define TA_LINE_MAX 4096 /* bytes of a trust-anchor line looked at */

/* What one line of a trust-anchor file (zone-file format) is. */
enum ta_line {
	TA_LINE_EMPTY,	/* blank, or only a ';' comment */
	TA_LINE_ANCHOR, /* owner [ttl] [class] DS|DNSKEY rdata */
	TA_LINE_OTHER,	/* anything else: another type, a $directive... */
};

/** Classify the line s[0..len) of a trust-anchor file (without its
 * newline; only its first TA_LINE_MAX bytes). Exposed for tests. */
enum ta_line config_ta_line(const char *s, size_t len);

#endif
