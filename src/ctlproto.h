/* The control protocol between dnsfencectl and dnsfenced, over a unix
 * stream socket: one request from the client, then frames from the
 * daemon (stdout text, stderr text, and one end frame with the exit
 * status). Every frame is length-prefixed and bounded; both sides parse
 * what they receive as untrusted input. The wire format is described in
 * doc/control.md. */
#ifndef DNSFENCE_CTLPROTO_H
#define DNSFENCE_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_VERSION 1
#define CTL_ARGS_MAX 4	    /* arguments after the command */
#define CTL_ARG_MAX 255	    /* bytes of one argument */
#define CTL_REQ_MAX 2048    /* bytes of a whole request frame */
#define CTL_FRAME_MAX 65536 /* bytes of one reply frame's payload */
#define CTL_OUT_MAX (32u << 20) /* output queued for one connection */

enum ctl_cmd {
	CTL_STATUS = 1,
	CTL_LIST,
	CTL_WHY,
	CTL_RELOAD,
	CTL_FLUSH,
	CTL_LOG,
	CTL_SUGGEST,
	CTL_METRICS,
};

#define CTL_F_JSON 0x1	 /* -j: one JSON document */
#define CTL_F_FOLLOW 0x2 /* log -f */

struct ctl_request {
	enum ctl_cmd cmd;
	uint32_t flags;
	int argc;
	const char *argv[CTL_ARGS_MAX]; /* NUL-terminated, in the buffer */
};

/** The command of that name (status, list...), or 0. */
enum ctl_cmd ctl_cmd_by_name(const char *name);
const char *ctl_cmd_name(enum ctl_cmd cmd);
/** Is argc a valid argument count for cmd (usage, checked by both
 * sides)? */
bool ctl_argc_ok(enum ctl_cmd cmd, int argc);

#endif
