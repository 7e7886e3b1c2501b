#include "judge.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "elems.h"

bool
judge_prefix_has(const struct prefix *p, const struct ipaddr *a)
{
	int full = p->len / 8, rest = p->len % 8;

	if (p->addr.family != a->family)
		return false;
	if (memcmp(p->addr.b, a->b, (size_t)full) != 0)
		return false;
	return rest == 0 ||
		((p->addr.b[full] ^ a->b[full]) & (0xff << (8 - rest))) == 0;
}

/* Does a rule's ports cover the connection? want NULL: "any protocol and
 * port", covered only by no `ports` at all. */
static bool
ports_cover(const struct ports *ps, const struct portspec *want)
{
	if (ps->any)
		return true;
	if (want == NULL)
		return false;
	if (want->proto == IPPROTO_ICMP)
		return ps->icmp;
	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].proto == want->proto && ps->v[i].lo <= want->lo &&
			want->lo <= ps->v[i].hi)
			return true;
	return false;
}

static bool
elem_covers(const struct elem_key *k, const struct portspec *want)
{
	if (!elems_has_ports(k))
		return true;
	if (want == NULL)
		return false;
	if (elems_is_echo(k))
		return want->proto == IPPROTO_ICMP;
	return k->proto == want->proto && k->lo <= want->lo &&
		want->lo <= k->hi;
}

struct judging {
	const struct ipaddr *dst;
	const struct portspec *want;
	struct judgement *j;
	bool hit;
};

static void
elem_cb(const struct admit_elem *e, void *arg)
{
	struct judging *g = arg;
	struct judgement *j = g->j;
	const char *proto;
	char ports[16];
	size_t n;

	if (e->k->family != g->dst->family ||
		memcmp(e->k->addr, g->dst->b,
			g->dst->family == AF_INET ? 4 : 16) != 0)
		return;
	if (elem_covers(e->k, g->want)) {
		/* The longest-lived one admits it for longest. */
		if (!g->hit || e->left_ms > j->hit.left_ms)
			j->hit = *e;
		g->hit = true;
		return;
	}
	elems_ports(e->k, &proto, ports, sizeof(ports));
	n = strlen(j->other);
	if (j->nother++ < 6 && n < sizeof(j->other))
		snprintf(j->other + n, sizeof(j->other) - n, "%s%s%s%s",
			n ? ", " : "", proto ? proto : "", ports[0] ? "/" : "",
			ports);
}

/* The policy rule that admitted an element, by identity. */
static const struct rule *
elem_rule(const struct vm *vm, const struct admit_elem *e)
{
	for (size_t i = 0; i < e->nrules; i++)
		for (size_t j = 0; j < vm->nallow; j++)
			if (!vm->allow[j].is_net &&
				policy_rule_id(&vm->allow[j]) == e->rules[i])
				return &vm->allow[j];
	return NULL;
}

static void
admit_elems(const void *src, const char *vm, const struct ipaddr *dst,
	admit_elem_cb cb, void *arg)
{
	(void)dst;
	admit_foreach(src, vm, cb, arg);
}

enum judged_by
judge_forward(const struct vm *vm, const struct admit *ad,
	const struct ipaddr *dst, const struct portspec *want,
	struct judgement *out)
{
	return judge_forward_from(vm, admit_elems, ad, dst, want, out);
}

enum judged_by
judge_forward_from(const struct vm *vm, judge_elems_fn elems, const void *src,
	const struct ipaddr *dst, const struct portspec *want,
	struct judgement *out)
{
	struct judging g = {.dst = dst, .want = want, .j = out};

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < vm->nallow; i++) {
		const struct rule *r = &vm->allow[i];

		if (r->is_net && judge_prefix_has(&r->net, dst) &&
			ports_cover(&r->ports, want)) {
			out->rule = r;
			return out->by = JUDGED_NET;
		}
	}
	elems(src, vm->name, dst, elem_cb, &g);
	if (g.hit) {
		out->rule = elem_rule(vm, &out->hit);
		return out->by = JUDGED_NAME;
	}
	if (vm->default_allow || vm->learn)
		return out->by = JUDGED_DEFAULT;
	return out->by = JUDGED_DROP;
}
