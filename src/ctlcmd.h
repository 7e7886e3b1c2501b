/* dnsfencectl's commands, as the daemon answers them: status, list, why,
 * log, metrics read the running state; reload, flush and suggest go
 * through hooks the daemon gives, since they change or read what only it
 * holds. Every answer is a human table, or one JSON document with -j. */
#ifndef DNSFENCE_CTLCMD_H
#define DNSFENCE_CTLCMD_H

#include <stdbool.h>
#include <stdint.h>

#include "control.h"

struct server;
struct admit;

struct ctlcmd {
	struct server *srv;
	struct admit *admit;
	const char *conf_path;
	int64_t started; /* wall clock, seconds */
	bool deladd;	 /* the kernel keeps old timeouts (delete + add) */
	uint64_t reloads_ok, reloads_failed;
	/* The daemon's part. Each ends cc itself, now or when done. */
	void (*reload)(struct ctl_conn *cc, void *arg);
	void (*flush)(struct ctl_conn *cc, const char *vm, void *arg);
	void (*suggest)(struct ctl_conn *cc, const char *vm, void *arg);
	/* Extra lines for `status` and samples for `metrics` from the
	 * daemon's other parts (temporary rules, learning), or NULL. */
	void (*status_more)(struct ctl_conn *cc, bool json, void *arg);
	void (*metrics_more)(struct ctl_conn *cc, void *arg);
	void *arg;
};

/** The control_cmd_cb: arg is a struct ctlcmd. */
void ctlcmd_dispatch(struct ctl_conn *cc, const struct ctl_request *rq,
	void *arg);

/** Write s as a JSON string (quoted, escaped), or null when s is NULL. */
void ctl_json_str(struct ctl_conn *cc, const char *s);

#endif
