/*
 * test_resync_engine.c -- the resync engine's side of the application
 * layer (src/resync.h: the change hook's resync_note, the registration
 * hook, the fetch confirmation) wired to a service on an in-memory store
 * with the store's fault hook (tests/faults.h), each operation run once
 * per store step with that step failing.  Besides the checks every fault
 * test makes, a device's resync row and the audit trail agree: a row is
 * synced only with its "resync.synced" event, a change's row is never
 * lost, and the version a row waits for is the one published; the
 * engine's scan keeps every due row it tried, each with its event, or
 * none (one transaction).
 * The pure rules are tested in test_resync.c; NOTIFYs on the wire end to
 * end (tests/e2e/test_resync.py).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "faults.h"

#define DEE_MAC "001565000103"   /* Dee's own phone, parked while she visits */

static const char *const engine_ini =
    "[pbx]\n"
    "token = engine-test-token-0123456789abcdef\n"
    "[sip]\n"
    "bind = 127.0.0.1:0\n"
    "sync_timeout = 3600\n";

/* Starts the engine on f (the change hook then kicks it). */
static void
engine_start(struct fx *f)
{
	char err[256];
	struct hd_config *cfg = cfg_load_string("engine.ini", engine_ini, err, sizeof(err));

	cr_assert_not_null(cfg, "%s", err);
	f->rs = resync_new(cfg, f->svc, f->pub, err, sizeof(err));
	cr_assert_not_null(f->rs, "resync_new: %s", err);
	cfg_free(cfg);
}

struct row_q {
	const char *mac;
	struct store_resync row;
	int found;
	size_t synced_events;
};

static int
count_event(const struct store_event *ev, void *arg)
{
	(void)ev;
	((struct row_q *)arg)->synced_events++;
	return 0;
}

static int
row_locked(const struct world *w, struct store *st, void *arg)
{
	struct row_q *q = arg;
	const struct hd_dev *d = world_dev_by_mac(w, q->mac);
	struct store_event_filter ef = { .type = "resync.synced", .device = q->mac };

	q->found = d != NULL ? store_resync_get(st, d->id, &q->row) : 0;
	q->synced_events = 0;
	cr_assert_geq(store_events_list(st, &ef, count_event, q), 0);
	return 0;
}

static struct row_q
row_of(struct fx *f, const char *mac)
{
	struct row_q q = { .mac = mac };

	(void)svc_locked(f->svc, row_locked, &q);
	return q;
}

/* The engine's first round after a change: it found no target for the
 * phone (none registered, fetched or configured).  Waits for it, so the
 * operation under test runs with the engine idle. */
static void
engine_settle(struct fx *f, const char *mac)
{
	for (int i = 0; i < 6000; i++) { /* 30 s */
		struct row_q q = row_of(f, mac);

		if (q.found == 1 && q.row.last_result[0] != '\0' && q.row.version != 0)
			return;
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	cr_assert_fail("the engine never tried %s", mac);
}

/* Dee's row and the audit trail agree. */
static void
check_dee(struct fx *f, const char *label)
{
	struct row_q q = row_of(f, DEE_MAC);

	cr_assert_eq(q.found, 1, "%s: the row of the changed phone is gone", label);
	cr_assert_neq(q.row.version, 0, "%s: the row waits for no version", label);
	cr_assert_eq(q.row.version, pub_version(f->pub, q.row.dev),
	             "%s: the row waits for version %llu, %llu is published", label,
	             q.row.version, pub_version(f->pub, q.row.dev));
	if (strcmp(q.row.state, "synced") == 0)
		cr_assert_eq(q.synced_events, 1, "%s: synced with %zu resync.synced events", label,
		             q.synced_events);
	else
		cr_assert_eq(q.synced_events, 0, "%s: %s with a resync.synced event", label,
		             q.row.state);
}

/* ---- a move: the outbox row and the version it waits for ------------------- */

static void
check_dee_settled(struct fx *f, const char *label)
{
	engine_settle(f, DEE_MAC);
	check_dee(f, label);
}

static int
prep_engine(struct fx *f, void *arg)
{
	(void)arg;
	engine_start(f);
	f->extra = NULL;
	return SVC_OK;
}

static int
op_move(struct fx *f, void *arg)
{
	struct svc_star30_req rq = { .caller = "acme-park3", .digits = "104", .code = FX_CODE };
	struct svc_star30_res res;
	int rc = svc_star30(f->svc, &rq, &res);

	(void)arg;
	if (rc == SVC_OK && res.result != VIRT_ACCEPTED)
		return FX_WRONG + (int)res.result;
	/* when the move committed, its row must be there, waiting for what
	 * was published (the engine may have to fill the version) */
	if (rc == SVC_OK)
		f->extra = check_dee_settled;
	return rc;
}

Test(resync_engine_faults, move_queues_the_phone)
{
	fx_faults_world("*30 104 with the engine", prep_engine, op_move, NULL, true);
}

/* ---- the registration that confirms it -------------------------------------- */

static int
prep_moved(struct fx *f, void *arg)
{
	(void)arg;
	engine_start(f);
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	engine_settle(f, DEE_MAC);
	f->extra = check_dee;
	return SVC_OK;
}

static int
op_register(struct fx *f, void *arg)
{
	/* Dee's phone, now carrying Eve (104), registers as acme104: its
	 * User-Agent names its MAC, which proves it is that phone */
	struct svc_registration reg = {
		.sip_user = "acme104",
		.contact = "sip:acme104@127.0.0.1:5999",
		.source = "127.0.0.1:5999",
		.user_agent = "Yealink SIP-T46S 66.86.0.15 00:15:65:00:01:03",
		.call_id = "reg-1@127.0.0.1",
		.expires = 3600,
	};
	char err[256];

	(void)arg;
	return svc_registration(f->svc, &reg, err, sizeof(err));
}

Test(resync_engine_faults, registration_confirms_the_move)
{
	fx_faults_world("registration of acme104 on Dee's phone", prep_moved, op_register, NULL,
	                false);
}

/* ---- the fetch that confirms it ---------------------------------------------- */

static int
steps_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	*(long *)arg = store_fault_steps(st);
	return 0;
}

/* Dee's row as the move left it (read before the fault is armed). */
static int
prep_fetch(struct fx *f, void *arg)
{
	prep_moved(f, NULL);
	*(struct row_q *)arg = row_of(f, DEE_MAC);
	return SVC_OK;
}

static int
op_fetch(struct fx *f, void *arg)
{
	const struct row_q *q = arg;
	long steps = 0, last = -1;
	int still = 0;

	/* the phone fetched the version its row waits for: the engine's
	 * thread records it and confirms the row, in its own transaction.
	 * Done when the thread's store steps stop (watched without a step
	 * of ours, which would count). */
	resync_on_fetch(f->rs, q->row.dev, q->row.version, "127.0.0.1", "Yealink SIP-T46S");
	for (int i = 0; i < 6000 && still < 40; i++) { /* 30 s; quiet for 200 ms */
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
		(void)svc_locked(f->svc, steps_locked, &steps);
		still = steps > 0 && steps == last ? still + 1 : 0;
		last = steps;
	}
	cr_assert_eq(still, 40, "the engine never recorded the fetch");
	return SVC_OK;
}

/* Without a fault the fetch confirms the row (the engine looks rows up
 * only while one is open: store_resync_any_open), and a fetch of a phone
 * whose row is synced changes nothing. */
Test(resync_engine, a_fetch_of_the_version_waited_for_confirms_the_row)
{
	struct fx *f = fx_new();
	struct row_q q, after;

	prep_fetch(f, &q);
	cr_assert_eq(q.found, 1);
	cr_assert_str_neq(q.row.state, "synced");
	fx_arm(f, LONG_MAX); /* op_fetch watches the engine's store steps */
	cr_assert_eq(op_fetch(f, &q), SVC_OK);
	after = row_of(f, DEE_MAC);
	cr_assert_str_eq(after.row.state, "synced");
	cr_assert_eq(after.synced_events, 1);
	cr_assert_eq(op_fetch(f, &q), SVC_OK);
	(void)fx_disarm(f);
	after = row_of(f, DEE_MAC);
	cr_assert_str_eq(after.row.state, "synced");
	cr_assert_eq(after.synced_events, 1, "a second fetch confirms nothing more");
	fx_free(f);
}

Test(resync_engine_faults, fetch_confirms_the_move)
{
	struct row_q q;

	fx_faults_world("fetch of Dee's phone", prep_fetch, op_fetch, &q, false);
}

/* ---- a scan: its rows and their events, all or nothing ------------------------ */

/* The devices of the fixture (organization acme). */
static const char *const scan_macs[] = { "001565000100", "0004f2000101", "00605c000102",
	                                  DEE_MAC };
#define NSCAN (sizeof(scan_macs) / sizeof(scan_macs[0]))

struct scan_q {
	long long since;               /* events after this id */
	struct row_q rows[NSCAN];
	size_t failed[NSCAN];          /* resync.failed events since `since` */
};

static long long scan_mark; /* the last event id before the operation */

static int
last_event(const struct store_event *ev, void *arg)
{
	*(long long *)arg = ev->id;
	return 1;
}

static int
scan_locked_q(const struct world *w, struct store *st, void *arg)
{
	struct scan_q *q = arg;
	long n;

	for (size_t i = 0; i < NSCAN; i++) {
		const struct hd_dev *d = world_dev_by_mac(w, scan_macs[i]);
		struct store_event_filter ef = { .type = "resync.failed", .device = scan_macs[i],
		                                 .since_id = q->since };

		cr_assert_not_null(d);
		q->rows[i].found = store_resync_get(st, d->id, &q->rows[i].row);
		cr_assert_geq(q->rows[i].found, 0);
		n = tu_events(st, &ef);
		cr_assert_geq(n, 0);
		q->failed[i] = (size_t)n;
	}
	return 0;
}

static struct scan_q
scan_rows(struct fx *f)
{
	struct scan_q q = { .since = scan_mark };

	(void)svc_locked(f->svc, scan_locked_q, &q);
	return q;
}

/* How many of the rows were tried since the resync (attempts counted). */
static size_t
scan_tried(const struct scan_q *q)
{
	size_t n = 0;

	for (size_t i = 0; i < NSCAN; i++)
		if (q->rows[i].found == 1 && q->rows[i].row.attempts > 0)
			n++;
	return n;
}

static int
mark_locked(const struct world *w, struct store *st, void *arg)
{
	struct store_event_filter ef = { .newest_first = true, .limit = 1 };

	(void)w;
	*(long long *)arg = 0;
	cr_assert_geq(store_events_list(st, &ef, last_event, arg), 0);
	return 0;
}

/* The engine running, done with the rows the fixture's moves queued:
 * each of those was tried once (no phone has an address: "no target"). */
static int
prep_scan(struct fx *f, void *arg)
{
	(void)arg;
	engine_start(f);
	for (int i = 0;; i++) { /* 30 s */
		struct scan_q q = { .since = LLONG_MAX / 2 };
		size_t rows = 0;

		(void)svc_locked(f->svc, scan_locked_q, &q);
		for (size_t k = 0; k < NSCAN; k++)
			rows += q.rows[k].found == 1;
		if (rows > 0 && scan_tried(&q) == rows)
			break;
		cr_assert_lt(i, 6000, "the engine never tried the fixture's rows");
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	(void)svc_locked(f->svc, mark_locked, &scan_mark);
	f->extra = NULL;
	return SVC_OK;
}

/*
 * After the resync of every phone: the engine's scan of the four due rows
 * is one transaction.  Right after the operation the rows were all tried
 * or none was; once the engine is done, each was tried once, with exactly
 * one resync.failed event per attempt (a row never records an attempt
 * whose event was lost, nor the other way round).
 */
static void
check_scan(struct fx *f, const char *label)
{
	struct scan_q q = scan_rows(f);
	size_t tried = scan_tried(&q);

	cr_assert(tried == 0 || tried == NSCAN, "%s: the scan kept %zu of %zu rows", label, tried,
	          NSCAN);
	for (int i = 0; tried < NSCAN; i++) { /* a scan rolled back is run again */
		cr_assert_lt(i, 6000, "%s: the engine never tried every row", label);
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
		q = scan_rows(f);
		tried = scan_tried(&q);
	}
	for (size_t i = 0; i < NSCAN; i++) {
		const struct store_resync *r = &q.rows[i].row;

		cr_assert_eq(r->attempts, 1, "%s: %s: %d attempts", label, scan_macs[i], r->attempts);
		cr_assert_str_eq(r->last_result, "error: no target", "%s: %s", label, scan_macs[i]);
		cr_assert_eq(q.failed[i], (size_t)r->attempts,
		             "%s: %s: %d attempts recorded, %zu resync.failed events", label,
		             scan_macs[i], r->attempts, q.failed[i]);
	}
}

static int
op_resync_all(struct fx *f, void *arg)
{
	struct svc_result res = { 0 };
	size_t count = 0;
	long steps = 0, last = -1;
	int still = 0, rc;

	(void)arg;
	if ((rc = svc_resync(f->svc, NULL, "acme", &count, &res)) != SVC_OK)
		return rc;
	if (count != NSCAN)
		return FX_WRONG;
	f->extra = check_scan;
	/* the engine's thread scans the rows in its own transaction: done
	 * when its store steps stop (watched without a step of ours) */
	for (int i = 0; i < 6000 && still < 40; i++) { /* 30 s; quiet for 200 ms */
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
		(void)svc_locked(f->svc, steps_locked, &steps);
		still = steps == last ? still + 1 : 0;
		last = steps;
	}
	cr_assert_eq(still, 40, "the engine never stopped scanning");
	return SVC_OK;
}

Test(resync_engine_faults, a_scan_is_all_or_nothing)
{
	fx_faults_world("resync of every phone, then the engine's scan", prep_scan, op_resync_all,
	                NULL, false);
}

/* ---- a move's first NOTIFY: decided in the move's transaction ----------------- */

struct hold {
	int fd;
	char got[4096];
	ssize_t len;
};

/* Holds the service lock while it waits (5 s at most) for a datagram. */
static int
hold_locked(const struct world *w, struct store *st, void *arg)
{
	struct hold *h = arg;
	struct pollfd p = { h->fd, POLLIN, 0 };

	(void)w;
	(void)st;
	h->len = -1;
	if (poll(&p, 1, 5000) == 1)
		h->len = recv(h->fd, h->got, sizeof(h->got) - 1, 0);
	if (h->len >= 0)
		h->got[h->len] = '\0';
	return 0;
}

/* Call-IDs of NOTIFYs seen by a test, each once. */
#define IDS_MAX 16
struct ids {
	char v[IDS_MAX][128];
	size_t n;
};

/* Adds the Call-ID of msg, a NOTIFY (else nothing), unless known. */
static void
ids_add(struct ids *ids, const char *msg)
{
	const char *c;
	char id[128] = "";

	if (strncmp(msg, "NOTIFY ", 7) != 0 || (c = strstr(msg, "\nCall-ID: ")) == NULL)
		return;
	(void)sscanf(c + 10, "%127[^\r\n]", id);
	for (size_t i = 0; i < ids->n; i++)
		if (strcmp(ids->v[i], id) == 0)
			return;
	cr_assert_lt(ids->n, IDS_MAX, "too many NOTIFYs");
	memcpy(ids->v[ids->n++], id, sizeof(id));
}

/* The Call-IDs of the NOTIFYs that reach fd within ms milliseconds
 * (retransmissions of one transaction count once) go into ids; their
 * count after. */
static size_t
notifies_within(int fd, int ms, struct ids *ids)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char buf[4096];

	while (poll(&p, 1, ms) == 1) {
		ssize_t len = recv(fd, buf, sizeof(buf) - 1, 0);

		if (len <= 0)
			break;
		buf[len] = '\0';
		ids_add(ids, buf);
	}
	return ids->n;
}

/* Dee's phone, parked, registered at a socket of ours (returned) with the
 * engine started and idle. */
static int
dee_registered(struct fx *f)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char contact[96], source[48], err[256];
	struct ids ids = { .n = 0 };
	struct svc_registration reg = {
		.sip_user = "acme-park3",
		.user_agent = "Yealink SIP-T46S 66.86.0.15 00:15:65:00:01:03",
		.call_id = "reg-park3@127.0.0.1",
		.expires = 3600,
	};

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(contact, sizeof(contact), "sip:acme-park3@127.0.0.1:%d", ntohs(a.sin_port));
	snprintf(source, sizeof(source), "127.0.0.1:%d", ntohs(a.sin_port));
	reg.contact = contact;
	reg.source = source;
	engine_start(f);
	engine_settle(f, DEE_MAC); /* the fixture's own moves, tried without a target */
	cr_assert_eq(svc_registration(f->svc, &reg, err, sizeof(err)), SVC_OK, "%s", err);
	(void)notifies_within(fd, 300, &ids); /* whatever the registration caused */
	return fd;
}

/* The engine records the attempt of the NOTIFY in Dee's row, as a scan
 * would, and sends no second NOTIFY for it: none with another Call-ID
 * than those in ids (the one received, earlier ones retransmitted). */
static void
recorded_once(struct fx *f, int fd, struct ids *ids)
{
	size_t known = ids->n;
	struct row_q q;

	for (int i = 0;; i++) { /* 30 s */
		q = row_of(f, DEE_MAC);
		if (q.found == 1 && q.row.attempts > 0)
			break;
		cr_assert_lt(i, 6000, "the engine never recorded the attempt");
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	cr_assert_str_eq(q.row.state, "notified");
	cr_assert_eq(q.row.attempts, 1);
	cr_assert_eq(q.row.version, pub_version(f->pub, q.row.dev));
	/* retransmissions of the same NOTIFY only (the phone never answers) */
	cr_assert_eq(notifies_within(fd, 700, ids), known, "a second NOTIFY for the change");
}

/* Reads the datagram waiting on fd: a NOTIFY to Dee's phone (parked as
 * acme-park3), whose Call-ID it adds to ids. */
static void
dee_notified(int fd, struct ids *ids)
{
	char got[4096];
	ssize_t len = recv(fd, got, sizeof(got) - 1, 0);

	cr_assert_gt(len, 0);
	got[len] = '\0';
	cr_assert(strncmp(got, "NOTIFY sip:acme-park3@127.0.0.1:", 32) == 0, "got: %.80s", got);
	ids_add(ids, got);
}

/*
 * Dee's phone, parked and registered at a socket of ours, takes Eve (*30
 * 104).  Its NOTIFY was decided in the move's own transaction: it reaches
 * the phone while this thread holds the service lock right after the move
 * (an engine that had to take the lock to scan its row first could not
 * send it).  The engine then records the attempt in the row, as a scan
 * would, and sends no second NOTIFY for it.
 */
Test(resync_engine, a_moves_first_notify_is_sent_without_the_service_lock)
{
	struct fx *f = fx_new();
	int fd = dee_registered(f);
	struct hold h = { .fd = fd };
	struct ids ids = { .n = 0 };

	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	(void)svc_locked(f->svc, hold_locked, &h);
	cr_assert_gt(h.len, 0, "no NOTIFY reached Dee's phone while the service lock was held");
	cr_assert(strncmp(h.got, "NOTIFY sip:acme-park3@127.0.0.1:", 32) == 0, "got: %.80s", h.got);
	ids_add(&ids, h.got);
	recorded_once(f, fd, &ids);
	fx_free(f);
	close(fd);
}

/*
 * The thread that moves Dee's phone said it sends its change's first
 * NOTIFYs itself (resync_send_ahead, as the daemon's HTTP thread does for
 * each request).  Its unlock leaves the engine asleep: woken then, the
 * engine would send the NOTIFY READY_GRACE_MS later and scan on the other
 * CPU while this thread sends.  The NOTIFY leaves with this thread's
 * resync_send_ready, and the engine, woken by it, records the attempt
 * once.
 */
Test(resync_engine, a_thread_that_sends_its_notify_wakes_the_engine_after_it)
{
	struct fx *f = fx_new();
	int fd = dee_registered(f);
	struct pollfd p = { fd, POLLIN, 0 };
	struct ids ids = { .n = 0 };

	resync_send_ahead(f->rs);
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	cr_assert_eq(poll(&p, 1, 200), 0,
	             "the engine sent the move's NOTIFY: the unlock woke it");
	resync_send_ready(f->rs);
	cr_assert_eq(poll(&p, 1, 50), 1, "this thread's send sent nothing");
	dee_notified(fd, &ids);
	recorded_once(f, fd, &ids);
	fx_free(f);
	close(fd);
}

struct slow {
	int ms;
	hd_id dev[3];
};

/* Arms (or disarms) the slow disk for the engine, and finds three phones
 * whose fetches give it store work. */
static int
slow_locked(const struct world *w, struct store *st, void *arg)
{
	static const char *const macs[] = { "001565000100", "0004f2000101", "00605c000102" };
	struct slow *sl = arg;

	store_fault_slow(st, sl->ms);
	for (size_t i = 0; i < 3; i++) {
		const struct hd_dev *d = world_dev_by_mac(w, macs[i]);

		cr_assert_not_null(d, "no device %s in the fixture", macs[i]);
		sl->dev[i] = d->id;
	}
	return 0;
}

/*
 * The engine is inside a transaction whose writes wait for the disk (each
 * of its store steps takes 250 ms, as when the journal is busy), recording
 * fetches slice by slice, when Dee's phone takes Eve.  The move commits
 * between two slices; the thread that committed it sends its NOTIFY
 * (resync_send_ready, as the daemon's HTTP thread does once the files are
 * in place): it reaches the phone at once, not after the engine's
 * transaction.  The engine then records the attempt, once.
 */
Test(resync_engine, the_committing_thread_sends_while_the_engine_waits_for_the_disk)
{
	struct fx *f = fx_new();
	int fd = dee_registered(f);
	struct slow sl = { .ms = 250 };
	struct pollfd p = { fd, POLLIN, 0 };
	struct ids ids = { .n = 0 };

	(void)svc_locked(f->svc, slow_locked, &sl);
	for (size_t i = 0; i < 3; i++) /* a User-Agent it has not seen: news */
		resync_on_fetch(f->rs, sl.dev[i], pub_version(f->pub, sl.dev[i]), "127.0.0.9",
		                "Yealink SIP-T46S 66.86.0.99");
	nanosleep(&(struct timespec){ 0, 100000000 }, NULL); /* in its first slice */
	fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
	resync_send_ready(f->rs);
	cr_assert_eq(poll(&p, 1, 50), 1, "the NOTIFY waited for the engine's transaction");
	dee_notified(fd, &ids);
	sl.ms = 0;
	(void)svc_locked(f->svc, slow_locked, &sl);
	recorded_once(f, fd, &ids);
	fx_free(f);
	close(fd);
}

struct rollback {
	struct resync *rs;
	bool armed;
};

/* Under the service lock, right after a move of Dee's phone: its NOTIFY,
 * ready, is taken and sent, as the committing thread does; the engine,
 * woken to record its attempt, begins a scan (which copies the list of
 * attempts to record) and waits for this lock; then the scan's first
 * store step is armed to fail.  Not armed when the engine sent the
 * NOTIFY (it sends what waited 3 ms) and recorded its attempt before
 * this thread had the lock: nothing is left to record. */
static int
send_then_arm_locked(const struct world *w, struct store *st, void *arg)
{
	struct rollback *rb = arg;
	struct store_resync row;

	resync_send_ready(rb->rs); /* first: before the engine's scan copies the list */
	rb->armed = store_resync_get(st, world_dev_by_mac(w, DEE_MAC)->id, &row) == 1 &&
	            row.attempts == 0;
	if (!rb->armed)
		return 0;
	nanosleep(&(struct timespec){ 0, 200000000 }, NULL);
	store_fault_at(st, 1);
	return 0;
}

/*
 * The scan that was to record the attempt of a move's NOTIFY, sent by the
 * committing thread, rolls back (its first store step fails): the attempt
 * is kept for the next scan, which records it, once, and no second NOTIFY
 * is sent.  The phone moves (*30 104, then a bare *30 sends Eve home, and
 * so on) until three such scans were armed: the scan that fails is the
 * one that copied the attempt only when the engine begins it after this
 * thread took the NOTIFY (otherwise a scan begun earlier fails, and the
 * attempt waits in the list regardless); a move whose attempt the engine
 * recorded before the fault could be armed does not count.
 */
Test(resync_engine, a_scan_rolled_back_keeps_the_attempts_to_record)
{
	struct fx *f = fx_new();
	int fd = dee_registered(f);
	struct rollback rb = { .rs = f->rs };
	struct ids ids = { .n = 0 };
	int armed = 0;

	for (int try = 0; armed < 3; try++) {
		long steps = 0;

		cr_assert_lt(try, 10, "the engine recorded the attempt first, %d times", try - armed);
		if (try % 2 == 0)
			fx_star30_ok(f, "acme-park3", "104", FX_CODE, VIRT_ACCEPTED);
		else
			fx_star30_ok(f, "acme104", NULL, NULL, VIRT_RETURNED);
		(void)svc_locked(f->svc, send_then_arm_locked, &rb);
		cr_assert_eq(notifies_within(fd, 100, &ids), (size_t)try + 1, "no NOTIFY for move %d",
		             try + 1);
		if (!rb.armed)
			continue;
		armed++;
		for (int i = 0; steps == 0; i++) { /* 30 s */
			cr_assert_lt(i, 6000, "the engine never scanned");
			nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
			(void)svc_locked(f->svc, steps_locked, &steps);
		}
		(void)fx_disarm(f);
		recorded_once(f, fd, &ids);
	}
	fx_free(f);
	close(fd);
}
