/* Privilege separation, in the shape of OpenBSD's unwind and bgpd.
 *
 * dnsfenced starts as root, reads its files, and forks. The parent stays
 * root with CAP_NET_ADMIN: it owns the netlink sockets (nf_tables, its
 * notifications, conntrack) and does nothing else than what privproto.h
 * lets the engine ask. The child, the engine, opens its listening and
 * control sockets, then chroots into an empty directory of its own and
 * becomes the unprivileged user: from then on it parses every VM packet
 * and every upstream answer (frontend, libunbound, admission planning)
 * and can only ask the parent for elements, each checked against the
 * parent's own copy of the configuration.
 *
 * Either dying ends the other: the engine reads EOF and exits; the parent
 * exits non-zero (systemd restarts both) and, like any end of dnsfenced,
 * leaves the table and its elements in place. */
#ifndef DNSFENCE_PRIVSEP_H
#define DNSFENCE_PRIVSEP_H

#include <stdbool.h>

struct config;

/** Fork. In the parent: serve the engine until it ends, then exit (never
 * returns). In the engine: 0, with nft.h set up to go through the parent;
 * -1 if the split could not be made (nothing was started). loaded is
 * generation 1; ready is called (in the parent) once the engine serves. */
int privsep_start(const char *conf_path, struct config *loaded,
	void (*ready)(void));
/** The engine, once its sockets are open: chroot, drop to the user,
 * no_new_privs. Exits if any of it fails. */
void privsep_drop(void);

#endif
