#ifndef DNSFENCE_CTPURGE_H
#define DNSFENCE_CTPURGE_H

/* The conntrack purge (`nftables: conntrack-purge: true`): once a changed
 * configuration is in force, the connections of the VMs whose policy
 * changed are judged again as new ones (judge.h), by the old policy and
 * the elements it had, and by the new; the conntrack entries of those the
 * change took away (admitted before, not after) are deleted. Their next
 * packet is then a new connection, which the forward chain rejects (a
 * NATed flow simply ends). qubes-firewall, too, deletes what a VM's
 * changed rules no longer allow. */

#include <stddef.h>

#include "admit.h"
#include "config.h"
#include "policy.h"

/* At most this many entries are deleted in one round of a purge, and at
 * most CTPURGE_ROUNDS rounds (each reads the table again) run while a
 * round leaves entries over; what is left after them is reported (and
 * goes on). */
#define CTPURGE_MAX 65536
#define CTPURGE_ROUNDS 8

struct ctpurge_stats {
	size_t judged;	/* entries whose original source is re-judged */
	size_t kept;	/* still admitted, or not the forward chain's */
	size_t deleted; /* deleted (or gone meanwhile) */
	size_t failed;	/* the kernel refused the delete, or over the cap */
};

/** The source addresses whose connections a change from old to new must
 * judge again: every address of a VM whose addresses, interface or rules
 * differ between the two, or that only one of them has. *out is
 * allocated (the caller frees it); returns how many. */
size_t ctpurge_sources(const struct config *old, const struct config *new,
	struct ipaddr **out);

/* What the running configuration admitted, kept across a change: its
 * sources to judge again, a copy of it, and a copy of the elements the
 * shadow held for those VMs before the change's prunes. */
struct ctpurge_before;

/** Take it just before the change from old to new replaces old in the
 * daemon and the shadow (admit_retain, admit_plan_done). NULL when no
 * source needs judging. */
struct ctpurge_before *ctpurge_before(const struct config *old,
	const struct config *new, const struct admit *ad);
void ctpurge_before_free(struct ctpurge_before *b);

/** Once the change is in force (kernel and shadow), judge every conntrack
 * entry whose original source is one of b's twice, as a new connection:
 * by b (the old policy and the elements it had) and by cf and ad (the new
 * ones). Delete those the old admitted and the new does not: what the
 * change took away, and only that (a connection kept alive by conntrack
 * after its element expired was not admitted before either, and goes
 * on). 0, or -1 with errno when the conntrack table could not be read
 * (what was read is still purged). */
int ctpurge_run(const struct ctpurge_before *b, const struct config *cf,
	const struct admit *ad, struct ctpurge_stats *st);

#endif
