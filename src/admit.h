/* Admission: putting the addresses of an answer into the VM's sets before
 * the answer is released. A userspace shadow knows every element and until
 * when it lives, so an answer whose elements already outlive its TTL costs
 * no netlink round trip; an answer that needs a change waits for the ACK of
 * the batch carrying it (and of any earlier batch still carrying one of its
 * elements). Elements of one VM's answers completing in the same loop
 * iteration are coalesced into one transaction; each VM has its own, so one
 * VM's kernel error never fails another VM's answers. Expiry is only ever
 * extended. */
#ifndef DNSFENCE_ADMIT_H
#define DNSFENCE_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dnswire.h"
#include "nft.h"

struct admit;
struct event_base;

/** err 0: every element is in the kernel; else a positive errno and a
 * message naming what failed. */
typedef void (*admit_done_cb)(int err, const char *msg, void *arg);

/** deladd: the kernel keeps an element's old timeout when it is added
 * again (before Linux 6.12): extensions are a delete and an add in one
 * transaction. */
struct admit *admit_new(struct nft *n, struct event_base *base,
	const char *table, bool deladd);
void admit_free(struct admit *a);
/** Read m's notifications before trusting the shadow for an answer. */
void admit_set_monitor(struct admit *a, struct nft_mon *m);

/** Fill the shadow from the kernel's sets of c's VMs (start-up);
 * set_exists tells which sets there are. */
int admit_adopt(struct admit *a, const struct config *c,
	bool (*set_exists)(const char *set, void *arg), void *arg);
/** Forget VMs that c no longer has (after a reload). */
void admit_retain(struct admit *a, const struct config *c);
/** No batch collecting or in flight. */
bool admit_idle(const struct admit *a);

/** One address of an answer and the ports it is admitted with (those of
 * the rules that admit it: policy_verdict_ports()). */
struct admit_addr {
	struct ipaddr a;
	const struct ports *ports;
};

/** Admit addrs for vm, each with its ports, for at least timeout_s
 * seconds. cb may run before this returns (nothing to change, or a
 * refusal such as a full set). */
void admit_request(struct admit *a, const struct config *c, const struct vm *vm,
	const char *name, const struct admit_addr *addrs, size_t naddrs,
	uint32_t timeout_s, admit_done_cb cb, void *arg);

/* Changes to the shadow that ride a ruleset transaction, applied by
 * admit_plan_done() once its outcome is known. */
struct admit_plan;
/** Add to b (the transaction installing c, which replaces old; old NULL
 * at start-up) what c makes of every element: deleted when none of the
 * names that admitted it is allowed its ports any more (or when those
 * names are unknown and the VM's rules changed), replaced when its port
 * range was cut differently. */
struct admit_plan *admit_prune(struct admit *a, const struct config *old,
	const struct config *c, struct nft_batch *b);
/** After someone else changed our table: read what the kernel holds and
 * add to b every element the shadow says is live and the kernel lacks (or
 * holds for less). set_exists tells which sets survived. NULL if the
 * kernel could not be read. */
struct admit_plan *admit_restore(struct admit *a, const struct config *c,
	bool (*set_exists)(const char *set, void *arg), void *arg,
	struct nft_batch *b);
/** How many of vm's elements p deletes (before admit_plan_done). */
size_t admit_plan_deletes(const struct admit_plan *p, const char *vm);
void admit_plan_done(struct admit *a, struct admit_plan *p, bool ok);

/** Our table changed behind our back: every request fails (SERVFAIL)
 * until a restore plan completes. */
void admit_broken(struct admit *a, const char *why);
bool admit_is_broken(const struct admit *a);

/** Drop shadow entries that have expired (call now and then). */
void admit_sweep(struct admit *a);

/* ---- inspection (dnsfencectl) --------------------------------------------- */

/** One element as the shadow knows it. */
struct admit_elem {
	const char *vm;
	const struct elem_key *k;
	uint64_t left_ms;      /* what the kernel holds (ELEMS_FOREVER) */
	char *const *names;    /* that admitted it, oldest first */
	size_t nnames;	       /* ... recorded (more when names_over) */
	bool names_over;       /* more names admitted it than are kept */
	const uint64_t *rules; /* rule identities (policy_rule_id) */
	size_t nrules;
};
typedef void (*admit_elem_cb)(const struct admit_elem *e, void *arg);

struct elem_key;
/** Call cb for every element the kernel holds by the shadow (of vm, or
 * of every VM when vm is NULL); in no particular order. */
void admit_foreach(const struct admit *a, const char *vm, admit_elem_cb cb,
	void *arg);
/** Elements of vm the kernel holds, by the shadow. */
size_t admit_count(const struct admit *a, const char *vm);
/** Add to b the deletion of every element of vm (those within a few
 * seconds of their end excepted: they go on their own, and a delete
 * reaching the kernel after them would fail the transaction); *n says
 * how many. Call only when admit_idle(). */
struct admit_plan *admit_flush(struct admit *a, const char *vm,
	struct nft_batch *b, size_t *n);

/** The names that admitted vm's element for addr with every protocol and
 * port (the element a `mode: learn` or `default: allow` answer makes), as
 * the shadow knows them (up to 64): cb once per name. 0 names when there
 * is no such element. */
void admit_names_for(const struct admit *a, const char *vm,
	const struct ipaddr *addr, void (*cb)(const char *name, void *arg),
	void *arg);

struct admit_stats {
	uint64_t requests, noop, batches, elements, failures, full, broken;
	/* names that admitted an element but were not recorded with it: its
	 * VM's elements hold set-size names past their first already */
	uint64_t names_unkept;
};
const struct admit_stats *admit_stats(const struct admit *a);

#endif
