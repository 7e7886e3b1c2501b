/* privproto: element requests and DONE replies round-trip; every
 * malformed request is refused whole. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "privproto.h"

static struct priv_elem
elem(int op, const char *vm, const char *addr, int kind, int proto, int lo,
	int hi, uint64_t ms, const char *comment)
{
	struct priv_elem e;

	memset(&e, 0, sizeof(e));
	e.op = (uint8_t)op;
	e.vm = vm;
	e.k.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	inet_pton(e.k.family, addr, e.k.addr);
	e.k.kind = (uint8_t)kind;
	e.k.proto = (uint8_t)proto;
	e.k.lo = (uint16_t)lo;
	e.k.hi = (uint16_t)hi;
	e.idx = (uint8_t)set_index(e.k.kind, e.k.family);
	e.timeout_ms = ms;
	e.comment = comment;
	return e;
}

static int
parse(const uint8_t *buf, size_t len, struct priv_elems *out)
{
	char why[128];
	uint32_t plen;
	uint16_t type;

	CHECK(priv_header(buf, &plen, &type) == 0);
	CHECK(plen == len - PRIV_HDR && type == PRIV_ELEMS);
	return priv_elems_parse(buf + PRIV_HDR, len - PRIV_HDR, out, why,
		sizeof(why));
}

int
main(void)
{
	struct priv_elem in[3] = {
		elem(PRIV_OP_ADD, "work", "192.0.2.10", SET_PORTS, IPPROTO_TCP,
			443, 443, 310000, "www.good.example"),
		elem(PRIV_OP_ADD, "work", "2001:db8::1", SET_ANY, 0, 0, 0, 5000,
			""),
		elem(PRIV_OP_DEL, "red", "192.0.2.11", SET_ANY, 0, 0, 0, 0, ""),
	};
	struct priv_elems out;
	uint8_t *buf;
	size_t len;
	char msg[64], name[80];
	uint32_t seq;
	int err;

	priv_elems_begin(&buf, &len, 42);
	for (int i = 0; i < 3; i++)
		CHECK(priv_elems_add(&buf, &len, &in[i]) == 0);
	CHECK(parse(buf, len, &out) == 0);
	CHECK(out.seq == 42 && out.n == 3);
	for (size_t i = 0; i < out.n && i < 3; i++) {
		CHECK(out.v[i].op == in[i].op && out.v[i].idx == in[i].idx);
		CHECK(memcmp(&out.v[i].k, &in[i].k, sizeof(in[i].k)) == 0);
		CHECK(out.v[i].timeout_ms == in[i].timeout_ms);
		CHECK_STR(out.v[i].vm, in[i].vm);
		CHECK_STR(out.v[i].comment, in[i].comment);
	}
	priv_elems_free(&out);
	/* Every cut is refused, and so is a byte more. */
	for (size_t cut = PRIV_HDR; cut < len; cut++)
		CHECK(priv_elems_parse(buf + PRIV_HDR, cut - PRIV_HDR, &out,
			      msg, sizeof(msg)) < 0);
	buf = realloc(buf, len + 1);
	buf[len] = 0;
	CHECK(priv_elems_parse(buf + PRIV_HDR, len + 1 - PRIV_HDR, &out, msg,
		      sizeof(msg)) < 0);
	free(buf);

	/* Refused: a VM name with a control character, an empty or a too
	 * long one, a delete with a timeout, a bad family, op or index. */
	{
		struct priv_elem bad[6];

		bad[0] = elem(PRIV_OP_ADD, "wo\nrk", "192.0.2.1", SET_ANY, 0, 0,
			0, 1, "");
		bad[1] = elem(PRIV_OP_DEL, "work", "192.0.2.1", SET_ANY, 0, 0,
			0, 1, "");
		bad[2] = elem(PRIV_OP_ADD, "work", "192.0.2.1", SET_ANY, 0, 0,
			0, 1, "a\tcomment");
		bad[3] = elem(7, "work", "192.0.2.1", SET_ANY, 0, 0, 0, 1, "");
		bad[4] = elem(PRIV_OP_ADD, "work", "192.0.2.1", SET_ANY, 0, 0,
			0, 1, "");
		bad[4].k.family = 99;
		bad[5] = elem(PRIV_OP_ADD, "work", "192.0.2.1", SET_ANY, 0, 0,
			0, 1, "");
		bad[5].idx = SET_COUNT;
		for (int i = 0; i < 6; i++) {
			priv_elems_begin(&buf, &len, 1);
			CHECK(priv_elems_add(&buf, &len, &bad[i]) == 0);
			CHECK(parse(buf, len, &out) < 0);
			free(buf);
		}
		memset(name, 'a', sizeof(name) - 1);
		name[sizeof(name) - 1] = 0;
		bad[0] = elem(PRIV_OP_ADD, name, "192.0.2.1", SET_ANY, 0, 0, 0,
			1, "");
		priv_elems_begin(&buf, &len, 1);
		CHECK(priv_elems_add(&buf, &len, &bad[0]) < 0);
		/* No entry at all. */
		CHECK(parse(buf, len, &out) < 0);
		free(buf);
	}

	/* DONE round-trips; control characters become spaces. */
	buf = priv_done_build(7, 17, "File exists\n(set)", &len);
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR, &seq, &err, msg,
		      sizeof(msg)) == 0);
	CHECK(seq == 7 && err == 17);
	CHECK_STR(msg, "File exists (set)");
	CHECK(priv_done_parse(buf + PRIV_HDR, len - PRIV_HDR - 1, &seq, &err,
		      msg, sizeof(msg)) < 0);
	free(buf);
	return check_done("privproto");
}
