/* `mode: learn`: what each learning VM resolved and what it then used,
 * and the policy that allows exactly that (`dnsfencectl suggest VM`).
 *
 * The store belongs to the daemon, not to a configuration: it is keyed by
 * VM name and survives reloads (and a VM's switch back to `mode:
 * enforce`, so that a suggestion can still be asked for after loading the
 * previous one); a reload that removes the VM drops its data. Usages come
 * from the kernel, never from guesses: the VM's chain updates
 * <vm>_v4_seen / <vm>_v6_seen from the packet path (elems.h), and
 * learn_refresh() reads them back and maps each address to the names that
 * gave it, through the admission shadow and through the addresses this
 * store recorded with each answer (those outlive the elements).
 *
 * Bounded per VM: LEARN_NAMES_MAX names, LEARN_ADDRS_MAX addresses and
 * LEARN_USES_MAX usages; when one is full the least recently seen entry
 * is dropped and counted. Everything but learn_refresh() is pure (no I/O)
 * and unit-tested. */
#ifndef DNSFENCE_LEARN_H
#define DNSFENCE_LEARN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "elems.h"

#define LEARN_NAMES_MAX 4096
#define LEARN_ADDRS_MAX 4096
#define LEARN_USES_MAX 4096
#define LEARN_LINKS_MAX 16 /* names kept per address and per usage */
#define LEARN_REFRESH_S 5  /* how often the daemon reads the seen sets */

struct learn;
struct admit;

struct learn_stats {
	uint64_t names, addrs, uses; /* held now */
	uint64_t names_dropped, addrs_dropped, uses_dropped;
};

struct learn *learn_new(void);
/** learn_free(NULL) is a no-op. */
void learn_free(struct learn *l);

/** vm resolved name (normalised) at now_ms, and the answer gave addrs
 * (naddrs may be 0: NXDOMAIN, NODATA, another type). */
void learn_name(struct learn *l, const char *vm, const char *name,
	const struct ipaddr *addrs, size_t naddrs, uint64_t now_ms);
/** vm used k (a seen-set element: kind SET_PORTS, lo == hi, echo
 * requests as elems_echo_key) last at last_ms; names: those the shadow
 * knows for its address (the store adds those it recorded itself). */
void learn_use(struct learn *l, const char *vm, const struct elem_key *k,
	uint64_t last_ms, const char *const *names, size_t nnames);
/** Drop the data of VMs that c no longer has (after a reload). */
void learn_retain(struct learn *l, const struct config *c);
/** Counters of one VM (zero if it has no data), or of all when vm is
 * NULL. */
struct learn_stats learn_stats(const struct learn *l, const char *vm);

/** Read the seen sets of c's learning VMs from the kernel now (the daemon
 * does every LEARN_REFRESH_S, before a reload and before a suggestion)
 * and record every element, its names found through a's shadow. -1 if a
 * set could not be read (the others are still read). */
int learn_refresh(struct learn *l, const struct config *c,
	const struct admit *a, uint64_t now_ms);

/** A complete policy file (malloc'd YAML text) for vm, from what it used:
 * vm's addresses, interface and `unlisted`; `default: deny`; one allow
 * entry per name it used, with exactly the ports it used, siblings folded
 * into `*.parent` (see doc/configuration.md, "Learning"); a `net:` /32 or
 * /128 entry for each address it used that no name gave; the names it
 * resolved and never used as comments. Sorted, deterministic; it passes
 * `dnsfenced -n`. */
char *learn_suggest(const struct learn *l, const struct vm *vm);

#endif
