/* privforge: play a compromised engine. Takes a copy of a running
 * engine's batch channel (pidfd_getfd(2), root) and writes one forged
 * frame into it, as code running in the engine could.
 *
 *   privforge ENGINE_PID add VM SET ADDR PROTO PORT TIMEOUT_MS
 *   privforge ENGINE_PID range VM SET ADDR ADDR_END PROTO PORT TIMEOUT_MS
 *   privforge ENGINE_PID table NAME      a NEWTABLE message
 *   privforge ENGINE_PID install GEN AT  an install of generation GEN as
 *                                        in force at second AT
 *   privforge ENGINE_PID garbage         a frame header with bad fields
 *
 * SET is v4, v6, v4_ports or v6_ports; PROTO tcp, udp or - (none). The
 * batch channel is the engine's lowest-numbered unnamed AF_UNIX stream
 * socket whose peer is its parent (the three channels are made in order,
 * batch first). Exit 0 once the frame is written. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "elems.h"
#include "nft.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

static int
parent_of(int pid)
{
	char path[64], buf[4096], *p;
	FILE *f;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f))
		if ((p = strstr(buf, "PPid:")) == buf)
			ppid = atoi(buf + 5);
	fclose(f);
	return ppid;
}

/* The engine's batch channel, as a descriptor of ours. */
static int
steal(int pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), best = -1, bestn = -1;
	int ppid = parent_of(pid);
	char dir[64];
	struct dirent *de;
	DIR *d;

	if (pidfd < 0 || ppid < 0) {
		perror("pidfd_open");
		exit(2);
	}
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	if ((d = opendir(dir)) == NULL) {
		perror(dir);
		exit(2);
	}
	while ((de = readdir(d)) != NULL) {
		int n = atoi(de->d_name), fd, type = 0, dom = 0;
		struct sockaddr_un sun;
		socklen_t sl = sizeof(sun), tl = sizeof(int);
		struct ucred cr;
		socklen_t cl = sizeof(cr);

		if (de->d_name[0] == '.' ||
			(fd = (int)syscall(SYS_pidfd_getfd, pidfd, n, 0)) < 0)
			continue;
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &tl) == 0 &&
			dom == AF_UNIX &&
			getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
			type == SOCK_STREAM &&
			getsockname(fd, (struct sockaddr *)&sun, &sl) == 0 &&
			sl == sizeof(sa_family_t) &&
			getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) ==
				0 &&
			cr.pid == ppid && (bestn < 0 || n < bestn)) {
			if (best >= 0)
				close(best);
			best = fd;
			bestn = n;
			continue;
		}
		close(fd);
	}
	closedir(d);
	if (best < 0) {
		fprintf(stderr, "privforge: no channel to the parent in %d\n",
			pid);
		exit(2);
	}
	return best;
}

static void
done(int err, const char *msg, void *arg)
{
	(void)err;
	(void)msg;
	(void)arg;
}

static int
set_idx(const char *set)
{
	static const char *names[] = {"v4", "v6", "v4_ports", "v6_ports"};

	for (int i = 0; i < 4; i++)
		if (strcmp(set, names[i]) == 0)
			return set_index(i < 2 ? SET_ANY : SET_PORTS,
				i % 2 ? AF_INET6 : AF_INET);
	fprintf(stderr, "privforge: set %s?\n", set);
	exit(2);
}

static struct elem_key
key(int idx, const char *addr, const char *proto, int port)
{
	struct elem_key k;

	memset(&k, 0, sizeof(k));
	k.family = (uint8_t)set_index_family(idx);
	k.kind = (uint8_t)set_index_kind(idx);
	if (inet_pton(k.family, addr, k.addr) != 1) {
		fprintf(stderr, "privforge: address %s?\n", addr);
		exit(2);
	}
	if (k.kind == SET_PORTS) {
		k.proto = strcmp(proto, "udp") == 0 ? 17 : 6;
		k.lo = k.hi = (uint16_t)port;
	}
	return k;
}

int
main(int argc, char **argv)
{
	struct nft *n;
	struct nft_batch *b;
	int fd;

	if (argc < 3) {
		fprintf(stderr,
			"usage: privforge PID add|range|table|garbage "
			"...\n");
		return 2;
	}
	fd = steal(atoi(argv[1]));
	if (strcmp(argv[2], "garbage") == 0) {
		static const unsigned char g[8] = {4, 0, 0, 0, 1, 0, 0xff,
			0xff};

		return write(fd, g, sizeof(g)) == sizeof(g) ? 0 : 1;
	}
	nft_use_priv(fd, -1, -1, 0);
	n = nft_open();
	b = nft_batch_new(n);
	if (strcmp(argv[2], "add") == 0 && argc == 9) {
		struct elems_msgs *m = elems_msgs_new("dnsfence");
		int idx = set_idx(argv[4]);
		struct elem_key k = key(idx, argv[5], argv[6], atoi(argv[7]));

		elems_msgs_add(m, argv[3], &k, strtoull(argv[8], NULL, 10),
			"forged.good.example");
		elems_msgs_emit(m, b);
	} else if (strcmp(argv[2], "range") == 0 && argc == 10) {
		/* A key end with another address: an address range. */
		int idx = set_idx(argv[4]);
		struct elem_key k = key(idx, argv[5], argv[7], atoi(argv[8]));
		struct elem_key e = key(idx, argv[6], argv[7], atoi(argv[8]));
		struct nftnl_set *s = nftnl_set_alloc();
		struct nftnl_set_elem *el = nftnl_set_elem_alloc();
		struct nftnl_set_elem *ee = nftnl_set_elem_alloc();
		char name[SET_NAME_MAX];
		const void *kend;
		uint32_t len;
		struct nlmsghdr *nlh;

		elems_key_put(el, &k);
		elems_key_put(ee, &e);
		/* The other address's key as the end (the ports set, a
		 * hash, has no key end of its own to borrow). */
		kend = nftnl_set_elem_get(ee, NFTNL_SET_ELEM_KEY, &len);
		nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY_END, kend, len);
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT,
			strtoull(argv[9], NULL, 10));
		nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_EXPIRATION,
			strtoull(argv[9], NULL, 10));
		nftnl_set_set_str(s, NFTNL_SET_TABLE, "dnsfence");
		nftnl_set_set_str(s, NFTNL_SET_NAME,
			elems_set_name(name, sizeof(name), argv[3], idx));
		nftnl_set_elem_add(s, el);
		nftnl_set_elem_free(ee);
		nlh = nft_batch_msg(b, NFT_MSG_NEWSETELEM, NFPROTO_INET,
			NLM_F_CREATE, 4096, "forged range");
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		nftnl_set_free(s);
	} else if (strcmp(argv[2], "install") == 0 && argc == 5) {
		nft_batch_install(b, (uint32_t)strtoul(argv[3], NULL, 10),
			strtoll(argv[4], NULL, 10), true);
	} else if (strcmp(argv[2], "table") == 0 && argc == 4) {
		struct nlmsghdr *nlh = nft_batch_msg(b, NFT_MSG_NEWTABLE,
			NFPROTO_INET, NLM_F_CREATE, 256, "forged table");

		mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, argv[3]);
	} else {
		fprintf(stderr, "privforge: bad arguments\n");
		return 2;
	}
	nft_batch_send(b, done, NULL);
	nft_close(n); /* the answer goes to the engine, not to us */
	close(fd);
	return 0;
}
