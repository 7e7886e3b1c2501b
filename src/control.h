/* The control socket: dnsfencectl's requests, checked and framed, handed
 * to the daemon's command handler; its output streamed back. The daemon
 * formats every answer itself (human table or JSON), so the client only
 * prints what it receives and exits with the status it is given.
 *
 * The wire protocol (framing, bounds) is in ctlproto.h, shared with
 * dnsfencectl. */
#ifndef DNSFENCE_CONTROL_H
#define DNSFENCE_CONTROL_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include "ctlproto.h"

struct event_base;
struct control;
struct ctl_conn;

/** A request has arrived on cc from an authorised peer. The handler
 * writes with ctl_out/ctl_err and ends it with ctl_end, now or later (a
 * reload that completes later, `log -f` that follows until the peer
 * goes away). */
typedef void (*control_cmd_cb)(struct ctl_conn *cc,
	const struct ctl_request *rq, void *arg);

/** Listen on path (a stale socket file is replaced): mode 0660, group
 * gid. Peers other than root or members of gid (primary or supplementary
 * group, by SO_PEERCRED/SO_PEERGROUPS) are refused before anything they
 * send is read. NULL and *err (malloc'd) on failure. */
struct control *control_new(struct event_base *base, const char *path,
	gid_t gid, control_cmd_cb cb, void *arg, char **err);
/** Close every connection (held ones get status 1, "dnsfenced is
 * exiting") and remove the socket file. */
void control_free(struct control *ctl);

/* Output towards the client's stdout (ctl_out) or stderr (ctl_err). The
 * output held for one slow connection is bounded (CTL_OUT_MAX): beyond
 * it, a `log -f` follower loses lines (counted, and told so) and any
 * other command is cut off with status 1. */
void ctl_out(struct ctl_conn *cc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void ctl_vout(struct ctl_conn *cc, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
void ctl_write(struct ctl_conn *cc, const void *buf, size_t len);
void ctl_err(struct ctl_conn *cc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/** Bytes of output queued and not yet sent on cc. */
size_t ctl_pending(const struct ctl_conn *cc);
/** The request is done: status is dnsfencectl's exit status (0 done, 1
 * failed or, for `why`, dropped; 2 usage). cc must not be used after. */
void ctl_end(struct ctl_conn *cc, int status);

/** For a held request: fn runs when the peer goes away first (cc is
 * freed right after; ctl_end must then not be called). */
void ctl_on_close(struct ctl_conn *cc, void (*fn)(struct ctl_conn *, void *),
	void *arg);

#endif
