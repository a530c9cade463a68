/*
 * resync_engine.c -- the resync engine (resync_engine.h): the thin edge
 * around the pure rules of resync.c (resync.h has the state diagram and
 * the invariants).
 *
 * One thread polling the NOTIFY socket and a wake-up pipe, the service's
 * hooks, and what reads the store, the publisher or the clock for the
 * rules (the targets of a device, its "sync" object for the admin API,
 * the counts by state for monitoring).
 *
 * Threads and locks.  Four kinds of callers:
 *   - the service's hooks (change hook via resync_note, woken by
 *     resync_wake once the lock is released; registration hook)
 *     run with the service lock held and use the store directly;
 *   - HTTP threads call resync_on_fetch, which only takes r->mu;
 *   - the thread that made a small change sends its first NOTIFYs once
 *     the files are in place (resync_send_ready: no lock held; r->mu,
 *     then r->smu to send);
 *   - the engine thread takes the service lock through svc_transact
 *     (scans and results, each one transaction) for short batches of
 *     store work, never while sending or resolving names.
 * Lock order: service lock, then r->mu; never the other way round.
 * r->smu (the NOTIFY transactions) is taken under neither, and nothing
 * is taken under it.
 */
#include "resync_engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "errbuf.h"
#include "idle.h"
#include "idmap.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "publish.h"
#include "service.h"
#include "vendor.h"
#include "virt.h"
#include "wipe.h"
#include "lockorder.h"

#define SCAN_BATCH 64
/* A change of at most this many devices (a *30 move, an administrator's
 * edit of one device) is a person waiting: its NOTIFYs are scanned first
 * and never wait for a slot under [sip] notify_max_pending.  A larger one
 * (an import, an organization's resync), and every step of a template's
 * re-render whatever its size (SVC_CHANGE_BULK), is bulk: its NOTIFYs
 * are paced. */
#define URGENT_MAX 16
#define FETCHQ_MAX 100000
/* The engine holds the service lock for about this long at most per
 * transaction (a round of results, a scan), then lets the threads waiting
 * for it in: a boot storm's fetches, tens of thousands per round, in one
 * transaction kept a *30 waiting for hundreds of milliseconds. */
#define SLICE_NS 2000000ull /* 2 ms */
/* Fetches are recorded in batches: when FETCH_BATCH wait, or the first
 * of them has waited FETCH_WAIT_MS (at a boot storm every first fetch is
 * news: a transaction of a few rows per wake-up, before, and most of the
 * engine's time its commits). */
#define FETCH_BATCH 512
#define FETCH_WAIT_MS 20
/* A small change's first NOTIFYs are the committing thread's to send once
 * its files are in place (resync_send_ready, about a millisecond after
 * the commit); the engine sends those still ready this long after the
 * commit (a change made by a thread that does not send, or one whose
 * files take long).  The engine, woken for them sooner, took them from
 * that thread in half the moves of a re-render, and was then the later
 * of the two: it shares two cores with the re-render. */
#define READY_GRACE_MS 3

/* Target inputs of device d from the store and the publisher (lock held).
 * dc is filled (zeroed when absent).  0 with t filled, 1 when d has no
 * target, -1 when the store failed. */
static int
target_of(const struct hd_dev *d, struct store *st, struct pub *pub, long long now,
          const struct cfg_netlist *nets, struct store_devcontact *dc, struct pub_fetch *f,
          struct resync_target *t)
{
	struct resync_target_in in = { 0 };

	if (store_devcontact_get(st, d->id, dc) < 0) {
		log_error("resync: cannot read the contact of device %s: %s", d->mac,
		          store_errmsg(st));
		return -1;
	}
	memset(f, 0, sizeof(*f));
	if (pub != NULL)
		(void)pub_fetch_info(pub, d->id, f);
	in.reg_contact = dc->dev != 0 ? dc->contact : NULL;
	in.reg_expires_at = dc->expires_at;
	in.fetch_source = f->source;
	in.static_contact = d->static_contact;
	in.now = now;
	in.nets = nets;
	return resync_pick_target(&in, t) == 0 ? 0 : 1;
}

json_t *
resync_sync_json(const struct world *w, struct store *st, struct pub *pub,
                 const struct hd_dev *d)
{
	struct store_resync row;
	struct store_devcontact dc;
	struct pub_fetch f;
	struct resync_target t;
	unsigned long long version = pub != NULL ? pub_version(pub, d->id) : 0;
	json_t *o, *tj = json_null();
	const char *state;
	char uri[400];
	int rc = store_resync_get(st, d->id, &row);

	(void)w;
	if (rc < 0)
		return NULL;
	switch (target_of(d, st, pub, (long long)time(NULL), NULL, &dc, &f, &t)) {
	case -1:
		return NULL;
	case 0:
		resync_target_uri(&t, uri, sizeof(uri));
		tj = json_pack("{s:s, s:s}", "uri", uri, "source", resync_source_name(t.source));
		break;
	default:
		break;
	}
	if (rc == 1) {
		state = row.state;
		if (row.version != 0)
			version = row.version;
	} else {
		state = version != 0 && f.version >= version ? "synced" : "none";
		memset(&row, 0, sizeof(row));
	}
	o = json_pack("{s:s, s:I, s:I, s:i, s:s?, s:o?, s:o}", "state", state, "version",
	              (json_int_t)version, "fetched_version", (json_int_t)f.version, "attempts",
	              row.attempts, "last_result", row.last_result[0] ? row.last_result : NULL,
	              "last_at", row.last_at ? json_integer(row.last_at) : json_null(),
	              "target", tj);
	return o;
}

/* ---- the engine --------------------------------------------------------- */

/* One NOTIFY decided under the lock, sent outside it.  auth_pw is wiped. */
struct job {
	hd_id dev, org;
	char mac[HD_MAC_LEN + 1];
	int attempt;
	unsigned long long version;
	struct resync_target t;
	char uri[400];
	char event[160];
	const char *substate; /* the profile's (static), NULL = terminated */
	char ctype[64];
	char body[1024];
	char auth_user[STORE_REG_USER_MAX];
	char auth_pw[256];
	char auth_realm[256];   /* the realm the phone challenges with */
	const struct vendor_notify_auth *auth; /* NULL: never answer */
	long long ready_ms;     /* notify_now_ms() when its change committed */
};

struct inflight {
	uint64_t id;
	hd_id dev, org;
	char mac[HD_MAC_LEN + 1];
	int attempt;
	unsigned long long version;
	char uri[400]; /* last: a pending one is allocated to the URI's length */
};

struct result {
	struct inflight f;
	int status;
	char reason[128];
	int requests;
	long long elapsed_ms;
};

struct fetchev {
	hd_id dev;
	unsigned long long version;
	char source[46];
	char user_agent[160];
};

#define RESYNC_NETS_MAX 64

struct resync {
	struct svc *svc;
	struct pub *pub;
	int wake[2];
	pthread_t th;
	bool started;
	atomic_bool stop;
	_Atomic long long beat_ms;      /* notify_now_ms() of the thread's last round */

	pthread_mutex_t mu;             /* guards everything below */
	struct resync_policy pol;
	/* [notify] per profile, as vendor_registry; "" = the profile's default */
	char events[CFG_PROFILES_MAX][160];
	struct cfg_net net_v[RESYNC_NETS_MAX]; /* [sip] notify_networks */
	size_t nnets;
	bool kicked;
	int max_pending;                /* [sip] notify_max_pending */
	/* devices of small changes (URGENT_MAX), scanned before the rest */
	hd_id *urgent;
	size_t nurgent, capurgent;
	uint64_t move_stamp; /* the *30 move whose first NOTIFY is awaited (metrics), 0 none */
	long long next_due;             /* soonest next_at of a waiting row; 0 none */
	struct fetchev *fq;
	size_t nfq, capfq;
	/* first NOTIFYs of small changes, decided in the change's own
	 * transaction (stage_first), committed, in commit order: for the
	 * committing thread to send (resync_send_ready), else the engine
	 * thread READY_GRACE_MS after the commit */
	struct job *ready;
	size_t nready, capready;
	/* ready jobs taken for sending, their attempts not recorded yet (the
	 * next scan records them: record_sent) */
	struct sent *sent;
	size_t nsent, capsent;

	/* service lock: the NOTIFYs the transaction in progress decided,
	 * ready once it commits (staged_end) */
	struct job staged[URGENT_MAX];
	size_t nstaged;
	long long fq_since_ms;          /* notify_now_ms() when fq got its first */

	/* The sender: whoever sends a NOTIFY (the engine thread; the thread
	 * of a small change, once its files are in place: resync_send_ready)
	 * holds smu while it uses these, never while it waits for anything
	 * else (a lock, the store, the TFTP writer).  Taken under no other
	 * lock of this module. */
	pthread_mutex_t smu;
	struct notify *nt;
	struct idmap inf;               /* notify id -> struct inflight */
	struct result *res;             /* NOTIFYs ended, for the next round (apply) */
	size_t nres, capres;

	/* engine thread only */
	/* due rows are left in the outbox for want of a free NOTIFY slot
	 * (max_pending): the next scan waits until enough are free */
	bool throttled;
};

/* A NOTIFY taken from r->ready: the next scan records its attempt in the
 * row. */
struct sent {
	hd_id dev;
	unsigned long long version;
	int attempt;
};

static void
wake(struct resync *r)
{
	char c = 1;

	/* a full pipe already means "wake up" */
	if (write(r->wake[1], &c, 1) < 0 && errno != EAGAIN)
		log_warn_errno("resync: wake-up pipe");
}

/* A resync now waits for dev's fetch: the phone may already have that
 * version, so its next fetch must reach resync_on_fetch all the same
 * (the publisher passes on news only). */
static void
await_fetch(struct resync *r, hd_id dev)
{
	pub_fetch_forget(r->pub, dev);
}

/* The configured event, else the profile's for the templates in use
 * (called under the service lock, which also guards template changes). */
static const char *
event_for(struct resync *r, const struct vendor_profile *prof, char *buf, size_t len)
{
	const char *ev = vendor_notify_event(prof, pub_templates(r->pub));

	size_t k = vendor_profile_index(prof);

	pthread_mutex_lock(&r->mu);
	if (k < CFG_PROFILES_MAX && r->events[k][0] != '\0')
		ev = r->events[k];
	(void)snprintf(buf, len, "%s", ev); /* both sources fit 160 bytes (config: 128) */
	pthread_mutex_unlock(&r->mu);
	return buf;
}

/* Records an event about device d (lock held).  0, or -1 when the store
 * failed. */
static int
dev_event(struct store *st, const char *type, hd_id org, const char *mac, json_t *detail,
          long long now)
{
	if (event_add(st, now, type, org, NULL, mac, detail) != 0) {
		log_warn("resync: event %s of %s not recorded: %s", type, mac, store_errmsg(st));
		return -1;
	}
	return 0;
}

static int
row_failed(struct store *st, hd_id dev)
{
	log_error("resync: cannot store the state of device %lld: %s", (long long)dev,
	          store_errmsg(st));
	return -1;
}

static int
put_row(struct store *st, const struct store_resync *row)
{
	return store_resync_put(st, row) != 0 ? row_failed(st, row->dev) : 0;
}

/* A row owed, written without a read (store_resync_owe_put). */
static int
owe_row(struct store *st, struct store_resync *row)
{
	return store_resync_owe_put(st, row) != 0 ? row_failed(st, row->dev) : 0;
}

/* The line the phone carries before it reloads: the identity it last
 * registered with (device_contact), an extension or a parking account. */
static void
auth_of(const struct world *w, const struct vendor_profile *prof,
        const struct store_devcontact *dc, struct job *j)
{
	const struct hd_ext *e;
	const struct hd_dev *pd;
	const struct hd_org *o = NULL;
	const char *pw = NULL, *realm;

	if (dc->dev == 0 || dc->sip_user[0] == '\0' || prof->notify_auth == NULL)
		return;
	if ((e = world_ext_by_sip_user(w, dc->sip_user)) != NULL) {
		pw = e->sip_password;
		o = world_org(w, e->org);
	} else if ((pd = world_dev_by_parking_user(w, dc->sip_user)) != NULL) {
		pw = pd->parking_password;
		o = world_org(w, pd->org);
	}
	/* the realm: the family's own, or the line's registrar host */
	realm = prof->notify_auth->realm;
	if (realm == NULL)
		realm = e != NULL && e->sip.host != NULL && e->sip.host[0] != '\0' ? e->sip.host
		        : o != NULL ? o->sip.host : NULL;
	if (pw == NULL || strlen(pw) >= sizeof(j->auth_pw) || realm == NULL ||
	    realm[0] == '\0' || strlen(realm) >= sizeof(j->auth_realm))
		return;
	memcpy(j->auth_realm, realm, strlen(realm) + 1);
	j->auth = prof->notify_auth;
	memcpy(j->auth_user, dc->sip_user, strlen(dc->sip_user) + 1);
	memcpy(j->auth_pw, pw, strlen(pw) + 1);
}

/* The rest of job j (its target j->t is set) for device d, whose row
 * resync_step has just turned to a send (lock held). */
static void
job_fill(struct resync *r, const struct world *w, const struct hd_dev *d,
         const struct vendor_profile *prof, const struct store_resync *row,
         const struct store_devcontact *dc, struct job *j)
{
	int n;

	j->dev = d->id;
	j->org = d->org;
	memcpy(j->mac, d->mac, sizeof(j->mac));
	j->attempt = row->attempts;
	j->version = row->version;
	resync_target_uri(&j->t, j->uri, sizeof(j->uri));
	(void)event_for(r, prof, j->event, sizeof(j->event));
	j->substate = prof->notify_subscription_state;
	if (prof->notify_content_type != NULL) {
		struct vendor_notify vn = { dc->call_id[0] ? dc->call_id : NULL, row->version };

		n = vendor_notify_body(prof, &vn, j->body, sizeof(j->body));
		if (n < 0 && vn.register_call_id != NULL) { /* a Call-ID we cannot send */
			vn.register_call_id = NULL;
			n = vendor_notify_body(prof, &vn, j->body, sizeof(j->body));
		}
		if (n <= 0 || (size_t)snprintf(j->ctype, sizeof(j->ctype), "%s",
		                               prof->notify_content_type) >= sizeof(j->ctype))
			j->body[0] = '\0'; /* no body rather than a mislabelled one */
	}
	auth_of(w, prof, dc, j);
}

/* The settings of r a decision reads (a reload may change them
 * meanwhile): filled by rules_copy, in place (nets points into net_v). */
struct rules {
	struct resync_policy pol;
	struct cfg_net net_v[RESYNC_NETS_MAX];
	struct cfg_netlist nets;
};

/* r->mu held. */
static void
rules_copy(const struct resync *r, struct rules *x)
{
	x->pol = r->pol;
	memcpy(x->net_v, r->net_v, sizeof(x->net_v));
	x->nets = (struct cfg_netlist){ x->net_v, r->nnets };
}

struct scan {
	struct resync *r;
	struct rules ru; /* r's, when the scan began */
	long long now;
	struct store_resync rows[SCAN_BATCH];
	size_t nrows;
	struct job *jobs; /* SCAN_BATCH of them */
	size_t njobs;
	hd_id urgent[SCAN_BATCH]; /* devices of small changes, looked at first */
	size_t nurgent;
	size_t room;       /* rows of bulk work the free NOTIFY slots allow */
	bool limited;      /* room was less than the batch had left */
	long long soonest;
	uint64_t until;    /* SLICE_NS after the lock was taken (metrics_now_ns) */
	bool cut;          /* due rows were left for the next scan (until) */
	/* the first of r->sent when the scan began, recorded in its
	 * transaction (record_sent); dropped from r->sent once it commits */
	struct sent sent[SCAN_BATCH];
	size_t nsent;
	size_t no_target;  /* devices without any address, this scan */
	char no_target_mac[HD_MAC_LEN + 1]; /* one of them, for the log */
};

static int
collect_row(const struct store_resync *row, void *arg)
{
	struct scan *sc = arg;

	if (sc->nrows < SCAN_BATCH)
		sc->rows[sc->nrows++] = *row;
	return 0;
}

static int
soonest_row(const struct store_resync *row, void *arg)
{
	((struct scan *)arg)->soonest = row->next_at;
	return 1;
}

/* Whether a NOTIFY staged for dev waits in r->ready, or was taken from
 * it and its attempt is not recorded by a committed scan (r->sent). */
static bool
is_taken(struct resync *r, hd_id dev)
{
	bool found = false;

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->nready && !found; i++)
		found = r->ready[i].dev == dev;
	for (size_t i = 0; i < r->nsent && !found; i++)
		found = r->sent[i].dev == dev;
	pthread_mutex_unlock(&r->mu);
	return found;
}

/* One due row, in the scan's transaction: decides, writes, and maybe
 * adds a job.  0, or -1 when the store failed (the scan is rolled back). */
static int
scan_one(struct scan *sc, const struct world *w, struct store *st, struct store_resync *row)
{
	const struct hd_dev *d = world_dev(w, row->dev);
	const struct vendor_profile *prof;
	struct store_devcontact dc;
	struct pub_fetch f;
	struct job *j = &sc->jobs[sc->njobs];
	enum resync_action act;
	int n;

	if (is_taken(sc->r, row->dev))
		return 0; /* its NOTIFY is decided, sent by send_ready */
	if (d == NULL || (prof = vendor_profile_by_name(d->profile)) == NULL) {
		/* cannot happen with the schema's cascade and the API's profile
		 * check; settle the row rather than find it due forever */
		resync_set_state(row, "stale");
		row->next_at = 0;
		(void)resync_record_result(row, -1, "unknown device or profile", sc->now);
		return put_row(st, row);
	}
	if (row->version == 0)
		row->version = pub_version(sc->r->pub, d->id);
	act = resync_step(row, &sc->ru.pol, sc->now);
	if (act == RESYNC_GIVE_UP) {
		if (put_row(st, row) != 0 ||
		    dev_event(st, "resync.stale", d->org, d->mac,
		              json_pack("{s:I, s:i, s:s?}", "version", (json_int_t)row->version,
		                        "attempts", row->attempts, "last_result",
		                        row->last_result[0] ? row->last_result : NULL),
		              sc->now) != 0)
			return -1;
		log_warn("resync: device %s is stale after %d NOTIFYs (%s)", d->mac, row->attempts,
		         row->last_result);
		return 0;
	}
	if (act != RESYNC_SEND)
		return 0;
	await_fetch(sc->r, d->id);
	memset(j, 0, sizeof(*j));
	if ((n = target_of(d, st, sc->r->pub, sc->now, &sc->ru.nets, &dc, &f, &j->t)) < 0)
		return -1;
	if (n > 0) {
		(void)resync_record_result(row, -1, "no target", sc->now);
		if (put_row(st, row) != 0 ||
		    dev_event(st, "resync.failed", d->org, d->mac,
		              json_pack("{s:I, s:i, s:s}", "version", (json_int_t)row->version,
		                        "attempt", row->attempts, "result", "no target"),
		              sc->now) != 0)
			return -1;
		/* one log line per scan, not per device: a template change can
		 * reach thousands of phones the PBX never reported */
		log_debug("resync: device %s has no registration, fetch or static contact", d->mac);
		if (sc->no_target++ == 0)
			memcpy(sc->no_target_mac, d->mac, sizeof(sc->no_target_mac));
		return 0;
	}
	if (put_row(st, row) != 0)
		return -1;
	job_fill(sc->r, w, d, prof, row, &dc, j);
	sc->njobs++;
	return 0;
}

/* The attempt a ready NOTIFY made, in its row, as the scan would have
 * written it before sending (the next scan, first); nothing when the row
 * moved on since (a newer change, a confirmation). */
static int
record_sent(const struct resync_policy *pol, long long now, struct store *st,
            const struct sent *x)
{
	struct store_resync row;
	int rc = store_resync_get(st, x->dev, &row);

	if (rc != 1)
		return rc < 0 ? -1 : 0;
	if (row.version != x->version || row.attempts + 1 != x->attempt ||
	    (!resync_state_is(&row, "pending") && !resync_state_is(&row, "notified")) ||
	    resync_step(&row, pol, now) != RESYNC_SEND)
		return 0;
	return put_row(st, &row);
}

/*
 * The scan's body, in one transaction (svc_transact): the due rows, what
 * each decided, and their events are written together or not at all.
 * When any write fails, nothing of the scan is kept and no NOTIFY goes
 * out (its jobs are dropped): the rows are due as they were.
 */
static int
scan_locked(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct scan *sc = arg;

	size_t first;

	(void)chg; /* no device's files change */
	sc->until = metrics_now_ns() + SLICE_NS;
	/* the NOTIFYs taken from r->ready: their rows are not due any more */
	for (size_t i = 0; i < sc->nsent; i++)
		if (record_sent(&sc->ru.pol, sc->now, st, &sc->sent[i]) != 0)
			return -1;
	/* the rows of small changes first, whatever is in flight: each is
	 * written before the bulk query runs, which then does not see it */
	for (size_t i = 0; i < sc->nurgent; i++) {
		struct store_resync *row = &sc->rows[sc->nrows];
		int got = store_resync_get(st, sc->urgent[i], row);

		if (got < 0)
			return -1;
		if (got == 0 || row->next_at > sc->now ||
		    (!resync_state_is(row, "pending") && !resync_state_is(row, "notified")))
			continue;
		sc->nrows++;
		if (scan_one(sc, w, st, row) != 0)
			return -1;
	}
	first = sc->nrows;
	sc->limited = sc->room < SCAN_BATCH - first;
	if (!sc->limited)
		sc->room = SCAN_BATCH - first;
	if (sc->room > 0 &&
	    store_resync_due(st, sc->now, (int)sc->room, collect_row, sc) != 0) {
		log_error("resync: cannot read the outbox: %s", store_errmsg(st));
		return -1;
	}
	for (size_t i = first; i < sc->nrows; i++) {
		if (scan_one(sc, w, st, &sc->rows[i]) != 0)
			return -1;
		/* at least a small change's worth of rows per scan; a *30
		 * waiting for the lock cuts it short too */
		if (i + 1 - first >= URGENT_MAX && i + 1 < sc->nrows &&
		    (metrics_now_ns() >= sc->until || svc_wanted(sc->r->svc))) {
			sc->nrows = i + 1; /* the rest stay due, untouched */
			sc->cut = true;
			break;
		}
	}
	sc->soonest = 0;
	if (store_resync_due(st, LLONG_MAX / 2, 1, soonest_row, sc) < 0)
		sc->soonest = sc->now + 1;
	return 0;
}

/* Keeps f until its NOTIFY ends, in as many bytes as its URI needs (a
 * template change leaves tens of thousands pending; most URIs are a
 * tenth of uri[]'s size). */
static int
inflight_add(struct resync *r, const struct inflight *f)
{
	size_t len = strnlen(f->uri, sizeof(f->uri) - 1);
	struct inflight *x = malloc(offsetof(struct inflight, uri) + len + 1);

	if (x == NULL)
		return -1;
	memcpy(x, f, offsetof(struct inflight, uri));
	memcpy(x->uri, f->uri, len);
	x->uri[len] = '\0';
	if (idmap_put(&r->inf, (int64_t)f->id, x) != 0) {
		free(x);
		return -1;
	}
	return 0;
}

/* r->smu held. */
static void
result_add(struct resync *r, const struct inflight *f, int status, const char *reason,
           int requests, long long elapsed_ms)
{
	struct result *x;

	if (r->nres == r->capres) {
		size_t cap = r->capres ? r->capres * 2 : 64;
		struct result *v = realloc(r->res, cap * sizeof(*v));

		if (v == NULL) {
			log_error("resync: out of memory; a NOTIFY result of %s is lost", f->mac);
			return;
		}
		r->res = v;
		r->capres = cap;
	}
	x = &r->res[r->nres++];
	/* f may be a pending one, cut to its URI's length (inflight_add) */
	memcpy(&x->f, f, offsetof(struct inflight, uri));
	(void)snprintf(x->f.uri, sizeof(x->f.uri), "%s", f->uri);
	x->status = status;
	(void)snprintf(x->reason, sizeof(x->reason), "%s", reason ? reason : "");
	x->requests = requests;
	x->elapsed_ms = elapsed_ms;
}

/* notify's done callback (from notify_tick/notify_input: r->smu held). */
static void
on_done(void *arg, const struct notify_result *nr)
{
	struct resync *r = arg;
	struct inflight *f = idmap_get(&r->inf, (int64_t)nr->id);

	if (f == NULL)
		return;
	idmap_del(&r->inf, (int64_t)nr->id);
	result_add(r, f, nr->status, nr->reason, nr->requests, nr->elapsed_ms);
	free(f);
}

/* Job j's NOTIFY, once the phone's files are in the TFTP root (no lock
 * held; takes r->smu to send). */
static void
send_job(struct resync *r, struct job *j)
{
	struct inflight f = { 0 };
	struct notify_target t = { 0 };
	char host[INET6_ADDRSTRLEN], msg[128];
	const char *h = j->t.host, *why, *fail = NULL;
	struct rules ru;
	uint64_t stamp = 0;
	bool sent = false, lost = false;

	/* the phone fetches what the NOTIFY announces: its files are in the
	 * TFTP root first */
	pub_tftp_wait(r->pub, j->dev);
	f.dev = j->dev;
	f.org = j->org;
	memcpy(f.mac, j->mac, sizeof(f.mac));
	f.attempt = j->attempt;
	f.version = j->version;
	memcpy(f.uri, j->uri, sizeof(f.uri));
	if (!resync_numeric_host(h)) {
		/* a static contact may name a host: resolved here, without
		 * the service lock */
		struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *ai = NULL;
		int gai = getaddrinfo(h, NULL, &hints, &ai);

		if (gai != 0 || ai == NULL ||
		    getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0,
		                NI_NUMERICHOST) != 0)
			fail = "cannot resolve the target host";
		else
			h = host;
		if (ai != NULL)
			freeaddrinfo(ai);
	}
	pthread_mutex_lock(&r->mu);
	rules_copy(r, &ru);
	pthread_mutex_unlock(&r->mu);
	if (fail == NULL && (why = resync_target_refused(h, j->t.port, &ru.nets)) != NULL) {
		(void)snprintf(msg, sizeof(msg), "target refused: %s", why);
		fail = msg;
	}
	t.host = h;
	t.port = j->t.port;
	t.user = j->t.user[0] ? j->t.user : NULL;
	t.event = j->event;
	t.subscription_state = j->substate;
	t.content_type = j->body[0] ? j->ctype : NULL;
	t.body = j->body[0] ? j->body : NULL;
	t.auth_user = j->auth_user[0] ? j->auth_user : NULL;
	t.auth_password = j->auth_user[0] ? j->auth_pw : NULL;
	if (j->auth != NULL)
		t.auth_policy = (struct sip_auth_policy){ j->auth_realm, j->auth->algorithms,
		                                          j->auth->qop_required };
	pthread_mutex_lock(&r->smu);
	if (fail != NULL) {
		result_add(r, &f, -1, fail, 0, 0);
	} else if (notify_send(r->nt, &t, notify_now_ms(), &f.id) != 0) {
		result_add(r, &f, -1, "invalid target", 0, 0);
	} else if (inflight_add(r, &f) != 0) {
		lost = true;
	} else {
		sent = true;
	}
	pthread_mutex_unlock(&r->smu);
	sodium_memzero(j->auth_pw, sizeof(j->auth_pw));
	if (lost)
		log_error("resync: out of memory; the result of a NOTIFY to %s is lost", f.mac);
	if (!sent)
		return;
	metrics_inc(METRICS_NOTIFY_SENT, 1);
	pthread_mutex_lock(&r->mu);
	stamp = r->move_stamp;
	r->move_stamp = 0;
	pthread_mutex_unlock(&r->mu);
	if (stamp != 0) /* the first NOTIFY of a *30 move is on the wire */
		metrics_move_notified(stamp);
	log_info("resync: NOTIFY %s (Event: %s) to %s, attempt %d", j->mac, j->event, j->uri,
	         j->attempt);
}

/* Sends the jobs a scan decided (engine thread, no lock held).  A move's
 * first NOTIFYs ready meanwhile go out between two (the engine's idle
 * work): a scan of a re-render's rows sends hundreds. */
static void
send_jobs(struct resync *r, struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			idle_run();
		send_job(r, &jobs[i]);
	}
}

/* Up to SCAN_BATCH devices of small changes, taken from r->urgent
 * (r->mu held): they are put back when the scan is rolled back. */
static void
take_urgent(struct resync *r, struct scan *sc)
{
	sc->nurgent = r->nurgent < SCAN_BATCH ? r->nurgent : SCAN_BATCH;
	if (sc->nurgent == 0)
		return; /* r->urgent may be NULL */
	memcpy(sc->urgent, r->urgent, sc->nurgent * sizeof(sc->urgent[0]));
	r->nurgent -= sc->nurgent;
	memmove(r->urgent, r->urgent + sc->nurgent, r->nurgent * sizeof(r->urgent[0]));
	if (r->nurgent > 0)
		r->kicked = true;
}

/* Queues devs for the next scan's first look (r->mu held).  Beyond
 * URGENT_QUEUE_MAX (or out of memory) they are left to the bulk scan. */
#define URGENT_QUEUE_MAX 65536
static void
add_urgent(struct resync *r, const hd_id *devs, size_t n)
{
	if (n == 0 || r->nurgent + n > URGENT_QUEUE_MAX)
		return;
	if (r->nurgent + n > r->capurgent) {
		size_t cap = r->capurgent ? r->capurgent * 2 : 64;
		hd_id *v;

		while (cap < r->nurgent + n)
			cap *= 2;
		if ((v = realloc(r->urgent, cap * sizeof(*v))) == NULL)
			return;
		r->urgent = v;
		r->capurgent = cap;
	}
	memcpy(r->urgent + r->nurgent, devs, n * sizeof(*devs));
	r->nurgent += n;
}

/* NOTIFY transactions in progress (takes r->smu). */
static size_t
pending(struct resync *r)
{
	size_t n;

	pthread_mutex_lock(&r->smu);
	n = notify_pending(r->nt);
	pthread_mutex_unlock(&r->smu);
	return n;
}

/* Whether a scan would find nothing it may do (engine thread): due bulk
 * rows wait for NOTIFY slots (r->throttled), no small change waits, no
 * attempt waits to be recorded, and fewer slots are free than are worth
 * a scan (half the limit, at most a batch). */
static bool
blocked(struct resync *r, int max_pending, size_t nurgent, size_t nsent)
{
	size_t max = max_pending > 0 ? (size_t)max_pending : 1;
	size_t worth = max / 2 < SCAN_BATCH ? max / 2 : SCAN_BATCH;

	if (!r->throttled || nurgent > 0 || nsent > 0)
		return false;
	return pending(r) + (worth > 0 ? worth : 1) > max;
}

static void
scan(struct resync *r)
{
	struct scan *sc = calloc(1, sizeof(*sc));
	size_t inflight = pending(r), max;

	if (sc == NULL || (sc->jobs = calloc(SCAN_BATCH, sizeof(*sc->jobs))) == NULL) {
		free(sc);
		log_error("resync: out of memory");
		return;
	}
	sc->r = r;
	pthread_mutex_lock(&r->mu);
	rules_copy(r, &sc->ru);
	r->kicked = false;
	take_urgent(r, sc);
	/* the attempts to record (they stay in r->sent until the commit) */
	sc->nsent = r->nsent < SCAN_BATCH ? r->nsent : SCAN_BATCH;
	if (sc->nsent > 0)
		memcpy(sc->sent, r->sent, sc->nsent * sizeof(sc->sent[0]));
	max = r->max_pending > 0 ? (size_t)r->max_pending : 1;
	pthread_mutex_unlock(&r->mu);
	sc->room = inflight < max ? max - inflight : 0;
	sc->now = (long long)time(NULL);
	if (svc_transact(r->svc, "resync scan", scan_locked, NULL, sc) == 0) {
		bool more = sc->soonest != 0 && sc->soonest <= sc->now;

		if (sc->no_target > 0)
			log_warn("resync: %zu device(s) (e.g. %s) have no registration, fetch or "
			         "static contact: no NOTIFY sent", sc->no_target, sc->no_target_mac);
		/* due rows left for want of NOTIFY slots: scanned again once
		 * enough are free (blocked), not on a timer */
		r->throttled = more && sc->limited;
		pthread_mutex_lock(&r->mu);
		/* the attempts recorded leave the list (threads only append) */
		if (sc->nsent > 0) {
			r->nsent -= sc->nsent;
			memmove(r->sent, r->sent + sc->nsent, r->nsent * sizeof(*r->sent));
		}
		if (r->nsent > 0) /* more than a scan records */
			r->kicked = true;
		r->next_due = sc->soonest;
		if (more && !sc->limited) {
			if (sc->nrows == SCAN_BATCH || sc->cut) /* more are due: go on at once */
				r->kicked = true;
			else /* a row we could not write: not a busy loop */
				r->next_due = sc->now + 1;
		}
		pthread_mutex_unlock(&r->mu);
	} else {
		/* rolled back: nothing is sent, the rows are tried again, the
		 * attempts stay in r->sent for the next scan */
		sc->njobs = 0;
		pthread_mutex_lock(&r->mu);
		add_urgent(r, sc->urgent, sc->nurgent);
		r->next_due = sc->now + 1;
		pthread_mutex_unlock(&r->mu);
	}
	send_jobs(r, sc->jobs, sc->njobs);
	metrics_gauge_set(METRICS_NOTIFY_IN_FLIGHT, (double)pending(r));
	sodium_memzero(sc->jobs, SCAN_BATCH * sizeof(*sc->jobs));
	free(sc->jobs);
	free(sc);
}

/* The NOTIFYs of r->ready, decided in the changes' own transactions
 * (stage_first), that were ready at or before ms (notify_now_ms; they are
 * in commit order), sent at once (any thread, no lock held); the next
 * scan records their attempts first (record_sent).  true when any was
 * sent. */
static bool
send_ready(struct resync *r, long long ms)
{
	struct job *v;
	size_t n = 0;

	pthread_mutex_lock(&r->mu);
	while (n < r->nready && r->ready[n].ready_ms <= ms)
		n++;
	if (n == 0) {
		pthread_mutex_unlock(&r->mu);
		return false;
	}
	if (r->nsent + n > r->capsent) {
		size_t cap = r->capsent ? r->capsent : URGENT_MAX;
		struct sent *x;

		while (cap < r->nsent + n)
			cap *= 2;
		if ((x = realloc(r->sent, cap * sizeof(*x))) == NULL) {
			/* they stay ready: sent next time */
			pthread_mutex_unlock(&r->mu);
			log_error("resync: out of memory");
			return false;
		}
		r->sent = x;
		r->capsent = cap;
	}
	if (n == r->nready) {
		v = r->ready;
		r->ready = NULL;
		r->nready = r->capready = 0;
	} else if ((v = malloc(n * sizeof(*v))) != NULL) {
		/* the rest stay, moved to the front; the copies left behind
		 * hold passwords */
		memcpy(v, r->ready, n * sizeof(*v));
		memmove(r->ready, r->ready + n, (r->nready - n) * sizeof(*v));
		sodium_memzero(r->ready + (r->nready - n), n * sizeof(*v));
		r->nready -= n;
	} else {
		pthread_mutex_unlock(&r->mu);
		log_error("resync: out of memory");
		return false;
	}
	/* taken and listed at once: a scan meanwhile leaves their rows
	 * alone (is_taken) */
	for (size_t i = 0; i < n; i++)
		r->sent[r->nsent++] = (struct sent){ v[i].dev, v[i].version, v[i].attempt };
	r->kicked = true; /* the scan records their attempts */
	pthread_mutex_unlock(&r->mu);
	for (size_t i = 0; i < n; i++)
		send_job(r, &v[i]);
	sodium_memzero(v, n * sizeof(*v));
	free(v);
	return true;
}

/* The engine's share of r->ready: what has waited READY_GRACE_MS. */
static bool
send_ready_late(struct resync *r)
{
	return send_ready(r, notify_now_ms() - READY_GRACE_MS);
}

/* How long (ms) until the fetches waiting are recorded: 0 once a batch
 * is full or its first has waited FETCH_WAIT_MS; -1 none wait (r->mu
 * held). */
static long long
fetch_due_in(const struct resync *r, long long now_ms)
{
	long long t;

	if (r->nfq == 0)
		return -1;
	t = r->nfq >= FETCH_BATCH ? 0 : r->fq_since_ms + FETCH_WAIT_MS - now_ms;
	return t > 0 ? t : 0;
}

struct batch {
	struct resync *r;
	struct result *res;
	size_t nres;
	struct fetchev *fq;
	size_t nfq;
	long long now;
	size_t ir, ifq;     /* the next of each to record */
	uint64_t until;     /* the slice in progress ends (metrics_now_ns) */
	int open;           /* a row is open (store_resync_any_open), -1 not known */
};

static int
apply_result(struct batch *b, const struct world *w, struct store *st, const struct result *x)
{
	struct store_resync row;
	bool ok;
	int rc = store_resync_get(st, x->f.dev, &row);

	(void)w;
	metrics_inc(x->status >= 200 && x->status < 300 ? METRICS_NOTIFY_ANSWERED
	                                                 : METRICS_NOTIFY_FAILED, 1);
	if (rc != 1)
		return rc < 0 ? -1 : 0; /* 0: the device was deleted meanwhile */
	ok = resync_record_result(&row, x->status, x->reason, b->now);
	if (put_row(st, &row) != 0 ||
	    dev_event(st, ok ? "resync.sent" : "resync.failed", x->f.org, x->f.mac,
	              json_pack("{s:I, s:i, s:s, s:s, s:i, s:b, s:I}", "version",
	                        (json_int_t)x->f.version, "attempt", x->f.attempt, "result",
	                        row.last_result, "target", x->f.uri, "status", x->status,
	                        "challenged", x->requests > 1, "elapsed_ms",
	                        (json_int_t)x->elapsed_ms),
	              b->now) != 0)
		return -1;
	if (ok)
		log_info("resync: %s answered %s", x->f.mac, row.last_result);
	else
		log_warn("resync: NOTIFY to %s (%s) failed: %s", x->f.mac, x->f.uri, row.last_result);
	return 0;
}

static int
apply_fetch(struct batch *b, const struct world *w, struct store *st, const struct fetchev *fe)
{
	const struct hd_dev *d = world_dev(w, fe->dev);
	struct store_resync row;
	struct pub_fetch f;
	int rc;

	if (d == NULL)
		return 0;
	(void)pub_fetch_info(b->r->pub, d->id, &f);
	if (store_fetch_put(st, d->id, fe->source, fe->user_agent, fe->version,
	                    f.at ? f.at : b->now) != 0) {
		log_warn("resync: fetch of %s not recorded: %s", d->mac, store_errmsg(st));
		return -1;
	}
	/* only an open row is confirmed, and a fetch opens none: at a boot
	 * storm with none open, no lookup per fetch (results, which may
	 * open one, come first in a slice) */
	if (b->open < 0 && (b->open = store_resync_any_open(st)) < 0)
		return -1;
	if (b->open == 0)
		return 0;
	if ((rc = store_resync_get(st, d->id, &row)) < 0)
		return -1;
	if (rc != 1 || !resync_confirm_fetch(&row, fe->version))
		return 0;
	/* the row and its event together, or the round is rolled back */
	if (put_row(st, &row) != 0 ||
	    dev_event(st, "resync.synced", d->org, d->mac,
	              json_pack("{s:I, s:s, s:i}", "version", (json_int_t)fe->version, "via",
	                        "fetch", "attempts", row.attempts),
	              b->now) != 0)
		return -1;
	log_info("resync: %s fetched version %llu: synced", d->mac, fe->version);
	return 0;
}

static bool
batch_left(const struct batch *b)
{
	return b->ir < b->nres || b->ifq < b->nfq;
}

/* One slice of the round, in one transaction (svc_transact): from the
 * batch's cursors on, until SLICE_NS have passed since the lock was
 * taken or a thread waits for it (at least one entry). */
static int
apply_locked(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct batch *b = arg;

	(void)chg;
	b->until = metrics_now_ns() + SLICE_NS;
	b->open = -1;
	while (batch_left(b)) {
		int rc = b->ir < b->nres ? apply_result(b, w, st, &b->res[b->ir++])
		                         : apply_fetch(b, w, st, &b->fq[b->ifq++]);

		if (rc != 0)
			return -1;
		if (metrics_now_ns() >= b->until || svc_wanted(b->r->svc))
			break; /* a *30 waiting has the lock after this entry */
	}
	return 0;
}

/* Records NOTIFY results and fetches collected since the last round.
 * Both are taken from r first: NOTIFYs sent while a transaction waits
 * for the lock (engine_idle) may add results, kept for the next round. */
static void
apply(struct resync *r)
{
	struct batch b = { .r = r, .now = (long long)time(NULL) };

	pthread_mutex_lock(&r->smu);
	b.res = r->res;
	b.nres = r->nres;
	r->res = NULL;
	r->nres = r->capres = 0;
	pthread_mutex_unlock(&r->smu);

	pthread_mutex_lock(&r->mu);
	/* the fetches once a batch is full or has waited */
	if (fetch_due_in(r, notify_now_ms()) == 0 || atomic_load(&r->stop)) {
		b.fq = r->fq;
		b.nfq = r->nfq;
		r->fq = NULL;
		r->nfq = r->capfq = 0;
	}
	pthread_mutex_unlock(&r->mu);
	while (batch_left(&b)) {
		size_t ifq = b.ifq;

		if (svc_transact(r->svc, "resync", apply_locked, NULL, &b) != 0) {
			/* nothing of this slice or the rest is kept: those rows
			 * wait as they were (NOTIFYs are sent again when due),
			 * and each of those phones' next fetch is news again, so
			 * that it is recorded then */
			log_error("resync: cannot record results");
			for (size_t i = ifq; i < b.nfq; i++)
				pub_fetch_forget(r->pub, b.fq[i].dev);
			break;
		}
		if (batch_left(&b))
			svc_yield(r->svc); /* a *30 waiting has the lock first */
	}
	free(b.res);
	free(b.fq);
}

/* fetch_due_in, taking r->mu. */
static long long
fetch_wait(struct resync *r, long long now_ms)
{
	long long t;

	pthread_mutex_lock(&r->mu);
	t = fetch_due_in(r, now_ms);
	pthread_mutex_unlock(&r->mu);
	return t;
}

/* What the engine thread is asked to do: scan at once (kicked), or at
 * due (0: nothing waits).  Neither while blocked: the slots that free
 * up as NOTIFYs end wake it.  ready_in: ms until the oldest ready NOTIFY
 * is the engine's to send (send_ready_late), -1 none. */
static void
engine_wants(struct resync *r, bool *kicked, long long *due, long long *ready_in)
{
	size_t nurgent, nsent;
	int max;

	pthread_mutex_lock(&r->mu);
	*kicked = r->kicked;
	*due = r->next_due;
	nurgent = r->nurgent;
	nsent = r->nsent;
	max = r->max_pending;
	*ready_in = r->nready > 0 ? r->ready[0].ready_ms + READY_GRACE_MS - notify_now_ms() : -1;
	pthread_mutex_unlock(&r->mu);
	if (*ready_in != -1 && *ready_in < 0)
		*ready_in = 0;
	if (blocked(r, max, nurgent, nsent)) {
		*kicked = false;
		*due = 0;
	}
}

/* t or u, whichever is sooner (ms; -1: none). */
static long long
sooner(long long t, long long u)
{
	return u >= 0 && (t < 0 || u < t) ? u : t;
}

/* While the engine waits for the service lock or the TFTP writer (its
 * idle work, idle.h): the NOTIFYs of r->ready, which need neither the
 * lock nor a bulk file, go out meanwhile. */
static void
engine_idle(void *arg)
{
	(void)send_ready_late(arg);
}

/* Reads the answers waiting and fires the timers due (engine thread),
 * holding the sender's lock a few dozen datagrams or timers at a time (a
 * re-render's thousands of transactions retransmit in bursts): a thread
 * sending a move's NOTIFY waits for no more. */
#define RECV_CHUNK 32
static void
transport(struct resync *r, bool readable)
{
	long long now_ms = notify_now_ms();
	int got = RECV_CHUNK;

	for (int total = 0; readable && got == RECV_CHUNK && total < 1024; total += got) {
		pthread_mutex_lock(&r->smu);
		got = notify_recv(r->nt, now_ms, RECV_CHUNK);
		pthread_mutex_unlock(&r->smu);
	}
	do {
		pthread_mutex_lock(&r->smu);
		got = (int)notify_tick(r->nt, now_ms, RECV_CHUNK);
		pthread_mutex_unlock(&r->smu);
	} while (got == RECV_CHUNK);
}

/* notify_next_timeout_ms, taking r->smu. */
static long long
next_timer(struct resync *r, long long now_ms)
{
	long long t;

	pthread_mutex_lock(&r->smu);
	t = notify_next_timeout_ms(r->nt, now_ms);
	pthread_mutex_unlock(&r->smu);
	return t;
}

static void *
engine_main(void *arg)
{
	struct resync *r = arg;

	/* NOTIFYs may wait for a template save's steps and its files; a
	 * move's must not: the first ones, ready without the lock, are sent
	 * while it waits */
	svc_thread_background();
	idle_set(engine_idle, r);

	while (!atomic_load(&r->stop)) {
		struct pollfd pfd[2] = { { r->wake[0], POLLIN, 0 },
		                         { notify_poll_fd(r->nt), POLLIN, 0 } };
		long long now_ms = notify_now_ms(), t = next_timer(r, now_ms), due, ready_in;
		bool kicked;
		char buf[64];

		atomic_store(&r->beat_ms, now_ms); /* resync_alive */
		engine_wants(r, &kicked, &due, &ready_in);
		if (kicked)
			t = 0;
		else if (due != 0)
			t = sooner(t, due > time(NULL) ? (due - (long long)time(NULL)) * 1000 : 0);
		t = sooner(t, ready_in);
		t = sooner(t, fetch_wait(r, now_ms));
		if (t < 0 || t > 5000)
			t = 5000;
		if (poll(pfd, 2, (int)t) < 0 && errno != EINTR)
			log_warn_errno("resync: poll");
		if (pfd[0].revents & POLLIN)
			while (read(r->wake[0], buf, sizeof(buf)) > 0)
				;
		(void)send_ready_late(r);
		transport(r, pfd[1].revents & POLLIN);
		apply(r);
		metrics_gauge_set(METRICS_NOTIFY_IN_FLIGHT, (double)pending(r));
		engine_wants(r, &kicked, &due, &ready_in);
		if (kicked || r->throttled || (due != 0 && due <= (long long)time(NULL)))
			scan(r);
	}
	return NULL;
}

/* ---- hooks -------------------------------------------------------------- */

/* What stage_first needs, once per change. */
struct stage {
	long long now;
	bool small;     /* a small change: first NOTIFYs staged */
	struct rules ru; /* r's, copied when the change has any to stage */
};

/* The transaction that staged NOTIFYs ended (service lock held):
 * committed, they are ready: for the committing thread to send once the
 * files are in place (resync_send_ready), else for the engine thread
 * READY_GRACE_MS later (woken once the lock is released: resync_wake from
 * the unlock hook, so that it does not take a CPU from the change before
 * that); rolled back, their devices are left to the scan. */
static void
staged_end(void *arg, bool committed)
{
	struct resync *r = arg;

	long long now_ms = notify_now_ms();

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < r->nstaged; i++) {
		r->staged[i].ready_ms = now_ms;
		if (committed && r->nready == r->capready) {
			/* wipe_grow: the jobs hold passwords */
			char *v = (char *)r->ready;
			size_t cap = r->capready * sizeof(*r->ready);

			if (wipe_grow(&v, &cap, r->nready * sizeof(*r->ready),
			              (r->nready + 1) * sizeof(*r->ready)) == 0) {
				r->ready = (struct job *)v;
				r->capready = cap / sizeof(*r->ready);
			}
		}
		if (committed && r->nready < r->capready)
			r->ready[r->nready++] = r->staged[i];
		else
			add_urgent(r, &r->staged[i].dev, 1);
	}
	pthread_mutex_unlock(&r->mu);
	sodium_memzero(r->staged, r->nstaged * sizeof(r->staged[0]));
	r->nstaged = 0;
}

/*
 * The first NOTIFY of device d in a small change, decided in the change's
 * own transaction (service lock held), so that the engine sends it as
 * soon as d's files are in place, with no transaction of its own first.
 * Nothing is written: the engine records the attempt in d's row once the
 * NOTIFY is sent (record_sent), so a change that rolls back leaves none.
 * true: staged; false: left to the engine's scan (not due, no target, the
 * store failed, no room).
 */
static bool
stage_first(struct resync *r, const struct world *w, struct store *st, const struct stage *sg,
            const struct hd_dev *d, const struct store_resync *row)
{
	const struct vendor_profile *prof = vendor_profile_by_name(d->profile);
	struct store_resync next = *row;
	struct store_devcontact dc;
	struct pub_fetch f;
	struct job *j;

	if (prof == NULL || r->nstaged == URGENT_MAX ||
	    resync_step(&next, &sg->ru.pol, sg->now) != RESYNC_SEND)
		return false;
	j = &r->staged[r->nstaged];
	memset(j, 0, sizeof(*j));
	if (target_of(d, st, r->pub, sg->now, &sg->ru.nets, &dc, &f, &j->t) != 0)
		return false;
	job_fill(r, w, d, prof, &next, &dc, j);
	/* the first of the transaction has staged_end called when it ends
	 * (outside one: at once) */
	if (r->nstaged++ == 0 && store_after_txn(st, staged_end, r) != 0) {
		sodium_memzero(j, sizeof(*j));
		r->nstaged = 0;
		return false;
	}
	return true;
}

static bool
idset_has(const struct hd_idset *s, hd_id id)
{
	return s != NULL && hd_idset_has(s, id);
}

/* Device d of a change (in its transaction; a device of the world, as
 * service.h asks of a change that writes its outbox rows here): its
 * outbox row waits for the version published.  outbox: the row
 * is written here (SVC_CHANGE_OUTBOX: once, with its version), else the
 * change wrote it.  0, or -1 when outbox and the store failed; *staged:
 * its first NOTIFY was staged. */
static int
note_one(struct resync *r, const struct world *w, struct store *st, const struct hd_dev *d,
         bool outbox, bool unchanged_ok, const struct stage *sg, bool *staged)
{
	struct store_resync row;
	struct pub_fetch f;

	*staged = false;
	if (outbox) {
		/* written whole below, with no read first (a move's cold path):
		 * store_resync_owe_put keeps what a row there has beyond it */
		memset(&row, 0, sizeof(row));
		store_resync_owe(&row, false, d->id, sg->now, sg->now);
	} else if (store_resync_get(st, d->id, &row) <= 0 ||
	           !resync_state_is(&row, "pending") || row.version != 0) {
		return 0;
	}
	row.version = pub_version(r->pub, d->id);
	if (row.next_at > sg->now)
		row.next_at = sg->now; /* held until its files were published */
	(void)pub_fetch_info(r->pub, d->id, &f);
	/* nothing new for this phone, and it has it already */
	if (unchanged_ok && row.version != 0 && f.version >= row.version) {
		resync_set_state(&row, "synced");
		(void)snprintf(row.last_result, sizeof(row.last_result), "unchanged");
		row.next_at = 0;
	}
	if ((outbox ? owe_row(st, &row) : put_row(st, &row)) != 0)
		return outbox ? -1 : 0;
	if (resync_state_is(&row, "synced"))
		return 0;
	await_fetch(r, d->id);
	*staged = sg->small && stage_first(r, w, st, sg, d, &row);
	return 0;
}

/* A thread that said it sends its change's first NOTIFYs itself
 * (resync_send_ahead): whether its locked part staged some since its
 * last unlock, and whether it owes the engine the wake-up its unlock
 * left (resync_send_ready gives it). */
static _Thread_local struct {
	struct resync *r;
	bool staged, owed;
} tl_send;

int
resync_note(struct resync *r, const struct world *w, struct store *st, const hd_id *devs,
            size_t n, const struct hd_idset *changed, const char *why, unsigned flags)
{
	bool forced = why != NULL && strcmp(why, "resync") == 0;
	bool outbox = (flags & SVC_CHANGE_OUTBOX) != 0;
	int rc = 0;
	struct stage sg = { .now = (long long)time(NULL),
	                    .small = n <= URGENT_MAX && !(flags & SVC_CHANGE_BULK) };
	hd_id left[URGENT_MAX]; /* the devices of a small change not staged */
	size_t nleft = 0;

	if (sg.small && st != NULL) {
		pthread_mutex_lock(&r->mu);
		rules_copy(r, &sg.ru);
		pthread_mutex_unlock(&r->mu);
	}
	/* in the service's transaction; without a store (st NULL) the rows
	 * stay version 0: the engine fills them */
	if (outbox && st == NULL)
		return -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		const struct hd_dev *d = st != NULL ? world_dev(w, devs[i]) : NULL;
		bool staged = false;

		if (d != NULL)
			rc = note_one(r, w, st, d, outbox,
			              !forced && !idset_has(changed, d->id), &sg, &staged);
		if (sg.small && !staged)
			left[nleft++] = devs[i];
		else if (staged && tl_send.r == r)
			tl_send.staged = true;
	}
	pthread_mutex_lock(&r->mu);
	r->kicked = true;
	if (r->next_due == 0 || r->next_due > sg.now)
		r->next_due = sg.now;
	add_urgent(r, left, nleft);
	if (r->move_stamp == 0)
		r->move_stamp = metrics_move_stamp(); /* 0 unless a *30 on this thread */
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void
resync_wake(struct resync *r)
{
	if (tl_send.r == r && tl_send.staged) {
		/* woken now, the engine would scan and transmit on the other
		 * CPU while this thread sends: it is woken after that */
		tl_send.staged = false;
		tl_send.owed = true;
		return;
	}
	wake(r);
}

void
resync_send_ahead(struct resync *r)
{
	tl_send.r = r;
	tl_send.staged = tl_send.owed = false;
}

void
resync_send_ready(struct resync *r)
{
	bool owed = r != NULL && tl_send.r == r && tl_send.owed;

	if (r != NULL && tl_send.r == r)
		memset(&tl_send, 0, sizeof(tl_send));
	/* the engine thread arms the new transactions' timers and records
	 * their attempts */
	if (r != NULL && (send_ready(r, LLONG_MAX) || owed))
		wake(r);
}


/* src (NULL: "") into dst of size n, cut to fit (as snprintf "%s", at a
 * fraction of its cost: under r->mu, once per fetch that is news). */
static void
copy_cut(char *dst, size_t n, const char *src)
{
	size_t l = src != NULL ? strnlen(src, n - 1) : 0;

	memcpy(dst, src != NULL ? src : "", l);
	dst[l] = '\0';
}

void
resync_on_fetch(void *arg, long long dev, unsigned long long version, const char *source,
                const char *user_agent)
{
	struct resync *r = arg;
	bool queue, first;

	/* the publisher passes on news only (another version, address or
	 * User-Agent than the last fetch, or a fetch a resync waits for):
	 * each is recorded in the store and may confirm a resync */
	pthread_mutex_lock(&r->mu);
	queue = true;
	/* two wake-ups per batch: the fetch that finds the queue empty
	 * (the thread records it FETCH_WAIT_MS later) and the one that
	 * fills a batch (at a boot storm every first fetch is news: a
	 * write and a wake-up each, before) */
	first = r->nfq == 0 || r->nfq + 1 == FETCH_BATCH;
	if (r->nfq == 0)
		r->fq_since_ms = notify_now_ms();
	if (r->nfq < FETCHQ_MAX) {
		if (r->nfq == r->capfq) {
			size_t cap = r->capfq ? r->capfq * 2 : 64;
			struct fetchev *v = realloc(r->fq, cap * sizeof(*v));

			if (v == NULL) {
				queue = false;
			} else {
				r->fq = v;
				r->capfq = cap;
			}
		}
		if (queue) {
			struct fetchev *fe = &r->fq[r->nfq++];

			fe->dev = dev;
			fe->version = version;
			/* copies of what the store records; cut to fit */
			copy_cut(fe->source, sizeof(fe->source), source);
			copy_cut(fe->user_agent, sizeof(fe->user_agent), user_agent);
		}
	}
	pthread_mutex_unlock(&r->mu);
	if (queue && first)
		wake(r);
}

/* The registration hook (service lock held, in the registration's
 * transaction): 0, or -1 when the store failed (the service then rolls
 * the registration back whole: a row is never synced without its event). */
static int
on_registration(void *arg, const struct world *w, struct store *st,
                const struct svc_registration *reg, long long now)
{
	struct resync *r = arg;
	struct store_devcontact prev, dc;
	struct store_resync row;
	struct resync_reg_in in = { 0 };
	struct vendor_ua ua;
	const struct hd_dev *d;
	enum resync_how how;
	char user[128], host[256];
	int port, n, rc;

	if (reg->sip_user == NULL || reg->contact == NULL ||
	    resync_parse_uri(reg->contact, user, sizeof(user), host, sizeof(host), &port) != 0)
		return 0;
	memset(&dc, 0, sizeof(dc));
	n = strchr(host, ':') ? snprintf(dc.addr, sizeof(dc.addr), "[%s]:%d", host, port ? port : 5060)
	                      : snprintf(dc.addr, sizeof(dc.addr), "%s:%d", host, port ? port : 5060);
	if (n < 0 || (size_t)n >= sizeof(dc.addr))
		return 0;
	if (reg->expires == 0) {
		if (store_devcontact_forget(st, reg->sip_user, dc.addr) != 0) {
			log_warn("resync: %s", store_errmsg(st));
			return -1;
		}
		return 0;
	}
	if (vendor_parse_user_agent(reg->user_agent ? reg->user_agent : "", &ua) == NULL)
		memset(&ua, 0, sizeof(ua));
	if ((rc = store_devcontact_by_addr(st, dc.addr, &prev)) < 0)
		return -1;
	if (rc != 1)
		memset(&prev, 0, sizeof(prev));
	in.sip_user = reg->sip_user;
	in.ua_mac = ua.mac;
	in.addr_dev = prev.dev;
	in.addr_prev_user = prev.dev ? prev.sip_user : NULL;
	if ((d = resync_reg_device(w, &in, &how)) == NULL)
		return 0;
	dc.dev = d->id;
	if ((size_t)snprintf(dc.sip_user, sizeof(dc.sip_user), "%s", reg->sip_user) >=
	        sizeof(dc.sip_user) ||
	    (size_t)snprintf(dc.contact, sizeof(dc.contact), "%s", reg->contact) >=
	        sizeof(dc.contact) ||
	    (size_t)snprintf(dc.source, sizeof(dc.source), "%s", reg->source ? reg->source : "") >=
	        sizeof(dc.source) ||
	    (size_t)snprintf(dc.call_id, sizeof(dc.call_id), "%s",
	                     reg->call_id ? reg->call_id : "") >= sizeof(dc.call_id))
		return 0;
	(void)snprintf(dc.how, sizeof(dc.how), "%s", resync_how_name(how));
	dc.expires_at = now + (reg->expires > 0 ? reg->expires : 3600);
	dc.at = now;
	if (store_devcontact_put(st, &dc) != 0) {
		log_warn("resync: contact of %s not recorded: %s", d->mac, store_errmsg(st));
		return -1;
	}
	log_debug("resync: %s registered for device %s (by %s)", reg->sip_user, d->mac, dc.how);
	if ((rc = store_resync_get(st, d->id, &row)) != 1)
		return rc < 0 ? -1 : 0;
	if (resync_confirm_registration(&row, reg->sip_user, resync_expected_user(w, d), how)) {
		/* the row and its event together, or the registration fails */
		if (put_row(st, &row) != 0 ||
		    dev_event(st, "resync.synced", d->org, d->mac,
		              json_pack("{s:I, s:s, s:s}", "version", (json_int_t)row.version, "via",
		                        "registration", "sip_user", reg->sip_user),
		              now) != 0)
			return -1;
		log_info("resync: %s re-registered as %s: synced", d->mac, reg->sip_user);
	} else if ((resync_state_is(&row, "pending") || resync_state_is(&row, "notified")) &&
	           strcmp(row.last_result, "error: no target") == 0) {
		/* it can be reached now */
		row.next_at = now;
		if (put_row(st, &row) != 0)
			return -1;
		pthread_mutex_lock(&r->mu);
		r->kicked = true;
		pthread_mutex_unlock(&r->mu);
		wake(r);
	}
	return 0;
}

/* ---- life cycle --------------------------------------------------------- */

static void
apply_config(struct resync *r, const struct hd_config *cfg)
{
	const char *const *ev = (const char *const *)cfg->notify.v;

	pthread_mutex_lock(&r->mu);
	r->pol.timeout_s = cfg->sip.sync_timeout;
	r->pol.retries = cfg->sip.sync_retries;
	r->max_pending = cfg->sip.notify_max_pending;
	for (size_t i = 0; i < CFG_PROFILES_MAX; i++)
		(void)snprintf(r->events[i], sizeof(r->events[i]), "%s", ev[i] ? ev[i] : "");
	/* more than RESYNC_NETS_MAX networks: the first ones (fewer targets) */
	r->nnets = cfg->sip.notify_networks.n < RESYNC_NETS_MAX ? cfg->sip.notify_networks.n
	                                                        : RESYNC_NETS_MAX;
	if (r->nnets > 0)
		memcpy(r->net_v, cfg->sip.notify_networks.v, r->nnets * sizeof(r->net_v[0]));
	pthread_mutex_unlock(&r->mu);
}

void
resync_reconfigure(struct resync *r, const struct hd_config *cfg)
{
	if (r == NULL)
		return;
	apply_config(r, cfg);
	pthread_mutex_lock(&r->mu);
	r->kicked = true;
	pthread_mutex_unlock(&r->mu);
	wake(r);
}

struct startup {
	struct resync *r;
	struct store_resync *rows;
	size_t n, cap;
	long long now;
	int due;
};

static int
start_row(const struct store_resync *row, void *arg)
{
	struct startup *su = arg;

	if (su->n == su->cap) {
		size_t cap = su->cap ? su->cap * 2 : 64;
		struct store_resync *v = realloc(su->rows, cap * sizeof(*v));

		if (v == NULL)
			return 1;
		su->rows = v;
		su->cap = cap;
	}
	su->rows[su->n++] = *row;
	return 0;
}

/* Every pending or notified row is due now: what a crash or a stop left
 * is sent at once (lock held).  Only those rows are read (the synced
 * ones, almost every phone's, are not: store_resync_owed_each). */
static int
startup_locked(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct startup *su = arg;

	(void)w;
	(void)chg;
	if (store_resync_owed_each(st, start_row, su) != 0)
		return -1;
	for (size_t i = 0; i < su->n; i++) {
		struct store_resync *row = &su->rows[i];

		if (row->version == 0)
			row->version = pub_version(su->r->pub, row->dev);
		row->next_at = su->now;
		su->due++;
		if (put_row(st, row) != 0)
			return -1;
	}
	return 0;
}

static int
free_one(void *val, void *arg)
{
	(void)arg;
	free(val);
	return 0;
}

struct resync *
resync_new(const struct hd_config *cfg, struct svc *svc, struct pub *pub, char *err,
           size_t errlen)
{
	struct resync *r = calloc(1, sizeof(*r));
	struct notify_opts no = { 0 };
	struct startup su = { 0 };
	char host[256];
	int port;

	if (r == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	r->wake[0] = r->wake[1] = -1;
	pthread_mutex_init(&r->mu, NULL);
	lockorder_register(&r->mu, LOCK_RESYNC, "resync");
	pthread_mutex_init(&r->smu, NULL);
	lockorder_register(&r->smu, LOCK_RESYNC_SEND, "resync sender");
	r->svc = svc;
	r->pub = pub;
	apply_config(r, cfg);
	if (cfg_hostport_parse(cfg->sip.bind, host, sizeof(host), &port) != 0) {
		hd_seterr(err, errlen, "[sip] bind: expected ip:port");
		goto fail;
	}
	no.bind_host = host;
	no.bind_port = port;
	no.contact_host = cfg->sip.contact_host;
	no.outbound_proxy = cfg->sip.outbound_proxy;
	no.t1_ms = cfg->sip.t1_ms;
	no.timer_f_ms = cfg->sip.timer_f_ms;
	no.done = on_done;
	no.done_arg = r;
	if ((r->nt = notify_new(&no, err, errlen)) == NULL)
		goto fail;
	if (pipe2(r->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		hd_seterr(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	su.r = r;
	su.now = (long long)time(NULL);
	if (svc_transact(svc, "resync start-up", startup_locked, NULL, &su) != 0) {
		hd_seterr(err, errlen, "cannot read the resync outbox");
		free(su.rows);
		goto fail;
	}
	free(su.rows);
	r->kicked = su.due > 0;
	if (su.due > 0)
		log_info("resync: %d device(s) still owed a NOTIFY", su.due);
	svc_set_registration_hook(svc, on_registration, r);
	if (pthread_create(&r->th, NULL, engine_main, r) != 0) {
		svc_set_registration_hook(svc, NULL, NULL);
		hd_seterr(err, errlen, "cannot start the resync thread");
		goto fail;
	}
	r->started = true;
	log_info("resync: NOTIFYs from %s port %d", host, notify_local_port(r->nt));
	return r;
fail:
	resync_free(r);
	return NULL;
}

void
resync_free(struct resync *r)
{
	if (r == NULL)
		return;
	if (r->started) {
		svc_set_registration_hook(r->svc, NULL, NULL);
		atomic_store(&r->stop, true);
		wake(r);
		pthread_join(r->th, NULL);
	}
	notify_free(r->nt);
	if (r->wake[0] >= 0)
		close(r->wake[0]);
	if (r->wake[1] >= 0)
		close(r->wake[1]);
	(void)idmap_each(&r->inf, free_one, NULL);
	idmap_free(&r->inf);
	free(r->fq);
	free(r->urgent);
	free(r->res);
	free(r->sent);
	if (r->ready != NULL)
		sodium_memzero(r->ready, r->nready * sizeof(*r->ready));
	free(r->ready);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->smu);
	free(r);
}

bool
resync_alive(struct resync *r, long long max_age_ms)
{
	long long beat;

	if (r == NULL || !r->started)
		return false;
	beat = atomic_load(&r->beat_ms);
	return beat != 0 && notify_now_ms() - beat <= max_age_ms;
}

int
resync_state_counts(struct svc *s, size_t counts[RESYNC_COUNT_N])
{
	size_t rows = 0, devs;

	_Static_assert(RESYNC_COUNT_N == 1 + STORE_RESYNC_STATES,
	               "RESYNC_COUNT_PENDING.. follow the store's states, in its order");
	memset(counts, 0, RESYNC_COUNT_N * sizeof(*counts));
	if (svc_resync_counts(s, counts + RESYNC_COUNT_PENDING, &devs) != 0)
		return -1;
	for (int i = RESYNC_COUNT_PENDING; i < RESYNC_COUNT_N; i++)
		rows += counts[i];
	counts[RESYNC_COUNT_NONE] = devs > rows ? devs - rows : 0;
	return 0;
}
