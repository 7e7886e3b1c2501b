/* The elements of a VM's sets, for everything that writes or reads them:
 * the fixed family of sets per VM and the key layout of each, element
 * messages for a batch, element dumps, and the probe for how the kernel
 * refreshes an element's timeout. ruleset.c (which creates the sets) and
 * admit.c (which fills them) both go through here, so the layout is
 * written down once. */
#ifndef DNSFENCE_ELEMS_H
#define DNSFENCE_ELEMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nft.h"

/* The family of sets of each VM, per address family. Few sets: the
 * kernel finds a set by name with a walk over its table's sets, so the
 * cost of installing N VMs grows with the square of the sets per VM.
 * Single ports go to a hash set, whose additions cost the same at any
 * size; only real port ranges need an interval (pipapo) set, every
 * commit into which copies the whole set: those get a set of their own,
 * which exists only for a VM whose rules have a range
 * (elems_vm_has_set). */
enum set_kind {
	SET_ANY,    /* <vm>_v4: every protocol and port */
	SET_PORTS,  /* <vm>_v4_ports: addr . proto . port, one port, and
		     * addr . icmp . ECHO_KEY for echo requests (a hash) */
	SET_RANGES, /* <vm>_v4_ranges: addr . proto . port range (pipapo,
		     * only for a VM whose rules have ranges) */
	SET_KINDS
};

/* An echo request in a ports set: the port field holds the ICMP type and
 * code (the first two bytes of the transport header), 8.0 for ICMP and
 * 128.0 for ICMPv6, which `nft list` shows as 2048 and 32768. */
#define ECHO_KEY_V4 (8 << 8)
#define ECHO_KEY_V6 (128 << 8)

/* A VM's sets are numbered 0 .. SET_COUNT-1: kind, then family. */
#define SET_COUNT (SET_KINDS * 2)
#define SET_NAME_MAX 64

int set_index(enum set_kind kind, int family);
enum set_kind set_index_kind(int idx);
int set_index_family(int idx);

/** Name of one VM set, e.g. "work_v4_ports". */
const char *elems_set_name(char *buf, size_t len, const char *vm, int idx);

/* nftables' datatype numbers, for the key types `nft list` shows. */
#define TYPE_IPADDR 7
#define TYPE_IP6ADDR 8
#define TYPE_INET_PROTO 12
#define TYPE_INET_SERVICE 13
#define TYPE_BITS 6

/** Key type, key length and flags of set idx (NFTNL_SET_*). */
uint32_t elems_key_type(int idx);
uint32_t elems_key_len(int idx);
uint32_t elems_set_flags(int idx);
/** Field lengths of a concatenated key (NFTNL_SET_DESC_CONCAT); 0 when
 * the key is a single field. */
size_t elems_concat(int idx, uint8_t fields[3]);

/* One element of one VM set. Compared and hashed as bytes: keep it
 * zeroed where unused. */
struct elem_key {
	uint8_t family, kind, proto;
	uint16_t lo, hi;
	uint8_t addr[16];
};

/** The element of an echo request to an address of that family. */
void elems_echo_key(struct elem_key *k, int family);
bool elems_is_echo(const struct elem_key *k);
/** The protocol and ports of an element, as `dnsfencectl list` shows them:
 * *proto "tcp", "udp", "icmp" (ports "") or NULL (an element of any
 * protocol); ports "443" or "8000-8080". */
void elems_ports(const struct elem_key *k, const char **proto, char *ports,
	size_t len);

/** Make k the element of one protocol and port range: kind SET_PORTS for
 * a single port, SET_RANGES for a range (lo < hi). */
void elems_port_key(struct elem_key *k, uint8_t proto, uint16_t lo,
	uint16_t hi);
/** Has k a protocol and ports (an element of a ports or ranges set)? */
bool elems_has_ports(const struct elem_key *k);
/** Is k written as elems_port_key / elems_echo_key / SET_ANY write it: a
 * single port in the ports set, a range (lo < hi) in the ranges set, no
 * protocol or port in the any set? */
bool elems_key_canonical(const struct elem_key *k);
/** Does a VM whose rules cut ports into these atoms have set idx? Every
 * VM has its any and ports sets; a ranges set only with a range atom. */
struct portspec;
bool elems_vm_has_set(const struct portspec *atoms, size_t natoms, int idx);

static inline int
elem_set_index(const struct elem_key *k)
{
	return set_index((enum set_kind)k->kind, k->family);
}

struct nftnl_set_elem;
/** Write k as the element's key (and key end, for port ranges). */
void elems_key_put(struct nftnl_set_elem *el, const struct elem_key *k);
/** Read an element of set idx back; false if it is not one we could have
 * written (wrong lengths, no key end where one is needed). */
bool elems_key_get(struct nftnl_set_elem *el, int idx, struct elem_key *k);

/* Element messages for one batch: elements are collected per set, then
 * written as few NEWSETELEM/DELSETELEM messages as fit, deletions first. */
struct elems_msgs;
struct elems_msgs *elems_msgs_new(const char *table);
/** Add (create or refresh) vm's element k with timeout_ms to live. The
 * comment (the name that admitted it) is shown by `nft list`. */
void elems_msgs_add(struct elems_msgs *m, const char *vm,
	const struct elem_key *k, uint64_t timeout_ms, const char *comment);
void elems_msgs_del(struct elems_msgs *m, const char *vm,
	const struct elem_key *k);
/** Write the messages into b and free m. */
void elems_msgs_emit(struct elems_msgs *m, struct nft_batch *b);

/* left_ms of an element without a timeout. */
#define ELEMS_FOREVER UINT64_MAX

/** One element as the kernel holds it: ms left (ELEMS_FOREVER: it has no
 * timeout), and its comment. */
typedef void (*elems_dump_cb)(const struct elem_key *k, uint64_t left_ms,
	const char *comment, void *arg);
/** Every element of vm's set idx; 0, or -1 if the set could not be read
 * (errno ENOENT: no such set). */
int elems_dump(const char *table, const char *vm, int idx, elems_dump_cb cb,
	void *arg);

/* The sets of a VM in `mode: learn`, filled by its chain from the packet
 * path: <vm>_v4_seen and <vm>_v6_seen (never <vm>_seen_v4, which would be
 * the any-set of a VM named <vm>_seen). Key as the ports set (addr .
 * inet_proto . inet_service, echo requests as ECHO_KEY_V4/V6), one port
 * per element, no intervals; flags dynamic,timeout. Each new connection
 * refreshes its element, so an element's age is the time since the VM
 * last opened such a connection. */
#define SEEN_TIMEOUT_MS (3600u * 1000u)
#define SEEN_SIZE 65536u

const char *elems_seen_name(char *buf, size_t len, const char *vm, int family);
uint32_t elems_seen_flags(void);
/** One element of a seen set: k->kind is SET_PORTS and k->lo == k->hi;
 * left_ms is what its timeout has left. */
typedef void (
	*elems_seen_cb)(const struct elem_key *k, uint64_t left_ms, void *arg);
/** Every element of vm's seen set of that family; 0, or -1 if it could
 * not be read (errno ENOENT: no such set). */
int elems_dump_seen(const char *table, const char *vm, int family,
	elems_seen_cb cb, void *arg);

/** Does re-adding an existing element replace its timeout (Linux
 * 6.12+)? Probed in a network namespace of its own, so nothing is
 * created where anyone could see it: 1 yes, 0 no, -1 it could not be
 * told (then assume no: delete + add is right on every kernel). */
int elems_probe_timeout_update(void);

/** How long past its end by our clock the kernel may still hold an
 * element: our clock starts a timeout before the kernel's does (netlink
 * latency, jiffy rounding), by far less than this. */
#define ELEMS_KERNEL_LAG_MS 1000

/** May the kernel still hold an element whose end by our clock is
 * `end_ms`, at `now_ms`? A kernel that keeps the old timeout of a re-added
 * element (before 6.12) must then get a delete before the add: an add
 * alone would be ignored and the element would die at its old end. */
bool elems_kernel_may_hold(uint64_t end_ms, uint64_t now_ms);

#endif
