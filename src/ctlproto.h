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
#define CTL_ARGS_MAX 4		/* arguments after the command */
#define CTL_ARG_MAX 255		/* bytes of one argument */
#define CTL_REQ_MAX 2048	/* bytes of a whole request frame */
#define CTL_FRAME_MAX 65536	/* bytes of one reply frame's payload */
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

#define CTL_F_JSON 0x1	     /* -j: one JSON document */
#define CTL_F_FOLLOW 0x2     /* log -f */
#define CTL_F_PROMETHEUS 0x4 /* metrics --prometheus: text format 0.0.4 */

struct ctl_request {
	enum ctl_cmd cmd;
	uint32_t flags;
	int argc;
	const char *argv[CTL_ARGS_MAX]; /* NUL-terminated, in the buffer */
};

/* A request: an 8-byte header, then argc arguments, each NUL-terminated.
 *   0 version (CTL_VERSION)   1 command (enum ctl_cmd)
 *   2 payload length (16 bits) 4 flags (32 bits), network byte order */
#define CTL_REQ_HDR 8

/* A reply frame: an 8-byte header, then its payload (OUT and ERR only).
 *   0 version   1 kind (enum ctl_kind)   2 status (END only, 0-3)
 *   3 zero      4 payload length (32 bits, at most CTL_FRAME_MAX) */
#define CTL_FRAME_HDR 8
#define CTL_STATUS_MAX 3 /* 0 done, 1 failed, 2 usage, 3 no daemon */

enum ctl_kind {
	CTL_FRAME_OUT = 1, /* text for the client's stdout */
	CTL_FRAME_ERR,	   /* text for the client's stderr */
	CTL_FRAME_END,	   /* the exit status; the last frame */
};

struct ctl_frame {
	enum ctl_kind kind;
	int status;
	size_t len; /* payload bytes that follow the header */
};

/** Encode a request into buf (size bytes): its length, or -1 when it is
 * not a valid request (command, flags, argument count or length) or does
 * not fit. */
int ctl_request_encode(void *buf, size_t size, enum ctl_cmd cmd, uint32_t flags,
	int argc, const char *const *argv);
/** From a request's first CTL_REQ_HDR bytes: the whole request's length,
 * or -1 (and *why) when the header alone is already invalid. */
int ctl_request_len(const void *hdr, const char **why);
/** Parse exactly one request, all of buf[0..len): rq->argv point into
 * buf. 0, or -1 and *why (a static string) for anything but the one
 * canonical encoding of a valid request. */
int ctl_request_parse(struct ctl_request *rq, const void *buf, size_t len,
	const char **why);
/** Are these flags valid for cmd (CTL_F_FOLLOW: only for log;
 * CTL_F_PROMETHEUS: only for metrics)? */
bool ctl_flags_ok(enum ctl_cmd cmd, uint32_t flags);

/** Write a reply frame header (len ≤ CTL_FRAME_MAX; status only for
 * END). */
void ctl_frame_encode(void *hdr, enum ctl_kind kind, int status, size_t len);
/** Parse a reply frame header (the first CTL_FRAME_HDR bytes of hdr):
 * 0, or -1 and *why. */
int ctl_frame_parse(struct ctl_frame *f, const void *hdr, const char **why);

/** The command of that name (status, list...), or 0. */
enum ctl_cmd ctl_cmd_by_name(const char *name);
const char *ctl_cmd_name(enum ctl_cmd cmd);
/** Is argc a valid argument count for cmd (usage, checked by both
 * sides)? */
bool ctl_argc_ok(enum ctl_cmd cmd, int argc);

#endif
