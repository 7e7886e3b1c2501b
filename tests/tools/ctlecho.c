/* ctlecho SOCKET GID: the control socket (control.c) with canned answers,
 * for tests/e2e/0040-control-socket.sh. Exits cleanly on SIGTERM.
 *
 *   status       "ok" (JSON with -j), status 0
 *   list [VM]    "list VM", status 0
 *   why ...      "dropped" on stderr, status 1
 *   flush VM     status 0
 *   log          one line, status 0; log -f: a line every 100 ms until
 *                the client goes away (then "ctlecho: follower gone" on
 *                stderr)
 *   reload       "reloaded" after 300 ms, status 0
 *   suggest N    N KiB of output (many frames), status 0
 *   metrics      "# EOF", status 0 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "control.h"
#include "log.h"

struct held {
	struct ctl_conn *cc;
	struct event *ev;
	int n;
};

static void
held_gone(struct ctl_conn *cc, void *arg)
{
	struct held *h = arg;

	fprintf(stderr, "ctlecho: %s gone\n",
		h->n >= 0 ? "follower" : "reload");
	event_free(h->ev);
	free(h);
}

static void
follow_timo(evutil_socket_t fd, short ev, void *arg)
{
	struct held *h = arg;
	struct timeval tv = {0, 100000};

	ctl_out(h->cc, "line %d\n", h->n++);
	evtimer_add(h->ev, &tv);
}

static void
reload_timo(evutil_socket_t fd, short ev, void *arg)
{
	struct held *h = arg;

	ctl_out(h->cc, "reloaded\n");
	ctl_end(h->cc, 0);
	event_free(h->ev);
	free(h);
}

static void
hold(struct event_base *base, struct ctl_conn *cc, bool follow)
{
	struct held *h = calloc(1, sizeof(*h));
	struct timeval tv = {0, follow ? 100000 : 300000};

	if (h == NULL)
		abort();
	h->cc = cc;
	h->n = follow ? 0 : -1;
	h->ev = evtimer_new(base, follow ? follow_timo : reload_timo, h);
	evtimer_add(h->ev, &tv);
	ctl_on_close(cc, held_gone, h);
}

static void
suggest(struct ctl_conn *cc, const char *kib)
{
	char line[1024];
	long n = strtol(kib, NULL, 10);

	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	for (long i = 0; i < n; i++)
		ctl_write(cc, line, sizeof(line));
	ctl_end(cc, 0);
}

static void
cmd_cb(struct ctl_conn *cc, const struct ctl_request *rq, void *arg)
{
	struct event_base *base = arg;

	switch (rq->cmd) {
	case CTL_STATUS:
		if (rq->flags & CTL_F_JSON)
			ctl_out(cc, "{\"ok\": true}\n");
		else
			ctl_out(cc, "ok\n");
		ctl_end(cc, 0);
		break;
	case CTL_LIST:
		ctl_out(cc, "list %s\n", rq->argc ? rq->argv[0] : "");
		ctl_end(cc, 0);
		break;
	case CTL_WHY:
		ctl_err(cc, "dropped\n");
		ctl_end(cc, 1);
		break;
	case CTL_LOG:
		if (rq->flags & CTL_F_FOLLOW) {
			hold(base, cc, true);
			break;
		}
		ctl_out(cc, "a log line\n");
		ctl_end(cc, 0);
		break;
	case CTL_RELOAD:
		hold(base, cc, false);
		break;
	case CTL_SUGGEST:
		suggest(cc, rq->argv[0]);
		break;
	case CTL_METRICS:
		ctl_out(cc, "# EOF\n");
		ctl_end(cc, 0);
		break;
	default:
		ctl_end(cc, 0);
		break;
	}
}

static void
term_cb(evutil_socket_t sig, short ev, void *arg)
{
	event_base_loopbreak(arg);
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct control *ctl;
	struct event *ev;
	char *err = NULL;

	if (argc != 3) {
		fprintf(stderr, "usage: ctlecho SOCKET GID\n");
		return 2;
	}
	log_init("ctlecho", 1);
	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		return 1;
	ctl = control_new(base, argv[1], (gid_t)strtoul(argv[2], NULL, 10),
		cmd_cb, base, &err);
	if (ctl == NULL) {
		fprintf(stderr, "ctlecho: %s\n", err);
		free(err);
		return 1;
	}
	ev = evsignal_new(base, SIGTERM, term_cb, base);
	evsignal_add(ev, NULL);
	fprintf(stderr, "ctlecho: ready\n");
	event_base_dispatch(base);
	control_free(ctl);
	event_free(ev);
	event_base_free(base);
	return 0;
}
