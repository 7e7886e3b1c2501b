/* libFuzzer target: a query from a VM, and the error answers built for it. */
#include <stddef.h>
#include <stdint.h>

#include "dnswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_query q;
	uint8_t out[DNS_MAXMSG];
	int rc = dnswire_parse_query(data, size, &q);

	if (rc >= 0)
		dnswire_error(&q, rc == 0 ? DNS_R_REFUSED : rc, EDE_BLOCKED,
			"fuzz", out, sizeof(out));
	return 0;
}
