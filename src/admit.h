/* Admission: putting the addresses of an answer into the VM's sets before
 * the answer is released. A userspace shadow knows every element and until
 * when it lives, so an answer whose elements already outlive its TTL costs
 * no netlink round trip; an answer that needs a change waits for the ACK of
 * the batch carrying it (and of any earlier batch still carrying one of its
 * elements). Elements of answers completing in the same loop iteration are
 * coalesced into one batch. Expiry is only ever extended. */
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

struct admit *admit_new(struct nft *n, struct event_base *base,
	const char *table);
void admit_free(struct admit *a);

/** Fill the shadow from the kernel's sets (start-up adoption). */
int admit_adopt(struct admit *a, const struct config *c);
/** Forget VMs that c no longer has (after a reload). */
void admit_retain(struct admit *a, const struct config *c);
/** Probe whether re-adding an element replaces its timeout (Linux 6.12+);
 * otherwise extensions use delete + add in one batch. */
void admit_probe(struct admit *a);

/** Admit addrs for vm with the given ports, for at least timeout_s
 * seconds. cb may run before this returns (nothing to change, or a
 * refusal such as a full set). */
void admit_request(struct admit *a, const struct config *c,
	const struct vm *vm, const char *name, const struct dns_addr *addrs,
	size_t naddrs, const struct ports *ports, uint32_t timeout_s,
	admit_done_cb cb, void *arg);

struct admit_prune;
/** Add to b (a reload's transaction) the deletion of every element that no
 * rule of c admits any more: an element is kept while one of the names
 * that admitted it is still allowed with its ports, or when those names
 * are unknown (adopted from a kernel set without comments). */
struct admit_prune *admit_prune(struct admit *a, const struct config *c,
	struct nft_batch *b);
/** The reload's outcome: on success the pruned elements leave the shadow. */
void admit_prune_done(struct admit *a, struct admit_prune *p, bool ok);

/** Drop shadow entries that have expired (call now and then). */
void admit_sweep(struct admit *a);

struct admit_stats {
	uint64_t requests, noop, batches, elements, failures, full;
};
const struct admit_stats *admit_stats(const struct admit *a);

#endif
