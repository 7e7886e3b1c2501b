/* libFuzzer target: a query from a VM, and the error answers built for it.
 *
 * Invariants (abort() when broken):
 * - -1 (no answer at all) only for fewer than 12 bytes or a response;
 * - an accepted query (NOERROR) has exactly one question, which is the
 *   input's own bytes; its qname is a NUL-terminated lower-case string,
 *   and when qname_ok it is a normalised host name;
 * - the error answer built for any rcode parses again (dnscheck.h) as a
 *   response with the query's ID, opcode, RD/CD and rcode, its question
 *   when there was one, our OPT exactly when the query had EDNS (with the
 *   extended rcode for BADVERS); it fits the client's UDP size;
 * - round trip: that answer, turned back into a query (QR and rcode
 *   cleared), parses to the same query. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dnscheck.h"
#include "dnswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_accepted(const uint8_t *data, size_t size, const struct dns_query *q)
{
	char norm[NAME_MAX_LEN + 2];
	size_t ql = strnlen(q->qname, sizeof(q->qname));

	INVARIANT(dc_u16(data + 4) == 1 && dc_u16(data + 6) == 0 &&
		dc_u16(data + 8) == 0 && dc_u16(data + 10) <= 1);
	INVARIANT(q->qname_wire_len >= 1 && q->qname_wire_len <= DNS_MAXNAME);
	INVARIANT(12 + q->qname_wire_len + 4 <= size);
	INVARIANT(memcmp(data + 12, q->qname_wire, q->qname_wire_len) == 0);
	INVARIANT(q->qtype == dc_u16(data + 12 + q->qname_wire_len));
	INVARIANT(q->qclass == dc_u16(data + 14 + q->qname_wire_len));
	INVARIANT(q->edns == (dc_u16(data + 10) == 1));
	INVARIANT(q->udp_size >= 512);
	INVARIANT(ql < sizeof(q->qname));
	for (size_t i = 0; i < ql; i++)
		INVARIANT(q->qname[i] > ' ' && q->qname[i] < 127 &&
			!(q->qname[i] >= 'A' && q->qname[i] <= 'Z'));
	if (q->qname_ok) {
		INVARIANT(policy_normalise_name(q->qname, norm, sizeof(norm)) ==
			0);
		INVARIANT(strcmp(norm, q->qname) == 0);
	}
}

static void
check_error(const struct dns_query *q, bool accepted, int rcode, int ede)
{
	static uint8_t out[DNS_MAXMSG];
	size_t n = dnswire_error(q, rcode, ede, "fuzz", out, sizeof(out));
	struct dns_query back;
	bool opt = false;
	struct dc_msg m;
	int brc;

	INVARIANT(n > 0);
	INVARIANT(n <= q->udp_size);
	INVARIANT(dc_parse(out, n, true, &m));
	INVARIANT(m.id == q->id && (m.flags & DNS_F_QR));
	INVARIANT((m.flags & 0x7800) == (q->flags & 0x7800));
	INVARIANT((m.flags & (DNS_F_RD | DNS_F_CD)) ==
		(q->flags & (DNS_F_RD | DNS_F_CD)));
	INVARIANT((m.flags & 0xF) == (rcode & 0xF));
	INVARIANT(m.count[0] == (q->qname_wire_len > 0));
	if (m.count[0]) {
		INVARIANT(m.qnlen == q->qname_wire_len &&
			memcmp(m.qname, q->qname_wire, m.qnlen) == 0);
		INVARIANT(m.qtype == q->qtype && m.qclass == q->qclass);
	}
	INVARIANT(m.count[1] == 0 && m.count[2] == 0);
	for (size_t i = 0; i < m.nrr; i++) {
		const struct dc_rr *r = &m.rr[i];

		INVARIANT(r->type == DNS_T_OPT && r->nlen == 1 && !opt);
		opt = true;
		/* extended rcode: the upper 8 bits of 12 */
		INVARIANT((r->ttl >> 24) == (uint32_t)(rcode >> 4));
		INVARIANT(!!(r->ttl & 0x8000) == q->do_bit);
	}
	INVARIANT(opt == q->edns);
	/* Back into a query: the same question, flags and EDNS. */
	if (m.count[0] && ((q->flags >> 11) & 0xF) == 0) {
		out[2] &= (uint8_t) ~(DNS_F_QR >> 8);
		out[3] &= 0xF0;
		brc = dnswire_parse_query(out, n, &back);
		/* Our OPT is version 0, whatever the client's was. */
		INVARIANT(brc == DNS_R_NOERROR);
		INVARIANT(back.id == q->id);
		INVARIANT((back.flags & (DNS_F_RD | DNS_F_CD | 0x7800)) ==
			(q->flags & (DNS_F_RD | DNS_F_CD | 0x7800)));
		INVARIANT(back.qname_wire_len == q->qname_wire_len &&
			memcmp(back.qname_wire, q->qname_wire,
				q->qname_wire_len) == 0);
		/* The text form only when the query was accepted whole. */
		INVARIANT(!accepted || strcmp(back.qname, q->qname) == 0);
		INVARIANT(!accepted || back.qname_ok == q->qname_ok);
		INVARIANT(back.qtype == q->qtype && back.qclass == q->qclass);
		INVARIANT(back.edns == q->edns && back.do_bit == q->do_bit);
	}
	dc_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_query q;
	int rc = dnswire_parse_query(data, size, &q);

	if (rc < 0) {
		INVARIANT(rc == -1);
		INVARIANT(size < DNS_HDRLEN || (data[2] & 0x80));
		return 0;
	}
	INVARIANT(size >= DNS_HDRLEN && !(data[2] & 0x80));
	INVARIANT(q.id == dc_u16(data));
	INVARIANT(rc == DNS_R_NOERROR || rc == DNS_R_FORMERR ||
		rc == DNS_R_NOTIMP || rc == DNS_R_BADVERS);
	INVARIANT(rc != DNS_R_NOTIMP || ((data[2] >> 3) & 0xF) != 0);
	if (rc == DNS_R_NOERROR)
		check_accepted(data, size, &q);
	check_error(&q, rc == 0, rc == 0 ? DNS_R_REFUSED : rc, EDE_BLOCKED);
	if (rc == DNS_R_NOERROR) {
		check_error(&q, true, DNS_R_NXDOMAIN, EDE_NONE);
		check_error(&q, true, DNS_R_SERVFAIL, EDE_DNSSEC_BOGUS);
	}
	return 0;
}
