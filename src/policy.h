/* Pure policy logic: parsing of names, ports, addresses and prefixes, and
 * the decisions taken per query (which rules match a name, which ports it
 * opens, how long an element lives). No I/O here, so it is unit-tested
 * directly and fuzzed through the loader. */
#ifndef DNSFENCE_POLICY_H
#define DNSFENCE_POLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NAME_MAX_LEN 253 /* presentation form, without the trailing dot */
#define VM_NAME_MAX 31	 /* Qubes' own limit; keeps set names short */

enum match_kind {
	MATCH_EXACT,  /* mail.example.com */
	MATCH_SUFFIX, /* *.example.com: one or more labels in front */
	MATCH_ALL,    /* *: every name */
};

struct name_pattern {
	enum match_kind kind;
	char name[NAME_MAX_LEN + 1]; /* lower case; the suffix for SUFFIX */
};

struct ipaddr {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
		uint8_t b[16];
	};
};

struct prefix {
	struct ipaddr addr;
	int len;
};

/* One item of `ports`: proto is IPPROTO_TCP, IPPROTO_UDP (lo..hi) or
 * IPPROTO_ICMP (echo requests; ICMPv6 for v6 addresses, lo = hi = 0). */
struct portspec {
	uint8_t proto;
	uint16_t lo, hi;
};

/* A set of ports; any = no `ports` given, every protocol and port. */
struct ports {
	bool any;
	bool icmp;
	struct portspec *v; /* tcp/udp ranges, sorted, merged, disjoint */
	size_t n;
};

struct rule {
	bool is_net;
	struct name_pattern pat; /* when !is_net */
	struct prefix net;	 /* when is_net */
	struct ports ports;
	bool require_dnssec;
	/* allow rules with a name only: answers may keep, and admit, private
	 * addresses (ADDR_PRIVATE), with this rule's ports. */
	bool allow_private;
	/* allow rules only: UTC epoch seconds from which the rule is as if
	 * it were not written; 0 = no end. Not part of the rule's identity
	 * (policy_rule_id, policy_vm_same_rules): a rule whose end moves is
	 * the same rule, and keeps what it admitted. */
	int64_t until;
	int line, col;
};

enum unlisted { UNLISTED_REFUSED, UNLISTED_NXDOMAIN };

struct srcpos {
	int line, col;
};

struct vm {
	char *name;
	char *file;
	struct ipaddr *addrs;
	struct srcpos *addr_pos; /* where each address was written */
	size_t naddrs;
	char *iface; /* NULL: any interface */
	bool default_allow;
	/* mode: learn: decides as default_allow, and dnsfenced records what
	 * the VM resolved and used (learn.h). */
	bool learn;
	/* dns: deny: every query of the VM is REFUSED (EDE 18), nothing is
	 * resolved or admitted through a name; its net: rules still apply. */
	bool dns_deny;
	enum unlisted unlisted;
	struct rule *allow;
	size_t nallow;
	struct rule *deny;
	size_t ndeny;
	/* The VM's tcp/udp port ranges cut into disjoint pieces, so that
	 * every set element of one VM is disjoint from every other. */
	struct portspec *atoms;
	size_t natoms;
	/* Its name rules by pattern (policy_vm_index); NULL: looked at one
	 * by one (a VM put together by hand). */
	struct nameidx *idx;
};

struct ttl_conf {
	uint32_t min, max, grace;
};

/** What the policy says about one name for one VM. */
struct verdict {
	bool allowed;
	bool require_dnssec;
	struct ports ports; /* union of every matching allow rule */
	/* A matching allow rule says allow-private: the answer keeps its
	 * private addresses, admitted with private_ports only (the union of
	 * the ports of the matching rules that say it). */
	bool allow_private;
	struct ports private_ports;
	/* The earliest `until` of the matching allow rules (0: none): from
	 * then on this verdict is stale and must be taken again. */
	int64_t until;
};

/** Index vm's name rules (again, after its rules changed). */
void policy_vm_index(struct vm *vm);
/** cb(i, arg) for each rule i of vm's deny (deny true) or allow list
 * whose name pattern matches name, in no particular order, until cb
 * returns false; through the index, in time that grows with the labels
 * of name and the rules that match, not with the rules. */
void policy_match(const struct vm *vm, bool deny, const char *name,
	bool (*cb)(size_t i, void *arg), void *arg);

/** Parse and normalise a name pattern; NULL err means success. */
int policy_parse_name(const char *s, struct name_pattern *out,
	const char **err);
/** Normalise a DNS name in presentation form into out (lower case, no
 * trailing dot); -1 if it is not a valid host name. */
int policy_normalise_name(const char *s, char *out, size_t outlen);
int policy_parse_port(const char *s, struct portspec *out, const char **err);
int policy_parse_addr(const char *s, struct ipaddr *out);
int policy_parse_prefix(const char *s, struct prefix *out, const char **err);
bool policy_vm_name_valid(const char *s);
bool policy_ifname_valid(const char *s);

/** Does pattern p match the normalised name? */
bool policy_pattern_match(const struct name_pattern *p, const char *name);

/** Merge overlapping/adjacent tcp/udp ranges of ps in place, sort them. */
void policy_ports_normalise(struct ports *ps);
/** Add every port of src to dst (union), keeping dst normalised. */
void policy_ports_union(struct ports *dst, const struct ports *src);
void policy_ports_finish(struct ports *ps);

/** Decide for a normalised query name at UTC epoch second now: an allow
 * rule whose until is at or before now counts as absent; a VM with
 * dns: deny is allowed no name. v->ports must be
 * released with verdict_finish(). */
void policy_decide(const struct vm *vm, const char *name, int64_t now,
	struct verdict *v);
/** Has rule r ended at now (it has an until, and until <= now)? */
bool policy_rule_ended(const struct rule *r, int64_t now);

/** Parse an RFC 3339 date-time, YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
 * ('t' and 'z' in either case), into UTC epoch seconds. Strict: every
 * field has its exact number of digits and its range (days per month,
 * leap years), the offset is at most 23:59. A fraction (1-9 digits) is
 * dropped: the time is rounded down to its second, so a rule never ends
 * later than written. A leap second (:60) is refused: the kernel's clock
 * (POSIX time) has no name for it. Years 0000-9999 (times before 1970
 * are negative). -1 and *err on a malformed value. Pure arithmetic: no
 * timegm, no TZ. */
int policy_parse_time(const char *s, int64_t *out, const char **err);
/** Format UTC epoch seconds t as YYYY-MM-DDTHH:MM:SSZ. */
const char *policy_time_str(int64_t t, char *buf, size_t len);
/** The text of a rule for messages: its pattern ("*.example.com") or its
 * prefix ("192.0.2.0/24"). */
const char *policy_rule_str(const struct rule *r, char *buf, size_t len);
void verdict_finish(struct verdict *v);

/* What an address in an answer for a name is to the DNS rebinding guard
 * (contract, "DNS rebinding"). */
enum addr_class {
	ADDR_PUBLIC,   /* kept and admitted as the rules say */
	ADDR_PRIVATE,  /* RFC 1918, CGN, link-local, ULA: only allow-private */
	ADDR_RESERVED, /* never: this network, loopback, multicast, v4-mapped */
	ADDR_INTERNAL, /* never: a VM's or a listen address (config.h) */
};

/** The class of a by its prefix alone: ADDR_RESERVED for 0.0.0.0/8,
 * 127.0.0.0/8, 224.0.0.0/3, ::/128, ::1/128, ::ffff:0:0/96, ff00::/8;
 * ADDR_PRIVATE for 10.0.0.0/8, 100.64.0.0/10, 169.254.0.0/16,
 * 172.16.0.0/12, 192.168.0.0/16, fc00::/7, fe80::/10; ADDR_PUBLIC
 * otherwise (never ADDR_INTERNAL: that takes the configuration). */
enum addr_class policy_addr_class(const struct ipaddr *a);
/** The ports a verdict admits an address of class c with, or NULL when
 * an answer must not keep it (reserved, internal, or private without
 * allow-private). */
const struct ports *policy_verdict_ports(const struct verdict *v,
	enum addr_class c);
/** A name for the class in messages: "public", "private", "reserved",
 * "internal". */
/** The v4 address inside a v6 one a NAT64 translator (64:ff9b::/96) or
 * a 6to4 relay (2002::/16) connects to: true and *v4 set if there is
 * one. policy_addr_class classes such an address as that v4 address. */
bool policy_addr_embedded_v4(const struct ipaddr *a, struct ipaddr *v4);
const char *policy_addr_class_name(enum addr_class c);
/** Order of addresses: family, then bytes (4 or 16 of them). */
int policy_addr_cmp(const struct ipaddr *a, const struct ipaddr *b);

/** Which VM sent a packet from addr that came in on ifname (NULL if
 * unknown)? On an interface some VM's `interface:` names, only the
 * addresses of the VMs that name it: any other is NULL (spoofed). */
const struct vm *policy_find_vm(const struct vm *vms, size_t nvms,
	const struct ipaddr *addr, const char *ifname);
/** The order in which the forward chain dispatches by source: fills
 * order[0..nvms) with indices into vms, those with an interface first,
 * grouped by interface (by name; a group in file order), then those
 * without, in file order. Returns how many have one. Every check of an
 * interface so comes before any dispatch by address alone. */
size_t policy_dispatch_order(const struct vm *vms, size_t nvms, size_t *order);

/** The VM of that name, or NULL. */
const struct vm *policy_vm_by_name(const struct vm *vms, size_t nvms,
	const char *name);
/** Do a and b decide every name the same way (default, dns, allow and
 * deny rules, their ports)? */
bool policy_vm_same_rules(const struct vm *a, const struct vm *b);

/** Same default, dns and deny rules? */
bool policy_vm_same_deny(const struct vm *a, const struct vm *b);
/** A name rule's identity across reloads: its pattern, ports,
 * require-dnssec and allow-private, hashed. */
uint64_t policy_rule_id(const struct rule *r);

/** The largest TTL a VM may be handed in an answer (every record's TTL is
 * lowered to it, never raised).
 *
 * An answer that admits addresses: clamp(min_ttl, min, max), where
 * min_ttl is the smallest TTL on the way to the addresses. That is the
 * life of the answer's elements without the grace, so a VM never caches
 * a name longer than its addresses stay admitted; the grace is only slack
 * for the VM's connect after the lookup.
 *
 * An answer that admits nothing (NXDOMAIN, NODATA, other types): max; it
 * opens nothing, so only the configured ceiling applies. */
uint32_t policy_ttl_cap(const struct ttl_conf *t, bool admits,
	uint32_t min_ttl);
/** Seconds the element must stay: clamp(ttl, min, max) + grace. */
uint32_t policy_ttl_element(const struct ttl_conf *t, uint32_t ttl);

/** Format an address / prefix / port for messages and dumps. */
const char *policy_addr_str(const struct ipaddr *a, char *buf, size_t len);
const char *policy_prefix_str(const struct prefix *p, char *buf, size_t len);
const char *policy_portspec_str(const struct portspec *p, char *buf,
	size_t len);

/** Compute vm->atoms from its allow rules (call once rules are final). */
void policy_vm_atoms(struct vm *vm);
/** The atoms that make up the tcp/udp ranges of ps, at most max; returns
 * how many there are. */
size_t policy_atoms_for(const struct vm *vm, const struct ports *ps,
	struct portspec *out, size_t max);

void policy_vm_finish(struct vm *vm);

#endif
