#include "policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nameidx.h"
#include "util.h"

static bool
label_char_ok(int c)
{
	/* Host names are LDH; '_' appears in real names (_dmarc, SRV) and
	 * costs nothing to allow. IDNs arrive as A-labels (xn--). */
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		c == '_';
}

int
policy_normalise_name(const char *s, char *out, size_t outlen)
{
	size_t len = strlen(s), lab = 0, i;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > NAME_MAX_LEN || len >= outlen)
		return -1;
	for (i = 0; i < len; i++) {
		int c = tolower((unsigned char)s[i]);

		if (c == '.') {
			if (lab == 0 || out[i - 1] == '-')
				return -1;
			lab = 0;
		} else {
			if (!label_char_ok(c) || (lab == 0 && c == '-') ||
				++lab > 63)
				return -1;
		}
		out[i] = (char)c;
	}
	if (out[len - 1] == '-')
		return -1;
	out[len] = '\0';
	return 0;
}

int
policy_parse_name(const char *s, struct name_pattern *out, const char **err)
{
	const char *rest = s;

	*err = NULL;
	memset(out, 0, sizeof(*out));
	if (strcmp(s, "*") == 0 || strcmp(s, "*.") == 0) {
		out->kind = MATCH_ALL;
		return 0;
	}
	out->kind = MATCH_EXACT;
	if (strncmp(s, "*.", 2) == 0) {
		out->kind = MATCH_SUFFIX;
		rest = s + 2;
	}
	if (strchr(rest, '*') != NULL) {
		*err = "'*' may only stand alone or as the whole first label "
		       "(\"*.example.com\")";
		return -1;
	}
	if (policy_normalise_name(rest, out->name, sizeof(out->name)) < 0) {
		*err = "malformed name (letters, digits, '-', '_'; labels of "
		       "1-63 characters; IDNs in A-label form)";
		return -1;
	}
	return 0;
}

static int
parse_u16(const char *s, const char *end, uint16_t *out)
{
	unsigned long v = 0;

	if (s == end || end - s > 5)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int
policy_parse_port(const char *s, struct portspec *out, const char **err)
{
	const char *p, *dash, *end;

	*err = NULL;
	memset(out, 0, sizeof(*out));
	if (strcmp(s, "icmp") == 0) {
		out->proto = IPPROTO_ICMP;
		return 0;
	}
	if (strncmp(s, "tcp/", 4) == 0)
		out->proto = IPPROTO_TCP;
	else if (strncmp(s, "udp/", 4) == 0)
		out->proto = IPPROTO_UDP;
	else {
		*err = "bad port: expected tcp/N, udp/N, tcp/N-M, udp/N-M or "
		       "icmp";
		return -1;
	}
	p = s + 4;
	end = p + strlen(p);
	dash = strchr(p, '-');
	if (parse_u16(p, dash ? dash : end, &out->lo) < 0 ||
		(dash && parse_u16(dash + 1, end, &out->hi) < 0)) {
		*err = "bad port number: expected 1-65535";
		return -1;
	}
	if (!dash)
		out->hi = out->lo;
	if (out->lo > out->hi) {
		*err = "bad port range: the first port is above the last";
		return -1;
	}
	return 0;
}

int
policy_parse_addr(const char *s, struct ipaddr *out)
{
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, s, &out->v4) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &out->v6) == 1) {
		out->family = AF_INET6;
		return 0;
	}
	return -1;
}

int
policy_parse_prefix(const char *s, struct prefix *out, const char **err)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int maxlen, bits;

	*err = NULL;
	if (alen >= sizeof(buf)) {
		*err = "bad address or prefix";
		return -1;
	}
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (policy_parse_addr(buf, &out->addr) < 0) {
		*err = "bad address or prefix";
		return -1;
	}
	maxlen = out->addr.family == AF_INET ? 32 : 128;
	out->len = maxlen;
	if (slash) {
		char *end;
		long v;

		errno = 0;
		v = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno ||
			v < 0 || v > maxlen) {
			*err = out->addr.family == AF_INET
				? "bad prefix length: expected 0-32"
				: "bad prefix length: expected 0-128";
			return -1;
		}
		out->len = (int)v;
	}
	for (bits = out->len; bits < maxlen; bits++) {
		if (out->addr.b[bits / 8] & (0x80 >> (bits % 8))) {
			*err = "address has bits set beyond the prefix length";
			return -1;
		}
	}
	return 0;
}

bool
policy_vm_name_valid(const char *s)
{
	/* Qubes: a letter, then letters, digits, '_' or '-', 31 at most.
	 * The name becomes part of nftables set and chain names. */
	size_t i;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (i = 1; s[i]; i++) {
		int c = (unsigned char)s[i];

		if (!isalnum(c) && c != '_' && c != '-')
			return false;
	}
	return i <= VM_NAME_MAX;
}

bool
policy_ifname_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++) {
		int c = (unsigned char)s[i];

		if (c <= ' ' || c >= 127 || c == '/' || c == ':' || c == '*')
			return false;
	}
	return i > 0 && i < 16 && strcmp(s, ".") && strcmp(s, "..");
}

bool
policy_pattern_match(const struct name_pattern *p, const char *name)
{
	size_t nl, sl;

	switch (p->kind) {
	case MATCH_ALL:
		return true;
	case MATCH_EXACT:
		return strcmp(p->name, name) == 0;
	case MATCH_SUFFIX:
		nl = strlen(name);
		sl = strlen(p->name);
		return nl > sl + 1 && name[nl - sl - 1] == '.' &&
			strcmp(name + nl - sl, p->name) == 0;
	}
	return false;
}

static int
portspec_cmp(const void *a, const void *b)
{
	const struct portspec *x = a, *y = b;

	if (x->proto != y->proto)
		return x->proto - y->proto;
	return (int)x->lo - (int)y->lo;
}

void
policy_ports_normalise(struct ports *ps)
{
	size_t i, o = 0;

	if (ps->n == 0)
		return;
	qsort(ps->v, ps->n, sizeof(*ps->v), portspec_cmp);
	for (i = 1; i < ps->n; i++) {
		struct portspec *last = &ps->v[o];

		if (ps->v[i].proto == last->proto &&
			(uint32_t)ps->v[i].lo <= (uint32_t)last->hi + 1) {
			if (ps->v[i].hi > last->hi)
				last->hi = ps->v[i].hi;
		} else {
			ps->v[++o] = ps->v[i];
		}
	}
	ps->n = o + 1;
}

void
policy_ports_union(struct ports *dst, const struct ports *src)
{
	dst->any |= src->any;
	dst->icmp |= src->icmp;
	if (src->n == 0)
		return;
	dst->v = xreallocarray(dst->v, dst->n + src->n, sizeof(*dst->v));
	memcpy(dst->v + dst->n, src->v, src->n * sizeof(*src->v));
	dst->n += src->n;
	policy_ports_normalise(dst);
}

void
policy_ports_finish(struct ports *ps)
{
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

bool
policy_rule_ended(const struct rule *r, int64_t now)
{
	return r->until != 0 && r->until <= now;
}

void
policy_vm_index(struct vm *vm)
{
	nameidx_destroy(vm->idx);
	vm->idx = nameidx_create(vm->allow, vm->nallow, vm->deny, vm->ndeny);
}

void
policy_match(const struct vm *vm, bool deny, const char *name,
	bool (*cb)(size_t i, void *arg), void *arg)
{
	const struct rule *rs = deny ? vm->deny : vm->allow;
	size_t n = deny ? vm->ndeny : vm->nallow;

	if (vm->idx != NULL) {
		nameidx_match(vm->idx, deny, name, cb, arg);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!rs[i].is_net && policy_pattern_match(&rs[i].pat, name) &&
			!cb(i, arg))
			return;
}

struct deciding {
	const struct vm *vm;
	int64_t now;
	struct verdict *v;
	bool denied;
};

static bool
denied_cb(size_t i, void *arg)
{
	(void)i;
	((struct deciding *)arg)->denied = true;
	return false;
}

/* One matching allow rule: what it adds to the verdict does not depend
 * on the order the rules come in (unions, the earliest until). */
static bool
allowed_cb(size_t i, void *arg)
{
	struct deciding *d = arg;
	const struct rule *r = &d->vm->allow[i];
	struct verdict *v = d->v;

	if (policy_rule_ended(r, d->now))
		return true;
	if (r->until != 0 && (v->until == 0 || r->until < v->until))
		v->until = r->until;
	v->allowed = true;
	v->require_dnssec |= r->require_dnssec;
	policy_ports_union(&v->ports, &r->ports);
	if (r->allow_private) {
		v->allow_private = true;
		policy_ports_union(&v->private_ports, &r->ports);
	}
	return true;
}

void
policy_decide(const struct vm *vm, const char *name, int64_t now,
	struct verdict *v)
{
	struct deciding d = {vm, now, v, false};

	memset(v, 0, sizeof(*v));
	if (vm->dns_deny)
		return;
	policy_match(vm, true, name, denied_cb, &d);
	if (d.denied)
		return;
	if (vm->default_allow || vm->learn) {
		v->allowed = true;
		v->ports.any = true;
	}
	policy_match(vm, false, name, allowed_cb, &d);
}

void
verdict_finish(struct verdict *v)
{
	policy_ports_finish(&v->ports);
	policy_ports_finish(&v->private_ports);
}

/* ---- the DNS rebinding guard ----------------------------------------- */

static const struct {
	int family;
	uint8_t b[16];
	int len;
	enum addr_class c;
} guarded[] = {
	{AF_INET, {0}, 8, ADDR_RESERVED},   /* "this network" */
	{AF_INET, {127}, 8, ADDR_RESERVED}, /* loopback */
	{AF_INET, {224}, 3, ADDR_RESERVED}, /* multicast, 240/4, broadcast */
	{AF_INET, {10}, 8, ADDR_PRIVATE},
	{AF_INET, {100, 64}, 10, ADDR_PRIVATE},	 /* shared (CGN) */
	{AF_INET, {169, 254}, 16, ADDR_PRIVATE}, /* link-local */
	{AF_INET, {172, 16}, 12, ADDR_PRIVATE},
	{AF_INET, {192, 168}, 16, ADDR_PRIVATE},
	/* ::, ::1 and the deprecated v4-compatible ::a.b.c.d */
	{AF_INET6, {0}, 96, ADDR_RESERVED},
	/* v4-mapped: a v6 socket connects to the v4 address in it */
	{AF_INET6, {[10] = 0xff, [11] = 0xff}, 96, ADDR_RESERVED},
	{AF_INET6, {0xff}, 8, ADDR_RESERVED},	    /* multicast */
	{AF_INET6, {0xfc}, 7, ADDR_PRIVATE},	    /* unique local */
	{AF_INET6, {0xfe, 0x80}, 10, ADDR_PRIVATE}, /* link-local */
	/* the local-use NAT64 prefix (RFC 8215): a v4 address of the site */
	{AF_INET6, {0, 0x64, 0xff, 0x9b, 0, 1}, 48, ADDR_PRIVATE},
};

bool
policy_addr_embedded_v4(const struct ipaddr *a, struct ipaddr *v4)
{
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const uint8_t sixto4[2] = {0x20, 0x02};
	int at;

	if (a->family != AF_INET6)
		return false;
	if (memcmp(a->b, nat64, sizeof(nat64)) == 0)
		at = 12; /* 64:ff9b::/96, RFC 6052 */
	else if (memcmp(a->b, sixto4, sizeof(sixto4)) == 0)
		at = 2; /* 2002::/16, 6to4, RFC 3056 */
	else
		return false;
	memset(v4, 0, sizeof(*v4));
	v4->family = AF_INET;
	memcpy(v4->b, a->b + at, 4);
	return true;
}

static bool
prefix_has(int family, const uint8_t *p, int len, const struct ipaddr *a)
{
	int full = len / 8, rest = len % 8;

	if (a->family != family || memcmp(p, a->b, (size_t)full) != 0)
		return false;
	return rest == 0 ||
		((p[full] ^ a->b[full]) & (0xff << (8 - rest))) == 0;
}

enum addr_class
policy_addr_class(const struct ipaddr *a)
{
	struct ipaddr v4;

	for (size_t i = 0; i < ARRAY_SIZE(guarded); i++)
		if (prefix_has(guarded[i].family, guarded[i].b, guarded[i].len,
			    a))
			return guarded[i].c;
	/* A translator or relay connects to the v4 address inside. */
	if (policy_addr_embedded_v4(a, &v4))
		return policy_addr_class(&v4);
	return ADDR_PUBLIC;
}

const struct ports *
policy_verdict_ports(const struct verdict *v, enum addr_class c)
{
	if (c == ADDR_PUBLIC)
		return &v->ports;
	if (c == ADDR_PRIVATE && v->allow_private)
		return &v->private_ports;
	return NULL;
}

const char *
policy_addr_class_name(enum addr_class c)
{
	switch (c) {
	case ADDR_PUBLIC:
		return "public";
	case ADDR_PRIVATE:
		return "private";
	case ADDR_RESERVED:
		return "reserved";
	case ADDR_INTERNAL:
		return "internal";
	}
	return "?";
}

int
policy_addr_cmp(const struct ipaddr *a, const struct ipaddr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->b, b->b, a->family == AF_INET ? 4 : 16);
}

static bool
addr_eq(const struct ipaddr *a, const struct ipaddr *b)
{
	if (a->family != b->family)
		return false;
	if (a->family == AF_INET)
		return a->v4.s_addr == b->v4.s_addr;
	return memcmp(&a->v6, &b->v6, sizeof(a->v6)) == 0;
}

static bool
iface_claimed(const struct vm *vms, size_t nvms, const char *ifname)
{
	for (size_t i = 0; i < nvms; i++)
		if (vms[i].iface && strcmp(vms[i].iface, ifname) == 0)
			return true;
	return false;
}

const struct vm *
policy_find_vm(const struct vm *vms, size_t nvms, const struct ipaddr *addr,
	const char *ifname)
{
	const struct vm *vm = NULL;

	for (size_t i = 0; i < nvms && vm == NULL; i++)
		for (size_t j = 0; j < vms[i].naddrs && vm == NULL; j++)
			if (addr_eq(&vms[i].addrs[j], addr))
				vm = &vms[i];
	if (vm == NULL || ifname == NULL)
		return vm;
	/* Addresses are unique across VMs; an interface is the VMs' that
	 * claim it. Anything else arriving on it, the address of a VM
	 * without interface:, too, is a spoofed source: as in the forward
	 * chain, whatever the order of the files. */
	if (vm->iface)
		return strcmp(vm->iface, ifname) == 0 ? vm : NULL;
	return iface_claimed(vms, nvms, ifname) ? NULL : vm;
}

struct by_iface {
	const struct vm *vms;
	size_t i;
};

static int
cmp_by_iface(const void *a, const void *b)
{
	const struct by_iface *x = a, *y = b;
	int c = strcmp(x->vms[x->i].iface, y->vms[y->i].iface);

	if (c != 0)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

size_t
policy_dispatch_order(const struct vm *vms, size_t nvms, size_t *order)
{
	struct by_iface *v = xcalloc(nvms + 1, sizeof(*v));
	size_t n = 0, k = 0;

	for (size_t i = 0; i < nvms; i++)
		if (vms[i].iface)
			v[n++] = (struct by_iface){.vms = vms, .i = i};
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_by_iface);
	for (k = 0; k < n; k++)
		order[k] = v[k].i;
	for (size_t i = 0; i < nvms; i++)
		if (!vms[i].iface)
			order[k++] = i;
	free(v);
	return n;
}

static uint32_t
ttl_clamp(const struct ttl_conf *t, uint32_t ttl)
{
	uint32_t v = ttl < t->min ? t->min : ttl;

	return v > t->max ? t->max : v;
}

uint32_t
policy_ttl_cap(const struct ttl_conf *t, bool admits, uint32_t min_ttl)
{
	return admits ? ttl_clamp(t, min_ttl) : t->max;
}

uint32_t
policy_ttl_element(const struct ttl_conf *t, uint32_t ttl)
{
	return ttl_clamp(t, ttl) + t->grace;
}

const char *
policy_addr_str(const struct ipaddr *a, char *buf, size_t len)
{
	if (inet_ntop(a->family, a->b, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

const char *
policy_prefix_str(const struct prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s/%d", policy_addr_str(&p->addr, a, sizeof(a)),
		p->len);
	return buf;
}

const char *
policy_portspec_str(const struct portspec *p, char *buf, size_t len)
{
	const char *proto = p->proto == IPPROTO_TCP ? "tcp" : "udp";

	if (p->proto == IPPROTO_ICMP)
		snprintf(buf, len, "icmp");
	else if (p->lo == p->hi)
		snprintf(buf, len, "%s/%u", proto, p->lo);
	else
		snprintf(buf, len, "%s/%u-%u", proto, p->lo, p->hi);
	return buf;
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool
covered(const struct vm *vm, uint8_t proto, uint32_t lo, uint32_t hi)
{
	for (size_t i = 0; i < vm->nallow; i++) {
		const struct rule *r = &vm->allow[i];

		if (r->is_net)
			continue;
		for (size_t j = 0; j < r->ports.n; j++)
			if (r->ports.v[j].proto == proto &&
				r->ports.v[j].lo <= lo &&
				hi <= r->ports.v[j].hi)
				return true;
	}
	return false;
}

void
policy_vm_atoms(struct vm *vm)
{
	static const uint8_t protos[2] = {IPPROTO_TCP, IPPROTO_UDP};

	free(vm->atoms);
	vm->atoms = NULL;
	vm->natoms = 0;
	for (int p = 0; p < 2; p++) {
		uint32_t *cut = NULL;
		size_t ncut = 0;

		/* Every range starts a piece and ends one: cut there. */
		for (size_t i = 0; i < vm->nallow; i++) {
			const struct rule *r = &vm->allow[i];

			for (size_t j = 0; !r->is_net && j < r->ports.n; j++) {
				if (r->ports.v[j].proto != protos[p])
					continue;
				cut = xreallocarray(cut, ncut + 2,
					sizeof(*cut));
				cut[ncut++] = r->ports.v[j].lo;
				cut[ncut++] = (uint32_t)r->ports.v[j].hi + 1;
			}
		}
		if (ncut > 0)
			qsort(cut, ncut, sizeof(*cut), u32_cmp);
		for (size_t i = 0; i + 1 < ncut; i++) {
			if (cut[i] == cut[i + 1] ||
				!covered(vm, protos[p], cut[i], cut[i + 1] - 1))
				continue;
			*ARRAY_PUSH(vm->atoms, vm->natoms) =
				(struct portspec){protos[p], (uint16_t)cut[i],
					(uint16_t)(cut[i + 1] - 1)};
		}
		free(cut);
	}
}

size_t
policy_atoms_for(const struct vm *vm, const struct ports *ps,
	struct portspec *out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < vm->natoms; i++) {
		const struct portspec *a = &vm->atoms[i];

		for (size_t j = 0; j < ps->n; j++) {
			if (ps->v[j].proto == a->proto &&
				ps->v[j].lo <= a->lo && a->hi <= ps->v[j].hi) {
				if (n < max)
					out[n] = *a;
				n++;
				break;
			}
		}
	}
	return n;
}

void
policy_vm_finish(struct vm *vm)
{
	size_t i;

	free(vm->atoms);
	nameidx_destroy(vm->idx);
	for (i = 0; i < vm->nallow; i++)
		policy_ports_finish(&vm->allow[i].ports);
	free(vm->allow);
	free(vm->deny);
	free(vm->addrs);
	free(vm->addr_pos);
	free(vm->iface);
	free(vm->name);
	free(vm->file);
	memset(vm, 0, sizeof(*vm));
}

const struct vm *
policy_vm_by_name(const struct vm *vms, size_t nvms, const char *name)
{
	for (size_t i = 0; i < nvms; i++)
		if (strcmp(vms[i].name, name) == 0)
			return &vms[i];
	return NULL;
}

/* Field by field: padding inside these structs is never initialised. */
static bool
ports_same(const struct ports *a, const struct ports *b)
{
	if (a->any != b->any || a->icmp != b->icmp || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].proto != b->v[i].proto ||
			a->v[i].lo != b->v[i].lo || a->v[i].hi != b->v[i].hi)
			return false;
	return true;
}

static bool
prefix_same(const struct prefix *a, const struct prefix *b)
{
	return a->len == b->len && a->addr.family == b->addr.family &&
		memcmp(a->addr.b, b->addr.b,
			a->addr.family == AF_INET ? 4 : 16) == 0;
}

static bool
rule_same(const struct rule *a, const struct rule *b)
{
	if (a->is_net != b->is_net || a->require_dnssec != b->require_dnssec ||
		a->allow_private != b->allow_private ||
		!ports_same(&a->ports, &b->ports))
		return false;
	if (a->is_net)
		return prefix_same(&a->net, &b->net);
	return a->pat.kind == b->pat.kind &&
		strcmp(a->pat.name, b->pat.name) == 0;
}

static bool
rules_same(const struct rule *a, size_t na, const struct rule *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!rule_same(&a[i], &b[i]))
			return false;
	return true;
}

bool
policy_vm_same_rules(const struct vm *a, const struct vm *b)
{
	return a->default_allow == b->default_allow && a->learn == b->learn &&
		a->dns_deny == b->dns_deny &&
		rules_same(a->allow, a->nallow, b->allow, b->nallow) &&
		rules_same(a->deny, a->ndeny, b->deny, b->ndeny);
}

bool
policy_vm_same_deny(const struct vm *a, const struct vm *b)
{
	return a->default_allow == b->default_allow && a->learn == b->learn &&
		a->dns_deny == b->dns_deny &&
		rules_same(a->deny, a->ndeny, b->deny, b->ndeny);
}

static uint64_t
fnv64(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

uint64_t
policy_rule_id(const struct rule *r)
{
	uint64_t h = 14695981039346656037ull;
	uint8_t flags[5] = {(uint8_t)r->pat.kind, r->ports.any, r->ports.icmp,
		r->require_dnssec, r->allow_private};

	h = fnv64(h, flags, sizeof(flags));
	h = fnv64(h, r->pat.name, strlen(r->pat.name) + 1);
	for (size_t i = 0; i < r->ports.n; i++) {
		uint8_t p[5] = {r->ports.v[i].proto,
			(uint8_t)(r->ports.v[i].lo >> 8),
			(uint8_t)r->ports.v[i].lo,
			(uint8_t)(r->ports.v[i].hi >> 8),
			(uint8_t)r->ports.v[i].hi};

		h = fnv64(h, p, sizeof(p));
	}
	return h;
}

/* ---- times ---------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar,
 * counted in 400-year eras (146097 days each) from a year that starts in
 * March, so that the leap day is the last day of its year. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31};

	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* n decimal digits at *s (advanced past them); -1 if any is not one. */
static int
digits(const char **s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*s)++) {
		if (**s < '0' || **s > '9')
			return -1;
		v = v * 10 + (**s - '0');
	}
	return v;
}

/* The fields of a date-time and the punctuation between them, in order:
 * a digit count, or a character that must follow. */
static const char rfc3339_shape[] = "4-2-2T2:2:2";

int
policy_parse_time(const char *s, int64_t *out, const char **err)
{
	static const char *const shape_err =
		"bad time: expected RFC 3339, e.g. 2026-12-31T18:00:00Z or "
		"2026-12-31T19:00:00+01:00";
	int f[6], nf = 0, oh = 0, om = 0, sign = 0;

	*err = shape_err;
	for (const char *sh = rfc3339_shape; *sh; sh++) {
		if (*sh >= '0' && *sh <= '9') {
			if ((f[nf++] = digits(&s, *sh - '0')) < 0)
				return -1;
		} else if (*s == *sh || (*sh == 'T' && *s == 't')) {
			s++;
		} else {
			return -1;
		}
	}
	if (*s == '.') {
		const char *frac = ++s;

		while (*s >= '0' && *s <= '9')
			s++;
		if (s == frac || s - frac > 9)
			return -1;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if ((oh = digits(&s, 2)) < 0 || *s++ != ':' ||
			(om = digits(&s, 2)) < 0)
			return -1;
	} else {
		return -1;
	}
	if (*s != '\0')
		return -1;
	if (f[1] < 1 || f[1] > 12)
		*err = "bad time: the month must be 01-12";
	else if (f[2] < 1 || f[2] > days_in_month(f[0], f[1]))
		*err = "bad time: no such day in that month";
	else if (f[3] > 23 || f[4] > 59)
		*err = "bad time: hours 00-23, minutes 00-59";
	else if (f[5] == 60)
		*err = "bad time: a leap second (:60) has no POSIX time; write "
		       ":59 or the next minute";
	else if (f[5] > 59)
		*err = "bad time: seconds 00-59";
	else if (oh > 23 || om > 59)
		*err = "bad time: the offset must be at most 23:59";
	else
		*err = NULL;
	if (*err != NULL)
		return -1;
	*out = days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 +
		f[4] * 60 + f[5] - sign * (oh * 3600 + om * 60);
	return 0;
}

const char *
policy_time_str(int64_t t, char *buf, size_t len)
{
	int64_t days = (t >= 0 ? t : t - 86399) / 86400, y;
	int64_t sec = t - days * 86400;
	int m, d;

	civil_from_days(days, &y, &m, &d);
	snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m,
		d, (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
	return buf;
}

const char *
policy_rule_str(const struct rule *r, char *buf, size_t len)
{
	if (r->is_net)
		return policy_prefix_str(&r->net, buf, len);
	if (r->pat.kind == MATCH_ALL)
		snprintf(buf, len, "*");
	else
		snprintf(buf, len, "%s%s",
			r->pat.kind == MATCH_SUFFIX ? "*." : "", r->pat.name);
	return buf;
}
