/*
 * notify.c -- resync NOTIFY client transactions (see notify.h).
 *
 * The transaction logic (notify_send, notify_input, notify_tick) takes the
 * time as an argument and sends through a notify_ops function, so it runs
 * the same against a fake clock and a fake network in tests as against
 * the real socket.  The socket edge is small: notify_new binds it,
 * sock_send/notify_recv move datagrams, notify_run_until_idle polls.
 *
 * Transactions live in a binary min-heap ordered by when each is next due
 * (a retransmission, Timer F, or a send that failed), and in a hash map
 * from the random part of their branch: a tick, the next timeout and a
 * response cost O(log n) or O(1), not a walk of every pending transaction
 * (a template change fans out to as many NOTIFYs as phones, and a phone
 * that is off keeps its transaction for Timer F, 32 s).  A finished
 * transaction leaves both before done is called, so done may start new
 * transactions while notify_tick runs.
 *
 * A transaction is dropped as soon as its final response arrives (no
 * Completed state / Timer K): over UDP that state only absorbs
 * retransmitted final responses, and an unmatched response is ignored
 * anyway (notify_input returns 0).
 *
 * Randomness (branch, From tag, Call-ID, cnonce) comes from libsodium's
 * randombytes; the message text itself is built by sip.c.
 */
#include "notify.h"

#include "errbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "hex.h"
#include "idmap.h"

#include "sip.h"
#include "wipe.h"

#define DEFAULT_T1 500
#define DEFAULT_T2 4000
#define HOST_MAX 64 /* numeric IPv6 with zone fits */

struct ntx {
	uint64_t id;
	bool proceeding;   /* a 1xx was seen: Timer E is T2 from now on */
	bool authed;       /* credentials were sent: a new challenge fails */
	bool failed;       /* transport error, reported at the next tick */
	char host[HOST_MAX];
	int port;
	struct sockaddr_storage dst; /* socket mode: where datagrams go */
	socklen_t dstlen;
	char *user, *event, *substate, *ctype, *body, *auth_user, *auth_pass;
	char *auth_realm;          /* the realm a challenge must name */
	unsigned auth_algs;
	bool auth_qop;
	char branch[40];   /* full branch, with the z9hG4bK cookie */
	char tag[24];
	char call_id[128];
	unsigned long cseq;
	char *pkt;
	size_t pktlen;
	long long start_ms;   /* notify_send */
	long long req_ms;     /* start of the current request (Timer F) */
	long long next_ms;    /* Timer E */
	int interval;
	int attempts, requests;
	long long due_ms;     /* min(next_ms, Timer F); 0 once failed */
	size_t hi;            /* index in the heap */
	char errtext[128];
};

struct notify {
	int fd;
	int family;
	struct notify_ops ops;
	bool own_socket;
	char contact_host[HOST_MAX];
	int local_port;
	char from_user[64];
	bool have_proxy;
	char proxy_host[HOST_MAX];
	int proxy_port;
	struct sockaddr_storage proxy_addr;
	socklen_t proxy_addrlen;
	int t1, t2, timer_f;
	void (*done)(void *, const struct notify_result *);
	void *done_arg;
	struct ntx **tx;      /* min-heap by due_ms */
	size_t ntx, cap;
	struct idmap by_branch; /* branch_key -> tx */
	uint64_t next_id;
};

/* ---- the heap and the branch map ---------------------------------------- */

static bool
heap_less(const struct notify *n, size_t a, size_t b)
{
	return n->tx[a]->due_ms < n->tx[b]->due_ms;
}

static void
heap_swap(struct notify *n, size_t a, size_t b)
{
	struct ntx *t = n->tx[a];

	n->tx[a] = n->tx[b];
	n->tx[b] = t;
	n->tx[a]->hi = a;
	n->tx[b]->hi = b;
}

/* Moves the element at i to its place. */
static void
heap_fix_at(struct notify *n, size_t i)
{
	while (i > 0 && heap_less(n, i, (i - 1) / 2)) {
		heap_swap(n, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n->ntx && heap_less(n, l, m))
			m = l;
		if (r < n->ntx && heap_less(n, r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(n, i, m);
		i = m;
	}
}

/* Recomputes when tx is next due and moves it to its place. */
static void
tx_due(struct notify *n, struct ntx *tx)
{
	long long f = tx->req_ms + n->timer_f;

	tx->due_ms = tx->failed ? 0 : tx->next_ms < f ? tx->next_ms : f;
	heap_fix_at(n, tx->hi);
}

/* The key of a branch this side made (cookie and 16 hex digits), or 0. */
static int64_t
branch_key(const char *branch)
{
	size_t c = strlen(SIP_BRANCH_COOKIE);
	uint64_t k = 0;

	if (strncmp(branch, SIP_BRANCH_COOKIE, c) != 0 || strlen(branch + c) != 16)
		return 0;
	for (size_t i = c; i < c + 16; i++) {
		int v = hex_value((unsigned char)branch[i]);

		if (v < 0)
			return 0;
		k = k << 4 | (uint64_t)v;
	}
	return (int64_t)k;
}



long long
notify_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills ss from a numeric address for a socket of `family` (an IPv4
 * address is mapped for an IPv6 socket).  Returns 0, or -1 when host is
 * not numeric or cannot be reached from that family. */
static int
make_addr(int family, const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *sslen)
{
	struct in_addr a4;
	struct in6_addr a6;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4) == 1) {
		if (family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)ss;

			s->sin_family = AF_INET;
			s->sin_port = htons((uint16_t)port);
			s->sin_addr = a4;
			*sslen = sizeof(*s);
			return 0;
		}
		/* ::ffff:a.b.c.d */
		memset(&a6, 0, sizeof(a6));
		a6.s6_addr[10] = 0xff;
		a6.s6_addr[11] = 0xff;
		memcpy(&a6.s6_addr[12], &a4, 4);
	} else if (inet_pton(AF_INET6, host, &a6) != 1 || family != AF_INET6) {
		return -1;
	}
	{
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		s->sin6_addr = a6;
		*sslen = sizeof(*s);
	}
	return 0;
}

static bool
is_numeric(const char *host)
{
	unsigned char b[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, b) == 1 ||
	    inet_pton(AF_INET6, host, b) == 1;
}

/* "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 literal is a
 * host without port. */
static int
parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *hend;
	char *end;
	long p = 5060;

	if (s[0] == '[') {
		hend = strchr(s, ']');
		if (hend == NULL)
			return -1;
		s++;
		colon = hend[1] == ':' ? hend + 1 : NULL;
		if (hend[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			colon = NULL; /* bare IPv6 */
		hend = colon != NULL ? colon : s + strlen(s);
	}
	if ((size_t)(hend - s) >= hostlen || hend == s)
		return -1;
	memcpy(host, s, (size_t)(hend - s));
	host[hend - s] = '\0';
	if (colon != NULL) {
		errno = 0;
		p = strtol(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || end == colon + 1 || p < 1 ||
		    p > 65535)
			return -1;
	}
	*port = (int)p;
	return is_numeric(host) ? 0 : -1;
}

/* Sends the current request of tx once.  Returns 0, or -1 with
 * tx->errtext set. */
static int
tx_send(struct notify *n, struct ntx *tx)
{
	tx->attempts++;
	if (n->own_socket) {
		const struct sockaddr_storage *to = n->have_proxy ?
		    &n->proxy_addr : &tx->dst;
		socklen_t tolen = n->have_proxy ? n->proxy_addrlen : tx->dstlen;
		ssize_t r;

		do {
			r = sendto(n->fd, tx->pkt, tx->pktlen, 0,
			    (const struct sockaddr *)to, tolen);
		} while (r < 0 && errno == EINTR);
		if (r >= 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS)
			return 0; /* a full queue is a lost datagram: Timer E */
		hd_seterr(tx->errtext, sizeof(tx->errtext), "send: %s",
		    strerror(errno));
		return -1;
	}
	if (n->ops.send(n->ops.arg, n->have_proxy ? n->proxy_host : tx->host,
	    n->have_proxy ? n->proxy_port : tx->port, tx->pkt,
	    tx->pktlen) != 0) {
		hd_seterr(tx->errtext, sizeof(tx->errtext), "send failed");
		return -1;
	}
	return 0;
}

static void
rand_hex(char *out, size_t nbytes)
{
	unsigned char r[32];

	randombytes_buf(r, nbytes);
	sodium_bin2hex(out, nbytes * 2 + 1, r, nbytes);
}

static void
tx_free(struct ntx *tx)
{
	if (tx == NULL)
		return;
	free(tx->user);
	free(tx->event);
	free(tx->substate);
	free(tx->ctype);
	free(tx->body);
	free(tx->auth_user);
	free(tx->auth_realm);
	wipe_free(tx->auth_pass);
	if (tx->pkt != NULL) {
		/* The packet may hold a digest response: wipe it too. */
		sodium_memzero(tx->pkt, tx->pktlen);
		free(tx->pkt);
	}
	free(tx);
}

/* (Re)builds tx->pkt for its current branch and CSeq with an optional
 * credentials header.  Returns 0, or -1 with err filled. */
static int
tx_build(struct notify *n, struct ntx *tx, const char *authz, bool proxy,
    char *err, size_t errlen)
{
	char buf[SIP_MAX_MSG];
	size_t len;
	struct sip_notify_req r = {
		.target_user = tx->user,
		.target_host = tx->host,
		.target_port = tx->port,
		.local_host = n->contact_host,
		.local_port = n->local_port,
		.from_user = n->from_user,
		.branch = tx->branch + strlen(SIP_BRANCH_COOKIE),
		.from_tag = tx->tag,
		.call_id = tx->call_id,
		.cseq = tx->cseq,
		.event = tx->event,
		.subscription_state = tx->substate,
		.content_type = tx->ctype,
		.body = tx->body,
		.authorization = authz,
		.proxy_authorization = proxy,
		.route_host = n->have_proxy ? n->proxy_host : NULL,
		.route_port = n->proxy_port,
	};
	char *p;

	if (sip_build_notify(&r, buf, sizeof(buf), &len, err, errlen) != 0)
		return -1;
	p = malloc(len);
	if (p == NULL) {
		sodium_memzero(buf, sizeof(buf));
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	memcpy(p, buf, len);
	sodium_memzero(buf, sizeof(buf));
	if (tx->pkt != NULL) {
		sodium_memzero(tx->pkt, tx->pktlen);
		free(tx->pkt);
	}
	tx->pkt = p;
	tx->pktlen = len;
	return 0;
}

/* Starts the current request: timers from now, first datagram. */
static void
tx_start(struct notify *n, struct ntx *tx, long long now_ms)
{
	tx->requests++;
	tx->proceeding = false;
	tx->req_ms = now_ms;
	tx->interval = n->t1;
	tx->next_ms = now_ms + n->t1;
	if (tx_send(n, tx) != 0)
		tx->failed = true;
}

/* A new branch for tx's next request, from the 8 random bytes rnd (NULL:
 * drawn here), entered in the branch map (the old one leaves it: a late
 * answer to it is ignored).  0, or -1 out of memory. */
static int
new_branch(struct notify *n, struct ntx *tx, const unsigned char *rnd)
{
	int64_t k = branch_key(tx->branch);

	if (k != 0 && idmap_get(&n->by_branch, k) == tx)
		idmap_del(&n->by_branch, k);
	for (;;) {
		unsigned char r[8];

		if (rnd == NULL)
			randombytes_buf(r, sizeof(r));
		else
			memcpy(r, rnd, sizeof(r));
		rnd = NULL; /* a branch in use already: draw again */
		memcpy(tx->branch, SIP_BRANCH_COOKIE, strlen(SIP_BRANCH_COOKIE));
		sodium_bin2hex(tx->branch + strlen(SIP_BRANCH_COOKIE),
		    sizeof(tx->branch) - strlen(SIP_BRANCH_COOKIE), r, sizeof(r));
		k = branch_key(tx->branch);
		if (k != 0 && idmap_get(&n->by_branch, k) == NULL)
			return idmap_put(&n->by_branch, k, tx);
	}
}

struct notify *
notify_new(const struct notify_opts *o, char *err, size_t errlen)
{
	struct notify *n;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *contact;

	if (sodium_init() < 0) {
		hd_seterr(err, errlen, "libsodium: cannot initialise");
		return NULL;
	}
	if (o == NULL || o->bind_host == NULL || !is_numeric(o->bind_host)) {
		hd_seterr(err, errlen, "bind_host: not a numeric address");
		return NULL;
	}
	if (o->bind_port < 0 || o->bind_port > 65535 ||
	    (o->ops != NULL && o->bind_port == 0)) {
		hd_seterr(err, errlen, "bind_port: %d out of range", o->bind_port);
		return NULL;
	}
	if (o->done == NULL) {
		hd_seterr(err, errlen, "done: callback missing");
		return NULL;
	}
	if (o->ops != NULL && o->ops->send == NULL) {
		hd_seterr(err, errlen, "ops: send missing");
		return NULL;
	}
	if (o->t1_ms < 0 || o->t2_ms < 0 || o->timer_f_ms < 0) {
		hd_seterr(err, errlen, "timers: negative value");
		return NULL;
	}
	contact = o->contact_host != NULL ? o->contact_host : o->bind_host;
	if (!is_numeric(contact) || strlen(contact) >= HOST_MAX) {
		hd_seterr(err, errlen, "contact_host: not a numeric address");
		return NULL;
	}
	if (strcmp(contact, "0.0.0.0") == 0 || strcmp(contact, "::") == 0) {
		hd_seterr(err, errlen, "contact_host: required with a wildcard "
		    "bind address");
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	n->fd = -1;
	n->next_id = 1;
	n->done = o->done;
	n->done_arg = o->done_arg;
	n->t1 = o->t1_ms > 0 ? o->t1_ms : DEFAULT_T1;
	n->t2 = o->t2_ms > 0 ? o->t2_ms : DEFAULT_T2;
	n->timer_f = o->timer_f_ms > 0 ? o->timer_f_ms : 64 * n->t1;
	if (n->t2 < n->t1)
		n->t2 = n->t1;
	memcpy(n->contact_host, contact, strlen(contact) + 1);
	if (o->from_user != NULL) {
		int w = snprintf(n->from_user, sizeof(n->from_user), "%s",
		    o->from_user);

		if (w < 0 || (size_t)w >= sizeof(n->from_user)) {
			hd_seterr(err, errlen, "from_user: too long");
			goto fail;
		}
	} else {
		memcpy(n->from_user, "hotdeskd", sizeof("hotdeskd"));
	}
	n->family = strchr(o->bind_host, ':') != NULL ? AF_INET6 : AF_INET;
	if (o->outbound_proxy != NULL && o->outbound_proxy[0] != '\0') {
		if (parse_hostport(o->outbound_proxy, n->proxy_host,
		    sizeof(n->proxy_host), &n->proxy_port) != 0 ||
		    make_addr(n->family, n->proxy_host, n->proxy_port,
		    &n->proxy_addr, &n->proxy_addrlen) != 0) {
			hd_seterr(err, errlen, "outbound_proxy: not a numeric "
			    "host[:port] reachable from bind_host");
			goto fail;
		}
		n->have_proxy = true;
	}
	if (o->ops != NULL) {
		n->ops = *o->ops;
		n->local_port = o->bind_port;
		return n;
	}
	n->own_socket = true;
	if (make_addr(n->family, o->bind_host, o->bind_port, &ss, &sslen) != 0) {
		hd_seterr(err, errlen, "bind_host: bad address");
		goto fail;
	}
	n->fd = socket(n->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		hd_seterr(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	if (n->family == AF_INET6) {
		int off = 0; /* accept IPv4 targets as mapped addresses */

		(void)setsockopt(n->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off,
		    sizeof(off));
	}
	if (bind(n->fd, (struct sockaddr *)&ss, sslen) != 0) {
		hd_seterr(err, errlen, "bind %s:%d: %s", o->bind_host,
		    o->bind_port, strerror(errno));
		goto fail;
	}
	sslen = sizeof(ss);
	if (getsockname(n->fd, (struct sockaddr *)&ss, &sslen) != 0) {
		hd_seterr(err, errlen, "getsockname: %s", strerror(errno));
		goto fail;
	}
	n->local_port = ntohs(ss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port);
	return n;
fail:
	notify_free(n);
	return NULL;
}

void
notify_free(struct notify *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->ntx; i++)
		tx_free(n->tx[i]);
	free(n->tx);
	idmap_free(&n->by_branch);
	if (n->fd >= 0)
		close(n->fd);
	free(n);
}

static char *
dup_opt(const char *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*oom = true;
	return d;
}

int
notify_send(struct notify *n, const struct notify_target *t,
    long long now_ms, uint64_t *id)
{
	struct ntx *tx;
	bool oom = false;
	char err[128];
	unsigned char rnd[32];

	if (n == NULL || t == NULL || t->host == NULL || t->event == NULL ||
	    strlen(t->host) >= HOST_MAX || !is_numeric(t->host))
		return -1;
	if (t->port < 0 || t->port > 65535)
		return -1;
	if ((t->auth_user == NULL) != (t->auth_password == NULL))
		return -1;
	if (n->ntx == n->cap) {
		size_t cap = n->cap ? n->cap * 2 : 16;
		struct ntx **a = realloc(n->tx, cap * sizeof(*a));

		if (a == NULL)
			return -1;
		n->tx = a;
		n->cap = cap;
	}
	tx = calloc(1, sizeof(*tx));
	if (tx == NULL)
		return -1;
	memcpy(tx->host, t->host, strlen(t->host) + 1);
	tx->port = t->port > 0 ? t->port : 5060;
	if (n->own_socket && !n->have_proxy &&
	    make_addr(n->family, tx->host, tx->port, &tx->dst,
	    &tx->dstlen) != 0)
		goto fail; /* an IPv6 target from an IPv4 socket */
	tx->user = dup_opt(t->user, &oom);
	tx->event = dup_opt(t->event, &oom);
	tx->substate = dup_opt(t->subscription_state, &oom);
	tx->ctype = dup_opt(t->content_type, &oom);
	tx->body = dup_opt(t->body, &oom);
	tx->auth_user = dup_opt(t->auth_user, &oom);
	tx->auth_pass = dup_opt(t->auth_password, &oom);
	tx->auth_realm = dup_opt(t->auth_policy.realm, &oom);
	tx->auth_algs = t->auth_policy.algorithms;
	tx->auth_qop = t->auth_policy.qop_required;
	if (oom)
		goto fail;
	/* one draw for the branch, the From tag and the Call-ID: each call
	 * of the kernel's generator is a system call */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(tx->tag, sizeof(tx->tag), rnd + 8, 8);
	sodium_bin2hex(tx->call_id, sizeof(tx->call_id), rnd + 16, 16);
	{
		size_t l = strlen(tx->call_id);
		int w = snprintf(tx->call_id + l, sizeof(tx->call_id) - l,
		    "@%s", n->contact_host);

		if (w < 0 || (size_t)w >= sizeof(tx->call_id) - l)
			goto fail;
	}
	tx->cseq = 1;
	if (new_branch(n, tx, rnd) != 0)
		goto fail;
	if (tx_build(n, tx, NULL, false, err, sizeof(err)) != 0) {
		idmap_del(&n->by_branch, branch_key(tx->branch));
		goto fail;
	}
	tx->id = n->next_id++;
	tx->start_ms = now_ms;
	tx->hi = n->ntx;
	n->tx[n->ntx++] = tx;
	tx_start(n, tx, now_ms);
	tx_due(n, tx);
	if (id != NULL)
		*id = tx->id;
	return 0;
fail:
	tx_free(tx);
	return -1;
}

/* Removes tx, reports it and frees it. */
static void
finish(struct notify *n, struct ntx *tx, int status, const char *reason,
    long long now_ms)
{
	struct notify_result r;
	size_t i = tx->hi;
	int w;

	idmap_del(&n->by_branch, branch_key(tx->branch));
	heap_swap(n, i, n->ntx - 1);
	n->ntx--;
	if (i < n->ntx)
		heap_fix_at(n, i);
	memset(&r, 0, sizeof(r));
	r.id = tx->id;
	r.status = status;
	w = snprintf(r.reason, sizeof(r.reason), "%s", reason);
	if (w < 0)
		r.reason[0] = '\0';
	/* A longer reason phrase is cut: it is informational only. */
	r.attempts = tx->attempts;
	r.requests = tx->requests;
	r.elapsed_ms = now_ms - tx->start_ms;
	tx_free(tx);
	n->done(n->done_arg, &r);
}

size_t
notify_tick(struct notify *n, long long now_ms, size_t max)
{
	size_t fired = 0;

	if (max == 0)
		max = SIZE_MAX;

	/* the transactions due, soonest first; one retransmitted is not due
	 * again at now_ms (its next timer is at least T1 away), one whose
	 * send failed is due at once and ends on this pass or the next */
	for (; fired < max && n->ntx > 0 && n->tx[0]->due_ms <= now_ms; fired++) {
		struct ntx *tx = n->tx[0];

		if (tx->failed) {
			char why[128];

			memcpy(why, tx->errtext, sizeof(why));
			finish(n, tx, -1, why[0] ? why : "error", now_ms);
			continue;
		}
		if (now_ms >= tx->req_ms + n->timer_f) {
			finish(n, tx, 0, "timeout", now_ms);
			continue;
		}
		if (tx->proceeding)
			tx->interval = n->t2;
		else
			tx->interval = tx->interval * 2 < n->t2 ? tx->interval * 2 : n->t2;
		tx->next_ms = now_ms + tx->interval;
		if (tx_send(n, tx) != 0)
			tx->failed = true; /* reported on this pass */
		tx_due(n, tx);
	}
	return fired;
}

/* Answers a challenge on tx: new branch, next CSeq, credentials.
 * Returns 0 when the new request was started, -1 when it cannot be. */
static int
answer_challenge(struct notify *n, struct ntx *tx,
    const struct sip_challenge *ch, bool proxy, long long now_ms)
{
	char uri[256], cnonce[33], authz[1024], err[128];
	const struct sip_auth_policy pol = { tx->auth_realm, tx->auth_algs, tx->auth_qop };
	int rc = -1;

	if (tx->authed || tx->auth_user == NULL || !ch->present)
		return -1;
	/* only what a phone of this family asks: never hand a digest of the
	 * line's password to whoever answers at the contact with any realm */
	if (sip_challenge_allowed(ch, &pol, err, sizeof(err)) != 0)
		return -1;
	rand_hex(cnonce, 16);
	if (sip_request_uri(tx->user, tx->host, tx->port, uri, sizeof(uri),
	    err, sizeof(err)) != 0 ||
	    sip_build_authorization(ch, tx->auth_user, tx->auth_pass,
	    "NOTIFY", uri, cnonce, authz, sizeof(authz), err,
	    sizeof(err)) != 0)
		goto out;
	tx->authed = true;
	tx->cseq++;
	if (new_branch(n, tx, NULL) != 0 || tx_build(n, tx, authz, proxy, err, sizeof(err)) != 0)
		goto out;
	tx_start(n, tx, now_ms);
	tx_due(n, tx);
	rc = 0;
out:
	sodium_memzero(authz, sizeof(authz));
	return rc;
}

int
notify_input(struct notify *n, const char *pkt, size_t len, long long now_ms)
{
	struct sip_response r;
	struct ntx *tx;
	int64_t k;

	if (n == NULL || sip_parse_response(pkt, len, &r) != 0)
		return 0;
	if (strcasecmp(r.cseq_method, "NOTIFY") != 0)
		return 0;
	if ((k = branch_key(r.branch)) == 0 || (tx = idmap_get(&n->by_branch, k)) == NULL ||
	    strcmp(tx->branch, r.branch) != 0)
		return 0;
	if (r.cseq != tx->cseq || tx->failed)
		return 0;
	if (r.status < 200) {
		tx->proceeding = true;
		return 1;
	}
	if ((r.status == 401 &&
	    answer_challenge(n, tx, &r.www_auth, false, now_ms) == 0) ||
	    (r.status == 407 &&
	    answer_challenge(n, tx, &r.proxy_auth, true, now_ms) == 0))
		return 1;
	finish(n, tx, r.status, r.reason, now_ms);
	return 1;
}

int
notify_poll_fd(const struct notify *n)
{
	return n->fd;
}

int
notify_local_port(const struct notify *n)
{
	return n->local_port;
}

size_t
notify_pending(const struct notify *n)
{
	return n->ntx;
}

int
notify_recv(struct notify *n, long long now_ms, int max)
{
	char buf[SIP_MAX_MSG];
	int count = 0;

	if (n->fd < 0)
		return 0;
	/* Bounded, so a flood cannot starve the timers. */
	if (max <= 0 || max > 1024)
		max = 1024;
	while (count < max) {
		ssize_t r = recv(n->fd, buf, sizeof(buf), 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == ECONNREFUSED)
				continue; /* ICMP for an earlier datagram */
			return -1;
		}
		count++;
		(void)notify_input(n, buf, (size_t)r, now_ms);
	}
	return count;
}

long long
notify_next_timeout_ms(const struct notify *n, long long now_ms)
{
	long long best;

	if (n->ntx == 0)
		return -1;
	best = n->tx[0]->due_ms;
	return best > now_ms ? best - now_ms : 0;
}

int
notify_run_until_idle(struct notify *n, int max_ms)
{
	long long start = notify_now_ms();

	for (;;) {
		long long now = notify_now_ms(), left, wait;
		struct pollfd pfd;
		int pr;

		(void)notify_tick(n, now, 0);
		if (n->ntx == 0)
			return 0;
		left = start + max_ms - now;
		if (left <= 0)
			return (int)n->ntx;
		wait = notify_next_timeout_ms(n, now);
		if (wait < 0 || wait > left)
			wait = left;
		pfd.fd = n->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		pr = poll(n->fd >= 0 ? &pfd : NULL, n->fd >= 0 ? 1 : 0,
		    (int)wait);
		if (pr < 0 && errno != EINTR)
			return -1;
		if (pr > 0 && (pfd.revents & POLLIN) &&
		    notify_recv(n, notify_now_ms(), 0) < 0)
			return -1;
	}
}
