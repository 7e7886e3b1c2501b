/* libFuzzer target: one VM policy file through the YAML loader. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diag d = {0};
	struct vm vm;

	config_load_policy_buf(&vm, "fuzz", "fuzz.yaml", (const char *)data,
		size, &d);
	policy_vm_finish(&vm);
	diag_finish(&d);
	return 0;
}
