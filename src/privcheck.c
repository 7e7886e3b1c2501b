#include "privcheck.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "policy.h"

/* The set: of a VM of c, of the element's kind and family. */
static const struct vm *
check_set(const struct config *c, const char *vm, int idx,
	const struct elem_key *k, char *why, size_t len)
{
	const struct vm *v = config_vm(c, vm);

	if (v == NULL) {
		snprintf(why, len, "no VM named %s", vm);
		return NULL;
	}
	if (idx < 0 || idx >= SET_COUNT || set_index_kind(idx) != k->kind ||
		!elems_key_canonical(k) || set_index_family(idx) != k->family ||
		(k->family != AF_INET && k->family != AF_INET6)) {
		snprintf(why, len, "VM %s: the element does not fit set %d", vm,
			idx);
		return NULL;
	}
	return v;
}

/* Does a name rule of vm (or its default) admit elements of this
 * protocol and port range? */
static bool
ports_named(const struct vm *v, const struct elem_key *k)
{
	if (k->kind == SET_ANY) {
		if (k->proto != 0 || k->lo != 0 || k->hi != 0)
			return false;
		if (v->default_allow || v->learn)
			return true;
		for (size_t i = 0; i < v->nallow; i++)
			if (!v->allow[i].is_net && v->allow[i].ports.any)
				return true;
		return false;
	}
	if (elems_is_echo(k)) {
		/* Echo requests only: the port field is the ICMP type and
		 * code, and only 8.0 (128.0) is ever admitted. */
		if (k->lo != k->hi ||
			k->lo !=
				(k->family == AF_INET ? ECHO_KEY_V4
						      : ECHO_KEY_V6))
			return false;
		for (size_t i = 0; i < v->nallow; i++)
			if (!v->allow[i].is_net && v->allow[i].ports.icmp)
				return true;
		return false;
	}
	for (size_t i = 0; i < v->natoms; i++)
		if (v->atoms[i].proto == k->proto && v->atoms[i].lo == k->lo &&
			v->atoms[i].hi == k->hi)
			return true;
	return false;
}

/* Do a rule's ports take in the element's protocol and port range? */
static bool
rule_covers(const struct rule *r, const struct elem_key *k)
{
	if (r->ports.any)
		return true;
	if (k->kind == SET_ANY)
		return false;
	if (elems_is_echo(k))
		return r->ports.icmp;
	for (size_t i = 0; i < r->ports.n; i++)
		if (r->ports.v[i].proto == k->proto &&
			r->ports.v[i].lo <= k->lo && k->hi <= r->ports.v[i].hi)
			return true;
	return false;
}

/* A private address only with the ports of a rule that says
 * allow-private, as the engine admits it (interface.md, DNS rebinding). */
static bool
allows_private(const struct vm *v, const struct elem_key *k)
{
	for (size_t i = 0; i < v->nallow; i++)
		if (!v->allow[i].is_net && v->allow[i].allow_private &&
			rule_covers(&v->allow[i], k))
			return true;
	return false;
}

const char *
privcheck_add(const struct config *c, const char *vm, int idx,
	const struct elem_key *k, uint64_t timeout_ms, char *why, size_t len)
{
	const struct vm *v = check_set(c, vm, idx, k, why, len);
	uint64_t max = ((uint64_t)c->ttl.max + c->ttl.grace + 1) * 1000;
	struct ipaddr a = {.family = k->family};
	enum addr_class cl;
	char buf[64];

	if (v == NULL)
		return why;
	if (!ports_named(v, k)) {
		snprintf(why, len,
			"VM %s: no rule of its policy names that protocol and "
			"port",
			vm);
		return why;
	}
	if (timeout_ms == 0 || timeout_ms > max) {
		snprintf(why, len,
			"VM %s: timeout %llu ms (1 to %llu: ttl.max + grace + "
			"1 s)",
			vm, (unsigned long long)timeout_ms,
			(unsigned long long)max);
		return why;
	}
	memcpy(a.b, k->addr, k->family == AF_INET ? 4 : 16);
	cl = config_addr_class(c, &a);
	if (cl == ADDR_RESERVED || cl == ADDR_INTERNAL ||
		(cl == ADDR_PRIVATE && !allows_private(v, k))) {
		snprintf(why, len, "VM %s: %s is %s: never through a name%s",
			vm, policy_addr_str(&a, buf, sizeof(buf)),
			policy_addr_class_name(cl),
			cl == ADDR_PRIVATE ? " without allow-private" : "");
		return why;
	}
	return NULL;
}

const char *
privcheck_del(const struct config *c, const char *vm, int idx,
	const struct elem_key *k, char *why, size_t len)
{
	return check_set(c, vm, idx, k, why, len) == NULL ? why : NULL;
}
