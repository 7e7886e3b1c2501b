#ifndef DNSFENCE_CTPURGE_H
#define DNSFENCE_CTPURGE_H

/* The conntrack purge (`nftables: conntrack-purge: true`): once a changed
 * configuration is in force, the connections of the VMs whose policy
 * changed are judged again as new ones (judge.h), and the conntrack
 * entries of those the new policy no longer admits are deleted. Their
 * next packet is then a new connection, which the forward chain rejects
 * (a NATed flow simply ends). This is what qubes-firewall does after it
 * applies a VM's changed rules. */

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

/** Judge the conntrack entries whose original source is one of srcs by
 * cf and the admissions ad holds (call it once the kernel holds both),
 * and delete those they do not admit. 0, or -1 with errno when the
 * conntrack table could not be read (what was read is still purged). */
int ctpurge_run(const struct config *cf, const struct ipaddr *srcs,
	size_t nsrcs, const struct admit *ad, struct ctpurge_stats *st);

#endif
