/* dnsfencectl: talks to a running dnsfenced over its control socket. */
#include <stdio.h>
#include <string.h>

#include "build-config.h"

static int
usage(void)
{
	fprintf(stderr,
		"usage: dnsfencectl [-s SOCKET] COMMAND\n"
		"The control protocol is not part of this release yet;\n"
		"send SIGHUP to dnsfenced to reload.\n");
	return 2;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("dnsfencectl %s\n", DNSFENCE_VERSION);
		return 0;
	}
	return usage();
}
