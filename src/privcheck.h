/* What the privileged process lets into the kernel: after privilege
 * separation the engine (which parses every VM packet and every upstream
 * answer) can only ask for elements, and each is checked here against the
 * privileged process's own copy of the configuration. A compromised
 * engine can still admit, for a VM, an address its policy would admit
 * for some name (it can lie about answers), but never: a set of another
 * table or no VM, a protocol or port no rule of that VM names, an
 * address the rebinding guard refuses (a VM's, a listen address,
 * loopback, multicast; a private one without allow-private), or a
 * timeout beyond ttl.max + grace + 1 s. */
#ifndef DNSFENCE_PRIVCHECK_H
#define DNSFENCE_PRIVCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "elems.h"

/** May an element k be added to set idx of vm (its name) with that
 * timeout? NULL if so, else why not (in why). */
const char *privcheck_add(const struct config *c, const char *vm, int idx,
	const struct elem_key *k, uint64_t timeout_ms, char *why, size_t len);
/** May element k be deleted from set idx of vm? Deleting never admits
 * anything, so only the set is checked: a VM of c, a set of the family. */
const char *privcheck_del(const struct config *c, const char *vm, int idx,
	const struct elem_key *k, char *why, size_t len);

#endif
