#include "privsep.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build-config.h"
#include "cfgfs.h"
#include "config.h"
#include "elems.h"
#include "log.h"
#include "nft.h"
#include "policy.h"
#include "privcheck.h"
#include "privproto.h"
#include "resolver.h"
#include "ruleset.h"
#include "util.h"

#define NFT_TIMEOUT_MS 10000
#define GENS_KEPT 16
/* How far ahead of our clock the engine's `at` of an install may be (an
 * `at` that would keep a rule whose until has passed is replaced by now:
 * which `until` rules are in force is ours to say). */
#define AT_SLACK_S 5
/* The engine must install files reloaded by SIGHUP, and the configuration
 * without a rule whose until has passed, within these many seconds, else
 * it is stopped (an engine that ignores them would keep rules in force). */
#define RELOAD_DEADLINE_S 60
#define UNTIL_DEADLINE_S 10

struct gen {
	uint32_t gen;
	struct config *c; /* as loaded (not config_at) */
};

struct privd {
	struct event_base *base;
	const char *conf_path;
	char table[64];
	struct nft *nft;
	struct nft_ct *ct;
	struct bufferevent *bb, *sb; /* batch, sync channels */
	pid_t child;
	char root[64];
	struct gen gens[GENS_KEPT];
	size_t ngens;
	uint32_t next_gen;
	struct config *installed; /* config_at of the last install done */
	struct config *pending;	  /* ... of the install in flight */
	struct config *check;	  /* the installed files as in force now: what
			       * elements are checked against */
	int64_t reload_by;	  /* 0, or: an install of generation >= */
	uint32_t reload_gen;	  /* reload_gen by then (SIGHUP) */
	int64_t until_by;	  /* 0, or: an install as at >= until_at */
	int64_t until_at;	  /* by then (an until passed) */
	bool ready, stopping;
	bool broken; /* the engine broke the protocol */
	void (*on_ready)(void);
	struct event *ev_nft, *ev_timo, *ev_kill;
	struct event *ev_sig[3];
	uint64_t refused; /* batches refused, for the log */
};

/* A build with AddressSanitizer (LeakSanitizer) reads /proc/PID/task at
 * exit: its engine cannot be chrooted. Every other drop stays. */
#if defined(__SANITIZE_ADDRESS__)
#define CHROOTED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHROOTED 0
#endif
#endif
#ifndef CHROOTED
#define CHROOTED 1
#endif

/* The engine's identity, looked up before the fork (the chroot has no
 * /etc). */
static uid_t eng_uid;
static gid_t eng_gid;
static char eng_root[64];

/* ---- the engine's root ------------------------------------------------- */

static int
copy_file(const char *from, const char *to)
{
	struct cfgfs *fs = cfgfs_real();
	char *buf = NULL;
	size_t len = 0;
	int err = cfgfs_read(fs, from, 16u << 20, &buf, &len), fd, rc = -1;

	cfgfs_free(fs);
	if (err != 0) {
		errno = err;
		return -1;
	}
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		0644);
	if (fd >= 0 && write(fd, buf, len) == (ssize_t)len)
		rc = 0;
	if (fd >= 0 && close(fd) < 0)
		rc = -1;
	free(buf);
	return rc;
}

static void gen_files_remove(const char *root, uint32_t gen);

/* The files libunbound reads for generation g: copies in the engine's
 * root, /g<gen>/. */
static int
gen_files(const char *root, const struct config *c)
{
	char dir[128], path[192];

	snprintf(dir, sizeof(dir), "%s/g%u", root, c->gen);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, PRIV_TA_COPY);
	if (copy_file(c->trust_anchor, path) < 0) {
		log_warn("copying %s into the engine's root", c->trust_anchor);
		gen_files_remove(root, c->gen);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, PRIV_HINTS_COPY);
	if (c->root_hints && copy_file(c->root_hints, path) < 0) {
		log_warn("copying %s into the engine's root", c->root_hints);
		gen_files_remove(root, c->gen);
		return -1;
	}
	return 0;
}

static void
gen_files_remove(const char *root, uint32_t gen)
{
	char path[192];

	snprintf(path, sizeof(path), "%s/g%u/%s", root, gen, PRIV_TA_COPY);
	unlink(path);
	snprintf(path, sizeof(path), "%s/g%u/%s", root, gen, PRIV_HINTS_COPY);
	unlink(path);
	snprintf(path, sizeof(path), "%s/g%u", root, gen);
	rmdir(path);
}

static void
root_remove(struct privd *p)
{
	for (size_t i = 0; i < p->ngens; i++)
		gen_files_remove(p->root, p->gens[i].gen);
	rmdir(p->root);
}

/* A directory and what is under it, two levels deep (an engine's root:
 * g<N>/ holding two files). */
static void
remove_tree(const char *path, int depth)
{
	DIR *d = opendir(path);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char sub[PATH_MAX];

		if (strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (unlink(sub) < 0 && errno == EISDIR && depth > 0)
			remove_tree(sub, depth - 1);
	}
	if (d != NULL)
		closedir(d);
	rmdir(path);
}

/* The roots engines of runs killed before their end left (engine.PID.*,
 * PID gone): another dnsfenced may run meanwhile, in another network
 * namespace, so only those of processes that no longer exist. */
static void
clear_stale(void)
{
	DIR *d = opendir(DNSFENCE_RUNDIR);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[PATH_MAX], *end;
		long pid;

		if (strncmp(de->d_name, "engine.", 7) != 0)
			continue;
		pid = strtol(de->d_name + 7, &end, 10);
		if (end == de->d_name + 7 || *end != '.' || pid <= 0 ||
			kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", DNSFENCE_RUNDIR,
			de->d_name);
		remove_tree(path, 1);
	}
	if (d != NULL)
		closedir(d);
}

/* ---- generations -------------------------------------------------------- */

static const struct config *
gen_find(const struct privd *p, uint32_t gen)
{
	for (size_t i = 0; i < p->ngens; i++)
		if (p->gens[i].gen == gen)
			return p->gens[i].c;
	return NULL;
}

/* Keep c as a new generation; the oldest one not installed goes. */
static void
gen_add(struct privd *p, struct config *c)
{
	/* Room: the oldest generation neither installed nor being installed
	 * goes (with 4 kept, there is always one). */
	for (size_t i = 0; p->ngens == GENS_KEPT && i < p->ngens; i++) {
		uint32_t g = p->gens[i].gen;

		if ((p->installed && g == p->installed->gen) ||
			(p->pending && g == p->pending->gen))
			continue;
		gen_files_remove(p->root, g);
		config_free(p->gens[i].c);
		memmove(&p->gens[i], &p->gens[i + 1],
			(p->ngens - i - 1) * sizeof(p->gens[0]));
		p->ngens--;
	}
	p->gens[p->ngens++] = (struct gen){c->gen, c};
}

/* The newest generation loaded. */
static uint32_t
gen_newest(const struct privd *p)
{
	return p->ngens > 0 ? p->gens[p->ngens - 1].gen : 0;
}

/* ---- channels ---------------------------------------------------------- */

static void
send_frame(struct bufferevent *be, const uint8_t *f, size_t len)
{
	if (be != NULL)
		bufferevent_write(be, f, len);
}

static void
send_result(struct privd *p, int err, const char *msg)
{
	size_t len;
	uint8_t *f = priv_result_build(err, msg, &len);

	send_frame(p->sb, f, len);
	free(f);
}

static void
send_data(struct privd *p, const uint8_t *buf, size_t n)
{
	size_t len;
	uint8_t *f = priv_frame(PRIV_DATA, buf, n, NULL, 0, &len);

	send_frame(p->sb, f, len);
	free(f);
}

static void
stop(struct privd *p, const char *why)
{
	if (!p->broken)
		log_warnx("%s; stopping the engine", why);
	p->broken = p->stopping = true;
	if (p->child > 0)
		kill(p->child, SIGKILL);
}

/* ---- transactions -------------------------------------------------------- */

struct txn {
	struct privd *p;
	uint32_t seq;
	struct config *inst; /* an install's configuration, else NULL */
};

static void
txn_done(int err, const char *msg, void *arg)
{
	struct txn *t = arg;
	struct privd *p = t->p;
	size_t len;
	uint8_t *f;

	if (t->inst != NULL) {
		if (err == 0) {
			char ts[32];

			config_free(p->installed);
			p->installed = t->inst;
			config_free(p->check);
			p->check = config_at(gen_find(p, t->inst->gen),
				util_wall_s() > t->inst->at ? util_wall_s()
							    : t->inst->at);
			log_info("installed generation %u of the files, as in "
				 "force at %s",
				t->inst->gen,
				policy_time_str(t->inst->at, ts, sizeof(ts)));
			if (p->reload_by && t->inst->gen >= p->reload_gen)
				p->reload_by = 0;
			if (p->until_by && t->inst->at >= p->until_at)
				p->until_by = 0;
		} else {
			config_free(t->inst);
		}
		p->pending = NULL;
	}
	f = priv_done_build(t->seq, err, err ? msg : NULL, &len);
	send_frame(p->bb, f, len);
	free(f);
	free(t);
}

static void
refuse(struct privd *p, uint32_t seq, int err, const char *why)
{
	size_t len;
	uint8_t *f;

	p->refused++;
	log_warnx("refused the engine's transaction: %s", why);
	f = priv_done_build(seq, err, why, &len);
	send_frame(p->bb, f, len);
	free(f);
}

static void
on_batch(struct privd *p, const uint8_t *pl, size_t len)
{
	struct priv_batch pb;
	struct config *inst = NULL;
	const struct config *c;
	struct nft_batch *b;
	struct txn *t;
	char why[512];
	int64_t now = util_wall_s();

	if (priv_batch_head(pl, len, &pb) < 0) {
		stop(p, "the engine sent a malformed transaction");
		return;
	}
	if (pb.flags & PRIV_F_INSTALL) {
		const struct config *g = gen_find(p, pb.gen);

		int64_t at = pb.at;

		if (g == NULL || p->pending != NULL ||
			strcmp(g->table, p->table) != 0) {
			refuse(p, pb.seq, EINVAL,
				g == NULL
					? "an install of an unknown generation"
					: p->pending
					? "an install while one is in flight"
					: "an install of another table");
			return;
		}
		/* Never an older generation than the one installed back
		 * (SIGHUP's, and an until's, deadlines see that the newest
		 * gets in). */
		if (p->installed != NULL && pb.gen < p->installed->gen) {
			refuse(p, pb.seq, EINVAL,
				"an install of a generation older than the one "
				"installed");
			return;
		}
		if (at > now + AT_SLACK_S) {
			refuse(p, pb.seq, EINVAL,
				"an install as in force in the future");
			return;
		}
		/* A rule whose until passed between `at` and now stays out:
		 * then as in force now. */
		if (config_ended(g, at, NULL, 0) !=
			config_ended(g, now, NULL, 0))
			at = now;
		inst = config_at(g, at);
		c = inst;
	} else if ((c = p->check) == NULL) {
		refuse(p, pb.seq, EINVAL, "elements before any install");
		return;
	}
	if (priv_batch_parse(pl, len, p->table, c, p->installed, &pb, why,
		    sizeof(why)) < 0) {
		config_free(inst);
		refuse(p, pb.seq, EPERM, why);
		return;
	}
	/* While an install is in flight, the kernel applies it first: an
	 * element must be admitted by it too. */
	if (inst == NULL && p->pending != NULL) {
		struct priv_batch again;

		if (priv_batch_parse(pl, len, p->table, p->pending, NULL,
			    &again, why, sizeof(why)) < 0) {
			priv_batch_free(&pb);
			refuse(p, pb.seq, EPERM, why);
			return;
		}
		priv_batch_free(&again);
	}
	if (inst != NULL) {
		b = ruleset_build(p->nft, inst,
			(pb.flags & PRIV_F_WITH_PREV) ? p->installed : NULL);
		if (b == NULL) {
			priv_batch_free(&pb);
			config_free(inst);
			refuse(p, pb.seq, EIO, "reading our table failed");
			return;
		}
		p->pending = inst;
	} else {
		b = nft_batch_new(p->nft);
	}
	priv_batch_emit(&pb, p->table, b);
	priv_batch_free(&pb);
	t = xcalloc(1, sizeof(*t));
	t->p = p;
	t->seq = pb.seq;
	t->inst = inst;
	nft_batch_send(b, txn_done, t);
}

/* ---- sync requests --------------------------------------------------------- */

static void
on_dump(struct privd *p, const uint8_t *pl, size_t len)
{
	char set[SET_NAME_MAX];
	uint8_t *buf = NULL;
	size_t n = 0;
	int kind;

	if (priv_dump_parse(pl, len, &kind, set, sizeof(set)) < 0) {
		stop(p, "the engine sent a malformed dump request");
		return;
	}
	if (nft_dump_collect(kind, p->table, set, &buf, &n) < 0) {
		send_result(p, errno, NULL);
	} else {
		if (n > 0)
			send_data(p, buf, n);
		send_result(p, 0, NULL);
	}
	free(buf);
}

static void
on_ct_dump(struct privd *p, const uint8_t *pl, size_t len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int family;

	if (priv_ctdump_parse(pl, len, &family) < 0) {
		stop(p, "the engine sent a malformed conntrack request");
		return;
	}
	if (p->installed == NULL || !p->installed->ct_purge) {
		send_result(p, EPERM, "conntrack-purge is off");
		return;
	}
	if (p->ct == NULL && (p->ct = nft_ct_open()) == NULL) {
		send_result(p, errno, "conntrack socket");
		return;
	}
	if (nft_ct_collect(p->ct, family, &buf, &n) < 0) {
		send_result(p, errno, NULL);
	} else {
		if (n > 0)
			send_data(p, buf, n);
		send_result(p, 0, NULL);
	}
	free(buf);
}

static void
on_ct_del(struct privd *p, const uint8_t *pl, size_t len)
{
	uint8_t *st = xcalloc(PRIV_CTDEL_MAX, 1);
	size_t off = 0, n = 0, refused = 0;
	char why[256];

	if (p->check == NULL) {
		send_result(p, EPERM, "nothing installed");
		free(st);
		return;
	}
	if (p->ct == NULL && (p->ct = nft_ct_open()) == NULL) {
		send_result(p, errno, "conntrack socket");
		free(st);
		return;
	}
	while (off < len) {
		struct priv_ctdel d;
		uint16_t el;
		const char *bad;

		if (len - off >= 2)
			memcpy(&el, pl + off, 2);
		if (len - off < 2 || el > len - off - 2 ||
			n == PRIV_CTDEL_MAX ||
			priv_ctdel_parse(pl + off + 2, el, &d) < 0) {
			stop(p, "the engine sent a malformed conntrack deletion");
			free(st);
			return;
		}
		off += 2u + el;
		if ((bad = priv_ctdel_check(p->check, &d, why, sizeof(why))) !=
			NULL) {
			if (refused++ == 0)
				log_warnx("refused the engine's conntrack "
					  "deletion: %s",
					bad);
			st[n++] = EPERM;
			continue;
		}
		st[n++] = nft_ct_delete(p->ct, &d) < 0
			? (uint8_t)(errno ? errno : EIO)
			: 0;
	}
	if (n == 0) {
		stop(p, "the engine sent an empty conntrack deletion");
		free(st);
		return;
	}
	send_data(p, st, n);
	send_result(p, 0, NULL);
	free(st);
}

/* Read the files again, recording every byte: the engine loads the same
 * configuration from the record. A generation number only for files
 * without problems (the engine finds the same problems). */
static void
on_load(struct privd *p, size_t len)
{
	struct cfgfs *fs;
	struct diag diag = {0};
	struct config *c;
	uint8_t head[8] = {0}, *rec = NULL, *f;
	size_t rlen = 0, flen;
	uint32_t gen = 0;

	if (len != 0) {
		stop(p, "the engine sent a malformed load request");
		return;
	}
	fs = cfgfs_real();
	c = config_load_fs(fs, p->conf_path, &diag);
	diag_finish(&diag);
	if (c != NULL) {
		c->gen = gen = ++p->next_gen;
		if (gen_files(p->root, c) < 0) {
			config_free(c);
			c = NULL;
			gen = 0;
		} else {
			gen_add(p, c);
		}
	}
	if (cfgfs_serialize(fs, &rec, &rlen) < 0) {
		cfgfs_free(fs);
		send_result(p, EIO, "recording the configuration");
		return;
	}
	cfgfs_free(fs);
	/* Files with problems: the running configuration stays, rightly. */
	if (gen == 0)
		p->reload_by = 0;
	memcpy(head, &gen, 4);
	f = priv_frame(PRIV_CONFIG, head, sizeof(head), rec, rlen, &flen);
	send_frame(p->sb, f, flen);
	free(f);
	free(rec);
}

/* Whole frames from a channel's input; the handler per type. */
static void
channel_read(struct bufferevent *be, void *arg)
{
	struct privd *p = arg;
	struct evbuffer *in = bufferevent_get_input(be);

	while (!p->broken) {
		uint8_t hdr[PRIV_HDR], *pl;
		uint32_t len;
		uint16_t type;

		if (evbuffer_copyout(in, hdr, sizeof(hdr)) <
			(ev_ssize_t)PRIV_HDR)
			return;
		if (priv_header(hdr, &len, &type) < 0) {
			stop(p, "the engine sent a malformed frame");
			return;
		}
		if (evbuffer_get_length(in) < PRIV_HDR + (size_t)len)
			return;
		evbuffer_drain(in, PRIV_HDR);
		pl = xcalloc(1, (size_t)len + 1);
		evbuffer_remove(in, pl, len);
		if (be == p->sb &&
			evbuffer_get_length(bufferevent_get_output(be)) > 0) {
			/* The engine waits for each answer before asking
			 * again: it does not, or does not read them. */
			stop(p,
				"the engine asked again before reading an "
				"answer");
		} else if (be == p->bb && type == PRIV_BATCH) {
			on_batch(p, pl, len);
		} else if (be == p->bb && type == PRIV_READY && len == 0 &&
			!p->ready) {
			p->ready = true;
			if (p->on_ready)
				p->on_ready();
		} else if (be == p->sb && type == PRIV_DUMP) {
			on_dump(p, pl, len);
		} else if (be == p->sb && type == PRIV_CT_DUMP) {
			on_ct_dump(p, pl, len);
		} else if (be == p->sb && type == PRIV_CT_DEL) {
			on_ct_del(p, pl, len);
		} else if (be == p->sb && type == PRIV_LOAD) {
			on_load(p, len);
		} else {
			stop(p, "the engine sent a frame it may not send");
		}
		free(pl);
	}
}

/* The engine closed a channel: it has ended. */
static void
channel_event(struct bufferevent *be, short what, void *arg)
{
	struct privd *p = arg;

	(void)be;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		event_base_loopbreak(p->base);
}

static void
nft_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct privd *p = arg;

	(void)fd;
	(void)ev;
	if (nft_dispatch(p->nft) < 0)
		log_warn("netlink");
}

static void enforce(struct privd *p, const char *why);

static void
timo_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct privd *p = arg;

	int64_t now = util_wall_s(), u;

	(void)fd;
	(void)ev;
	nft_expire(p->nft, NFT_TIMEOUT_MS);
	/* An until of what is installed has passed: elements are checked
	 * without that rule from now on, and the engine must install the
	 * configuration without it (it does within milliseconds). */
	if (p->installed && p->until_by == 0 &&
		(u = config_next_until(p->installed)) != 0 && u <= now) {
		config_free(p->check);
		p->check = config_at(gen_find(p, p->installed->gen), now);
		p->until_at = u;
		p->until_by = now + UNTIL_DEADLINE_S;
	}
	if (!p->broken &&
		((p->until_by && now > p->until_by) ||
			(p->reload_by && now > p->reload_by)))
		enforce(p,
			p->reload_by && now > p->reload_by
				? "the engine did not install the files "
				  "reloaded on SIGHUP in time"
				: "the engine did not install the "
				  "configuration without a rule whose until "
				  "passed in time");
}

struct prune {
	const struct config *c;
	const char *vm;
	int idx;
	struct elems_msgs *m;
	size_t n;
};

static void
prune_cb(const struct elem_key *k, uint64_t left_ms, const char *comment,
	void *arg)
{
	struct prune *pr = arg;
	const struct vm *v = config_vm(pr->c, pr->vm);
	int idx = elem_set_index(k);
	char why[256];

	(void)left_ms;
	(void)comment;
	/* Read from an older table's ports set, a range belongs in the
	 * ranges set (where the install carries it), if the VM has one:
	 * otherwise it is not carried at all. */
	if (v == NULL || !elems_vm_has_set(v->atoms, v->natoms, idx))
		return;
	if (privcheck_add(pr->c, pr->vm, idx, k, 1, why, sizeof(why)) != NULL) {
		elems_msgs_del(pr->m, pr->vm, k);
		pr->n++;
	}
}

static void
enforce_done(int err, const char *msg, void *arg)
{
	struct privd *p = arg;

	if (err != 0)
		log_warnx("installing the due configuration failed: %s", msg);
	else
		log_info("installed the due configuration itself");
	(void)p;
}

/* The engine did not install what is due (the newest files, or the
 * configuration without a rule whose until passed): we do, from our own
 * copy, with every element it no longer admits removed, and stop the
 * engine. Nothing is admitted until systemd starts both again. */
static void
enforce(struct privd *p, const char *why)
{
	const struct config *g =
		gen_find(p, p->reload_by ? gen_newest(p) : p->installed->gen);
	struct config *inst = config_at(g, util_wall_s());
	struct nft_batch *b;
	size_t n = 0;

	p->reload_by = p->until_by = 0;
	if (p->pending == NULL &&
		(b = ruleset_build(p->nft, inst, p->installed)) != NULL) {
		for (size_t v = 0; v < inst->nvms; v++)
			for (int i = 0; i < SET_COUNT; i++) {
				struct prune pr = {inst, inst->vms[v].name, i,
					NULL, 0};

				/* A set the install deletes takes its
				 * elements with it. */
				if (!elems_vm_has_set(inst->vms[v].atoms,
					    inst->vms[v].natoms, i))
					continue;
				pr.m = elems_msgs_new(p->table);

				elems_dump(p->table, pr.vm, i, prune_cb, &pr);
				elems_msgs_emit(pr.m, b);
				n += pr.n;
			}
		log_warnx("installing generation %u as in force now, %zu "
			  "elements it does not admit removed",
			inst->gen, n);
		nft_batch_send(b, enforce_done, p);
	}
	config_free(inst);
	stop(p, why);
}

static void
kill_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct privd *p = arg;

	(void)fd;
	(void)ev;
	log_warnx("the engine did not exit in time: killing it");
	kill(p->child, SIGKILL);
}

/* SIGTERM, SIGINT: the engine ends first (it logs its figures); SIGHUP:
 * the engine reloads (and asks us for the files). */
static void
signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct privd *p = arg;
	struct timeval tv = {.tv_sec = 10};

	(void)ev;
	if (sig == SIGHUP) {
		/* Files without problems must be in force soon: the engine
		 * asks for them (PRIV_LOAD) and installs them; if it does
		 * not, enforce() installs this generation. */
		struct diag diag = {0};
		struct config *c = config_load(p->conf_path, &diag);

		diag_finish(&diag);
		if (c != NULL && strcmp(c->table, p->table) == 0) {
			c->gen = ++p->next_gen;
			if (gen_files(p->root, c) == 0) {
				gen_add(p, c);
				c = NULL;
				p->reload_gen = p->next_gen;
				if (p->reload_by == 0)
					p->reload_by = util_wall_s() +
						RELOAD_DEADLINE_S;
			}
		}
		config_free(c);
	}
	kill(p->child, (int)sig);
	if (sig != SIGHUP && !p->stopping) {
		p->stopping = true;
		evtimer_add(p->ev_kill, &tv);
	}
}

static struct bufferevent *
channel(struct privd *p, int fd)
{
	struct bufferevent *be =
		bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);

	if (be == NULL)
		fatalx("bufferevent_socket_new");
	bufferevent_setcb(be, channel_read, NULL, channel_event, p);
	/* A frame larger than the bound is refused at its header; nothing
	 * more is buffered than one such frame. */
	bufferevent_setwatermark(be, EV_READ, 0, PRIV_HDR + PRIV_FRAME_MAX);
	bufferevent_enable(be, EV_READ);
	return be;
}

static void
parent_main(struct privd *p, int fds[2])
{
	struct timeval tv = {.tv_sec = 1};
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
	int status = 0, rc;

	if ((p->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	p->bb = channel(p, fds[0]);
	p->sb = channel(p, fds[1]);
	p->ev_nft = event_new(p->base, nft_fd(p->nft), EV_READ | EV_PERSIST,
		nft_cb, p);
	p->ev_timo = event_new(p->base, -1, EV_PERSIST, timo_cb, p);
	p->ev_kill = evtimer_new(p->base, kill_cb, p);
	event_add(p->ev_nft, NULL);
	event_add(p->ev_timo, &tv);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++) {
		p->ev_sig[i] = evsignal_new(p->base, sigs[i], signal_cb, p);
		event_add(p->ev_sig[i], NULL);
	}
	event_base_dispatch(p->base);
	/* The engine has ended (or we stop it now). */
	if (!p->stopping)
		kill(p->child, SIGTERM);
	while ((rc = waitpid(p->child, &status, 0)) < 0 && errno == EINTR)
		;
	if (rc < 0)
		status = 1;
	/* A transaction in flight (ours, or the engine's last) completes. */
	nft_wait(p->nft, NFT_TIMEOUT_MS);
	nft_close(p->nft);
	nft_ct_close(p->ct);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		event_free(p->ev_sig[i]);
	event_free(p->ev_nft);
	event_free(p->ev_timo);
	event_free(p->ev_kill);
	bufferevent_free(p->bb);
	bufferevent_free(p->sb);
	event_base_free(p->base);
	root_remove(p);
	if (p->ready && p->installed && p->installed->control)
		unlink(p->installed->control);
	for (size_t i = 0; i < p->ngens; i++)
		config_free(p->gens[i].c);
	config_free(p->installed);
	config_free(p->check);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && p->stopping) {
		log_info("the engine has exited; table inet %s stays in place",
			p->table);
		exit(0);
	}
	if (WIFSIGNALED(status))
		log_warnx("the engine was killed by signal %d; table inet %s "
			  "stays in place, nothing new is admitted",
			WTERMSIG(status), p->table);
	else
		log_warnx("the engine exited with status %d; table inet %s "
			  "stays in place",
			WEXITSTATUS(status), p->table);
	exit(1);
}

/* ---- the split --------------------------------------------------------- */

/* The engine never holds CAP_NET_ADMIN, from the fork on: it is still
 * root until privsep_drop() (port 53, the control socket, chroot), but
 * can open no netfilter socket that works. */
static void
drop_net_admin(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	int i = CAP_TO_INDEX(CAP_NET_ADMIN);
	uint32_t m = CAP_TO_MASK(CAP_NET_ADMIN);

	if (syscall(SYS_capget, &h, d) < 0)
		fatal("capget");
	d[i].effective &= ~m;
	d[i].permitted &= ~m;
	d[i].inheritable &= ~m;
	if (syscall(SYS_capset, &h, d) < 0)
		fatal("capset");
	if (prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0) < 0 &&
		errno != EINVAL)
		fatal("dropping CAP_NET_ADMIN from the bounding set");
}

int
privsep_start(const char *conf_path, struct config *loaded, void (*ready)(void))
{
	static struct privd p;
	struct passwd *pw;
	int sp[2][2], monfd;
	pid_t pid;

	if ((pw = getpwnam(DNSFENCE_USER)) == NULL || pw->pw_uid == 0) {
		log_warnx("user %s %s: create it (useradd --system "
			  "--no-create-home --shell /usr/sbin/nologin %s)",
			DNSFENCE_USER, pw ? "is root" : "does not exist",
			DNSFENCE_USER);
		return -1;
	}
	eng_uid = pw->pw_uid;
	eng_gid = pw->pw_gid;
	/* The engine's root: empty, but for the copies of the files
	 * libunbound reads, per generation. */
	if (mkdir(DNSFENCE_RUNDIR, 0755) < 0 && errno != EEXIST) {
		log_warn("%s", DNSFENCE_RUNDIR);
		return -1;
	}
	clear_stale();
	snprintf(p.root, sizeof(p.root), "%s/engine.%ld.XXXXXX",
		DNSFENCE_RUNDIR, (long)getpid());
	if (mkdtemp(p.root) == NULL || chmod(p.root, 0755) < 0) {
		log_warn("%s", p.root);
		return -1;
	}
	snprintf(eng_root, sizeof(eng_root), "%s", p.root);
	loaded->gen = p.next_gen = 1;
	if (gen_files(p.root, loaded) < 0) {
		rmdir(p.root);
		return -1;
	}
	/* The parent's transactions, and the notification socket the
	 * engine reads (subscribing needs CAP_NET_ADMIN; reading does not),
	 * both opened before the fork. */
	if ((p.nft = nft_open()) == NULL || (monfd = nft_mon_socket()) < 0) {
		nft_close(p.nft);
		root_remove(&p);
		return -1;
	}
	for (int i = 0; i < 2; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]) <
			0)
			fatal("socketpair");
	if ((pid = fork()) < 0)
		fatal("fork");
	if (pid == 0) {
		uint32_t portid = nft_portid(p.nft);

		for (int i = 0; i < 2; i++)
			close(sp[i][0]);
		nft_close(p.nft);
		drop_net_admin();
		nft_use_priv(sp[0][1], sp[1][1], monfd, portid);
		resolver_use_copies(CHROOTED ? "" : p.root);
		return 0;
	}
	for (int i = 0; i < 2; i++)
		close(sp[i][1]);
	close(monfd);
	p.child = pid;
	p.conf_path = conf_path;
	p.on_ready = ready;
	snprintf(p.table, sizeof(p.table), "%s", loaded->table);
	/* Generation 1 is the engine's too (it has it from the fork). */
	p.gens[p.ngens++] = (struct gen){1, loaded};
	parent_main(&p, (int[2]){sp[0][0], sp[1][0]});
	return -1; /* not reached */
}

void
privsep_drop(void)
{
	pid_t parent = getppid();

	if (!CHROOTED) {
		if (chdir(eng_root) < 0)
			fatal("chdir %s", eng_root);
	} else if (chroot(eng_root) < 0 || chdir("/") < 0) {
		fatal("chroot %s", eng_root);
	}
	if (setgroups(1, &eng_gid) < 0 ||
		setresgid(eng_gid, eng_gid, eng_gid) < 0 ||
		setresuid(eng_uid, eng_uid, eng_uid) < 0)
		fatal("becoming user %s", DNSFENCE_USER);
	if (setuid(0) == 0)
		fatalx("could become root again");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fatal("no_new_privs");
	/* Changing credentials cleared it: the engine ends with the parent
	 * (EOF on the channels tells it too). */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 ||
		getppid() != parent)
		fatalx("the privileged process is gone");
	if (CHROOTED)
		log_info("engine: chrooted to %s, running as %s", eng_root,
			DNSFENCE_USER);
	else
		log_info("engine: not chrooted (a sanitizer build: "
			 "LeakSanitizer reads /proc at exit), running as %s",
			DNSFENCE_USER);
}
