#ifndef DNSFENCE_JUDGE_H
#define DNSFENCE_JUDGE_H

/* What the forward chain makes of a new connection from one VM, read from
 * the policy and the admission shadow (what the kernel's sets hold): the
 * judgement `dnsfencectl why` explains and the conntrack purge applies. */

#include <stdbool.h>
#include <stddef.h>

#include "admit.h"
#include "policy.h"

enum judged_by {
	JUDGED_DROP,	/* nothing admits it */
	JUDGED_NET,	/* a net: rule */
	JUDGED_NAME,	/* an element of the VM's sets */
	JUDGED_DEFAULT, /* default: allow, or mode: learn */
};

struct judgement {
	enum judged_by by;
	/* JUDGED_NET: the net rule; JUDGED_NAME: the rule that admitted the
	 * element, NULL when none does any more (an element added by hand,
	 * or one kept for its names' sake). */
	const struct rule *rule;
	/* JUDGED_NAME: the element (the longest-lived one that covers the
	 * connection); its pointers live as long as the shadow is unchanged. */
	struct admit_elem hit;
	/* JUDGED_DROP: the ports the address was resolved for, "tcp/443,
	 * udp/53", up to six of them (nother counts them all). */
	char other[160];
	size_t nother;
};

/** Does prefix p hold address a? */
bool judge_prefix_has(const struct prefix *p, const struct ipaddr *a);

/** Judge a new connection of vm to dst. want: its protocol and port
 * (lo == hi; IPPROTO_ICMP for an echo), or NULL for "any protocol",
 * which only a rule without `ports` covers. In the order of the VM's
 * chain: net rules, the sets, the default. */
enum judged_by judge_forward(const struct vm *vm, const struct admit *ad,
	const struct ipaddr *dst, const struct portspec *want,
	struct judgement *out);

/** Where judge_forward_from finds the VM's elements: calls cb for every
 * element of VM vm the kernel holds at address dst (others may be passed
 * too: they are skipped). */
typedef void (*judge_elems_fn)(const void *src, const char *vm,
	const struct ipaddr *dst, admit_elem_cb cb, void *arg);

/** judge_forward with the elements from elems(src, ...) instead of a walk
 * of the whole shadow: the conntrack purge judges many connections
 * against one snapshot, looked up by address. */
enum judged_by judge_forward_from(const struct vm *vm, judge_elems_fn elems,
	const void *src, const struct ipaddr *dst, const struct portspec *want,
	struct judgement *out);

#endif
