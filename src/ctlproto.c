/* The control protocol's wire format (see ctlproto.h and doc/control.md).
 * Both directions are parsed strictly: there is exactly one encoding of
 * each valid message, and anything else is refused, so a parsed request
 * re-encodes to the bytes it came from. */
#include "ctlproto.h"

#include <string.h>

static const struct {
	const char *name;
	int min, max; /* arguments */
} cmds[] = {
	[CTL_STATUS] = {"status", 0, 0},
	[CTL_LIST] = {"list", 0, 1},
	[CTL_WHY] = {"why", 2, 3},
	[CTL_RELOAD] = {"reload", 0, 0},
	[CTL_FLUSH] = {"flush", 1, 1},
	[CTL_LOG] = {"log", 0, 0},
	[CTL_SUGGEST] = {"suggest", 1, 1},
	[CTL_METRICS] = {"metrics", 0, 0},
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static bool
cmd_valid(unsigned cmd)
{
	return cmd > 0 && cmd < NCMDS && cmds[cmd].name != NULL;
}

enum ctl_cmd
ctl_cmd_by_name(const char *name)
{
	for (unsigned i = 1; i < NCMDS; i++)
		if (cmds[i].name != NULL && strcmp(cmds[i].name, name) == 0)
			return (enum ctl_cmd)i;
	return 0;
}

const char *
ctl_cmd_name(enum ctl_cmd cmd)
{
	return cmd_valid((unsigned)cmd) ? cmds[cmd].name : NULL;
}

bool
ctl_argc_ok(enum ctl_cmd cmd, int argc)
{
	return cmd_valid((unsigned)cmd) && argc >= cmds[cmd].min &&
		argc <= cmds[cmd].max;
}

bool
ctl_flags_ok(enum ctl_cmd cmd, uint32_t flags)
{
	if (flags & ~(uint32_t)(CTL_F_JSON | CTL_F_FOLLOW | CTL_F_PROMETHEUS))
		return false;
	if ((flags & CTL_F_PROMETHEUS) &&
		(cmd != CTL_METRICS || (flags & CTL_F_JSON)))
		return false;
	return !(flags & CTL_F_FOLLOW) || cmd == CTL_LOG;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
		(uint32_t)p[2] << 8 | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
ctl_request_encode(void *buf, size_t size, enum ctl_cmd cmd, uint32_t flags,
	int argc, const char *const *argv)
{
	uint8_t *p = buf;
	size_t off = CTL_REQ_HDR, n;

	if (!ctl_argc_ok(cmd, argc) || argc > CTL_ARGS_MAX ||
		!ctl_flags_ok(cmd, flags) || size < CTL_REQ_HDR)
		return -1;
	for (int i = 0; i < argc; i++) {
		n = strlen(argv[i]);
		if (n > CTL_ARG_MAX || n + 1 > size - off ||
			off + n + 1 > CTL_REQ_MAX)
			return -1;
		memcpy(p + off, argv[i], n + 1);
		off += n + 1;
	}
	p[0] = CTL_VERSION;
	p[1] = (uint8_t)cmd;
	p[2] = (uint8_t)((off - CTL_REQ_HDR) >> 8);
	p[3] = (uint8_t)(off - CTL_REQ_HDR);
	put32(p + 4, flags);
	return (int)off;
}

int
ctl_request_len(const void *hdr, const char **why)
{
	const uint8_t *p = hdr;
	size_t plen = (size_t)p[2] << 8 | p[3];

	if (p[0] != CTL_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	if (!cmd_valid(p[1])) {
		*why = "unknown command";
		return -1;
	}
	if (!ctl_flags_ok(p[1], get32(p + 4))) {
		*why = "bad flags";
		return -1;
	}
	if (plen > CTL_REQ_MAX - CTL_REQ_HDR) {
		*why = "request too long";
		return -1;
	}
	return (int)(CTL_REQ_HDR + plen);
}

/* Split the payload into arguments: each one NUL-terminated, at most
 * CTL_ARG_MAX bytes, no more than CTL_ARGS_MAX of them. */
static int
split_args(struct ctl_request *rq, const uint8_t *p, size_t len,
	const char **why)
{
	size_t off = 0;
	const uint8_t *nul;

	rq->argc = 0;
	while (off < len) {
		if (rq->argc == CTL_ARGS_MAX) {
			*why = "too many arguments";
			return -1;
		}
		nul = memchr(p + off, '\0', len - off);
		if (nul == NULL) {
			*why = "argument not NUL-terminated";
			return -1;
		}
		if ((size_t)(nul - (p + off)) > CTL_ARG_MAX) {
			*why = "argument too long";
			return -1;
		}
		rq->argv[rq->argc++] = (const char *)(p + off);
		off = (size_t)(nul - p) + 1;
	}
	return 0;
}

int
ctl_request_parse(struct ctl_request *rq, const void *buf, size_t len,
	const char **why)
{
	const uint8_t *p = buf;
	int total;

	memset(rq, 0, sizeof(*rq));
	if (len < CTL_REQ_HDR) {
		*why = "request truncated";
		return -1;
	}
	if ((total = ctl_request_len(p, why)) < 0)
		return -1;
	if (len != (size_t)total) {
		*why = len < (size_t)total ? "request truncated"
					   : "trailing bytes after the request";
		return -1;
	}
	if (split_args(rq, p + CTL_REQ_HDR, len - CTL_REQ_HDR, why) < 0)
		return -1;
	rq->cmd = p[1];
	rq->flags = get32(p + 4);
	if (!ctl_argc_ok(rq->cmd, rq->argc)) {
		*why = "wrong number of arguments";
		return -1;
	}
	return 0;
}

void
ctl_frame_encode(void *hdr, enum ctl_kind kind, int status, size_t len)
{
	uint8_t *p = hdr;

	p[0] = CTL_VERSION;
	p[1] = (uint8_t)kind;
	p[2] = kind == CTL_FRAME_END ? (uint8_t)status : 0;
	p[3] = 0;
	put32(p + 4, kind == CTL_FRAME_END ? 0 : (uint32_t)len);
}

int
ctl_frame_parse(struct ctl_frame *f, const void *hdr, const char **why)
{
	const uint8_t *p = hdr;
	uint32_t len = get32(p + 4);

	memset(f, 0, sizeof(*f));
	if (p[0] != CTL_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	if (p[1] < CTL_FRAME_OUT || p[1] > CTL_FRAME_END) {
		*why = "unknown frame kind";
		return -1;
	}
	if (p[3] != 0 || (p[1] != CTL_FRAME_END && p[2] != 0)) {
		*why = "reserved bits set";
		return -1;
	}
	if (p[1] == CTL_FRAME_END && (p[2] > CTL_STATUS_MAX || len != 0)) {
		*why = p[2] > CTL_STATUS_MAX ? "exit status out of range"
					     : "end frame with a payload";
		return -1;
	}
	if (len > CTL_FRAME_MAX) {
		*why = "frame too long";
		return -1;
	}
	f->kind = p[1];
	f->status = p[2];
	f->len = len;
	return 0;
}
