/*
 * http.c -- the libmicrohttpd adapter (see http.h for the contract).
 *
 * Owns the MHD daemon, its worker threads and every MHD callback; knows
 * nothing of what the routes do.  One request goes through these states,
 * each a call into this file from MHD on one worker thread:
 *
 *   uri_log()         request line read: allocate struct req with a copy of
 *                     the raw URI (MHD decodes the one it hands on_access,
 *                     which would hide "%2e%2e" and "%00" from the check)
 *   on_access() #1    headers read: check the path (400), route it (404),
 *                     reject a declared Content-Length over max_body (413)
 *   on_access() #2..  body pieces: appended up to max_body, then discarded
 *                     and remembered as a 413
 *   on_access() last  *upload_data_size == 0: 413, or call the handler and
 *                     queue its response; for a route with own_thread,
 *                     suspend the connection and start own_run on a new
 *                     thread, which calls the handler, keeps its response
 *                     in q->own and resumes the connection
 *   on_access() again (own_thread, after the resume) queue q->own
 *   req_completed()   MHD is done with the request: free struct req
 *
 * Connections (struct conn, MHD's socket context) are tracked from MHD's
 * "started" to its "closed" notification, in one list per server under
 * conns_lock.  Each records since when it has been waiting for a request
 * (opened, or the previous answer finished) and whether its request is
 * complete (answering).  The sweeper thread shuts down (shutdown(2), never
 * close: MHD still owns the descriptor and closes it after its "closed"
 * notification, which takes conns_lock first) every connection that has
 * waited longer than request_timeout_s for a whole request: a client that
 * trickles a header line every half second is cut like an idle one.
 * On a TLS listener the conn also holds the client CA credentials its
 * session was given when it opened (tls_session_start) and the
 * certificate generation its handshake used (tls_pick_cert), both
 * released when the connection closes, and the bytes gnutls counts as
 * written that the socket could not take yet (tls_push; the sweeper
 * writes them when the socket can).
 *
 * Invariants:
 *   1. A handler is called at most once per request, and only for a path
 *      that passed path_ok() and a body no larger than its route's max_body.
 *   2. Every response body handed to MHD is released by MHD's free callback
 *      exactly once, after MHD has finished with it (response refcount 0):
 *      heap bodies with free(), static bodies with res->static_free.  If no
 *      MHD response could be made, the release happens here at once.
 *   3. s->inflight counts requests between uri_log and req_completed;
 *      http_stop waits for it to fall to 0 (bounded) before stopping MHD.
 *      s->own_running counts own_run threads from their start to just
 *      after their resume (their last touch of the connection); http_stop
 *      waits for it to fall to 0, unbounded, before stopping MHD, so MHD
 *      never stops with a connection suspended nor frees a request a
 *      thread is still answering.  While suspended, a request is touched
 *      by its own_run thread only.
 *   4. A conn is in its server's list exactly between MHD's started and
 *      closed notifications; the sweeper touches a conn's socket only
 *      under conns_lock, hence only while MHD has not closed it.
 *   5. A TLS certificate generation (tls_gen) or client CA credentials
 *      (tls_ca) are freed when their last holder drops them: the
 *      http_tls (while in force) and every connection that took them.
 * MHD's own error log is off except while MHD_start_daemon runs, when its
 * message is captured into the caller's error buffer.
 */
#include "http.h"

#include "digest.h"
#include "wipe.h"

#include "errbuf.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sys/socket.h>

#include "form.h"
#include "idle.h"
#include "lockorder.h"

#define DEFAULT_CTYPE "text/plain; charset=utf-8"
/* The largest body whose answer leaves over TLS as one record (send_response). */
#define ONE_RECORD_MAX 8192u
/* How many bytes of an over-limit body are read and dropped so that the
 * client can still be told 413; past that the connection is closed. */
#define DISCARD_MAX (1024u * 1024u)
/* Longest wait in http_stop for requests in flight to finish. */
#define STOP_WAIT_MS 5000
/* Most own_thread requests running at once per server; past it a request
 * is served on its worker thread as any other. */
#define OWN_MAX 16

struct route {
	char *prefix;
	size_t prefix_len;
	http_handler handler;
	void *arg;
	size_t max_body;
	http_handler too_large; /* NULL: plain-text 413 */
	bool own_thread;
	bool (*own_thread_if)(void *arg, const struct http_request *req);
};

/* One loaded server certificate chain and key (invariant 5). */
struct tls_gen {
	atomic_int refs;
	gnutls_pcert_st *certs;
	unsigned ncerts;
	gnutls_privkey_t key;
	char fingerprint[65];
};

/* The client CA names a TLS connection asks for (invariant 5): GnuTLS
 * credentials holding them as trust list (sent as the certificate
 * request's CA names, never used to verify) and tls_pick_cert as the
 * server certificate callback. */
struct tls_ca {
	atomic_int refs;
	gnutls_certificate_credentials_t cred;
	bool request;               /* ask clients for a certificate */
};

struct http_tls {
	pthread_mutex_t lock;       /* guards cur and ca */
	struct tls_gen *cur;        /* the generation in force (one reference) */
	struct tls_ca *ca;          /* the client CAs in force (one reference) */
	char *priorities;           /* with the TLS 1.2 floor appended */
	gnutls_datum_t ticket_key;  /* session tickets: GnuTLS' master key; size 0: none */
};

/* A connection, MHD's socket context (invariant 4). */
struct conn {
	struct conn *prev, *next;
	struct http_server *srv;
	int fd;
	atomic_llong ready_ms;      /* waiting for a request since (monotonic ms) */
	atomic_bool answering;      /* its request is complete */
	bool cut;                   /* shut down by the sweeper (under conns_lock) */
	struct tls_gen *gen;        /* TLS: the certificate its handshake took */
	struct tls_ca *ca;          /* TLS: the credentials its session uses */
	/* TLS: the session writes through tls_push */
	gnutls_session_t session;   /* NULL: gnutls' own writer */
	bool corked;                /* worker: the answer gathers in one record */
	bool absorb;                /* worker: tls_push keeps what the socket refuses */
	bool tcp_uncorked;          /* worker: MHD's TCP_CORK found and taken off */
	pthread_mutex_t wlock;      /* guards held, held_len and writes to fd */
	unsigned char *held;        /* bytes gnutls counts as written, not yet written */
	size_t held_len;
	atomic_bool owed;           /* held bytes wait for the sweeper */
};

struct http_server {
	struct MHD_Daemon *d;
	struct http_tls *tls;       /* borrowed; NULL for plain HTTP */
	unsigned request_timeout_s;
	pthread_mutex_t conns_lock; /* guards conns, every conn's links and cut, stopping */
	pthread_cond_t sweep_cond;  /* wakes the sweeper to stop */
	struct conn *conns;
	bool stopping;
	bool sweeping;              /* the sweeper thread was started */
	pthread_t sweeper;
	struct route *routes;       /* sorted by prefix length, longest first */
	size_t nroutes;
	unsigned port;
	atomic_long inflight;       /* invariant 3 */
	atomic_uint own_running;    /* invariant 3 */
	atomic_bool draining;       /* http_stop: new connections are refused */
	unsigned char digest_key[DIGEST_KEY_LEN]; /* keys the stateless nonces */
	struct digest_seen *digest_seen; /* nonce counts used (replays refused) */
	pthread_t starter;          /* thread inside MHD_start_daemon */
	atomic_bool starting;
	char start_err[256];        /* MHD's message while starting */
};

/* A decoded query value handed out by http_query_arg. */
struct qval {
	struct qval *next;
	char text[];
};

struct req {
	struct http_server *srv;
	struct MHD_Connection *mc;
	struct conn *conn;          /* NULL if it could not be tracked */
	const struct route *route;
	char *path;                 /* into uri */
	char *query;                /* into uri, "" if none */
	char *body;                 /* heap, NUL-terminated, or NULL */
	size_t body_len, body_cap;
	size_t discarded;           /* bytes dropped past max_body */
	int reject;                 /* status to send instead of the handler's */
	bool started;               /* on_access #1 done */
	bool connect;               /* the method is CONNECT */
	const char *method;         /* own_thread: MHD's, valid until req_completed */
	struct http_response *own; /* own_thread: the answer own_run made */
	size_t raw_len;             /* strlen of the raw target, query included */
	struct qval *qvals;
	char uri[];                 /* raw request target, split at '?' */
};

/* ---- small helpers ---- */



static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * The path check done before routing.  Returns true when path may reach a
 * handler: it starts with '/', and has no control character, backslash,
 * "//", malformed escape, "%00", "%5c", nor a segment that decodes to "."
 * or "..".  Can't fail otherwise.
 */
static bool
path_ok(const char *path)
{
	const char *p, *seg;

	if (path[0] != '/')
		return false;
	for (p = path; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (is_ctl(c) || c == '\\')
			return false;
		if (c == '/' && p[1] == '/')
			return false;
		if (c == '%') {
			char d[3];
			if (!p[1] || !p[2])
				return false;
			if (form_unescape(p, 3, false, d) != 1)
				return false; /* malformed or %00 */
			if (d[0] == '\\' || is_ctl((unsigned char)d[0]))
				return false;
			p += 2;
		}
	}
	/* Dot segments, raw or encoded: a segment of at most 6 bytes made of
	 * '.' and "%2e" only, that decodes to one or two dots. */
	for (seg = path + 1; ; ) {
		const char *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		if (len > 0 && len <= 6) {
			char d[8];
			long n = form_unescape(seg, len, false, d);
			if ((n == 1 && d[0] == '.') ||
			    (n == 2 && d[0] == '.' && d[1] == '.'))
				return false;
		}
		if (end == NULL)
			break;
		seg = end + 1;
	}
	return true;
}

static const struct route *
find_route(const struct http_server *s, const char *path)
{
	size_t i;

	for (i = 0; i < s->nroutes; i++)
		if (strncmp(path, s->routes[i].prefix, s->routes[i].prefix_len) == 0)
			return &s->routes[i];
	return NULL;
}

/* Queues a constant text answer.  Returns MHD's verdict. */
static enum MHD_Result
queue_text(struct MHD_Connection *mc, unsigned status, const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	                                    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                              DEFAULT_CTYPE);
	ret = MHD_queue_response(mc, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- responses ---- */

void
http_set_body(struct http_response *res, int status, const char *ctype,
              char *body, size_t len)
{
	free(res->body);
	res->status = status;
	if (ctype != NULL)
		res->content_type = ctype;
	res->body = body;
	res->body_len = body ? len : 0;
}

int
http_printf(struct http_response *res, int status, const char *ctype,
            const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		http_set_body(res, 500, DEFAULT_CTYPE, NULL, 0);
		return -1;
	}
	http_set_body(res, status, ctype, s, (size_t)n);
	return 0;
}

/* Releases a static body that will not be handed to MHD. */
static void
static_release(struct http_response *res)
{
	if (res->static_free != NULL)
		res->static_free(res->static_ref);
	res->static_free = NULL;
	res->static_body = NULL;
}

/*
 * Turns what the handler filled into an MHD response and queues it.  Takes
 * over res->body and the static reference (invariant 2) whatever happens.
 */
static enum MHD_Result
send_response(struct req *q, struct http_response *res)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status;
	size_t body_len = res->body != NULL || res->static_body != NULL ? res->body_len : 0;

	if (res->body != NULL) {
		static_release(res);
		r = MHD_create_response_from_buffer_with_free_callback_cls(
			res->body_len, res->body, free, res->body);
		if (r == NULL)
			free(res->body);
		res->body = NULL;
	} else if (res->static_body != NULL) {
		r = MHD_create_response_from_buffer_with_free_callback_cls(
			res->body_len, (void *)res->static_body,
			res->static_free, res->static_ref);
		if (r == NULL)
			static_release(res);
	} else {
		static_release(res); /* a ref without bytes: still released */
		r = MHD_create_response_from_buffer(0, (void *)"",
		                                    MHD_RESPMEM_PERSISTENT);
	}
	if (r == NULL)
		return MHD_NO; /* out of memory: MHD closes the connection */

	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	        res->content_type ? res->content_type : DEFAULT_CTYPE);
	/* A value with CR or LF is refused by MHD: the header is then left
	 * out rather than split. */
	if (res->etag[0] != '\0')
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, res->etag);

	if (res->www_authenticate[0] != '\0')
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                              res->www_authenticate);
	if (res->set_cookie[0] != '\0')
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, res->set_cookie);
	for (const char *const *h = res->extra_headers; h != NULL && h[0] != NULL; h += 2)
		(void)MHD_add_response_header(r, h[0], h[1]);
	status = (res->status >= 100 && res->status <= 599) ? (unsigned)res->status : 500u;
	ret = MHD_queue_response(q->mc, status, r);
	MHD_destroy_response(r);
	/* Over TLS libmicrohttpd hands the header and the body to gnutls one
	 * after the other: two records, two writes, two records for the
	 * client to read.  Corked, gnutls gathers both; req_completed sends
	 * them as one record.  Only for an answer MHD sends in one go: a body
	 * (none goes for HEAD, 1xx, 204, 304 nor a 2xx to CONNECT, RFC 9110)
	 * small enough for one record with its header; and not while the
	 * connection owes bytes (tls_push): then MHD waits for the socket. */
	if (ret == MHD_YES && q->conn != NULL && q->conn->session != NULL &&
	    !atomic_load(&q->conn->owed) && body_len > 0 && body_len <= ONE_RECORD_MAX &&
	    !res->head_only && status >= 200 && status != 204 && status != 304 &&
	    !(status < 300 && q->connect)) {
		gnutls_record_cork(q->conn->session);
		q->conn->corked = true;
	}
	return ret;
}

/* Fills req with q's request, as handlers see it. */
static void
fill_request(struct req *q, const char *method, struct http_request *req_out)
{
	const union MHD_ConnectionInfo *ci;
	struct http_request req;

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.path = q->path;
	req.query = q->query;
	req.body = q->body ? q->body : "";
	req.body_len = q->body_len;
	req.conn = q;
	req.tls = q->srv->tls != NULL;
	ci = MHD_get_connection_info(q->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL) {
		req.peer = ci->client_addr;
		req.peer_len = ci->client_addr->sa_family == AF_INET6
		               ? sizeof(struct sockaddr_in6)
		               : sizeof(struct sockaddr_in);
	}
	*req_out = req;
}

/* Calls handler with q's request; res is filled from scratch. */
static void
call_handler(struct req *q, const char *method, http_handler handler,
             struct http_response *res)
{
	struct http_request req;

	fill_request(q, method, &req);
	memset(res, 0, sizeof(*res));
	res->status = 200;
	res->head_only = strcmp(method, "HEAD") == 0;
	q->connect = strcmp(method, "CONNECT") == 0;

	handler(q->route->arg, &req, res);
}

static enum MHD_Result
run_handler_with(struct req *q, const char *method, http_handler handler)
{
	struct http_response res;

	call_handler(q, method, handler, &res);
	return send_response(q, &res);
}

/* ---- requests on a thread of their own (route own_thread) ---- */

/* The handler of a suspended request; then the connection resumes and
 * on_access queues q->own.  Touches neither q nor mc once resumed. */
static void *
own_run(void *arg)
{
	struct req *q = arg;
	struct http_server *s = q->srv;
	struct MHD_Connection *mc = q->mc;

	call_handler(q, q->method, q->route->handler, q->own);
	MHD_resume_connection(mc);
	atomic_fetch_sub(&s->own_running, 1);
	return NULL;
}

/* Suspends q's connection and runs its handler on a new thread.  Returns
 * false, with nothing changed, when it cannot (out of memory, OWN_MAX
 * running, the server stopping): the caller serves q itself. */
static bool
own_start(struct req *q, const char *method)
{
	struct http_server *s = q->srv;
	pthread_attr_t attr;
	pthread_t t;
	bool started;

	/* counted before draining is read: http_stop sets draining before it
	 * reads the count, so it either sees this thread counted or this
	 * thread sees it draining */
	if (atomic_fetch_add(&s->own_running, 1) >= OWN_MAX || atomic_load(&s->draining)) {
		atomic_fetch_sub(&s->own_running, 1);
		return false;
	}
	q->own = malloc(sizeof(*q->own));
	if (q->own == NULL || pthread_attr_init(&attr) != 0) {
		free(q->own);
		q->own = NULL;
		atomic_fetch_sub(&s->own_running, 1);
		return false;
	}
	q->method = method;
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	MHD_suspend_connection(q->mc);
	started = pthread_create(&t, &attr, own_run, q) == 0;
	pthread_attr_destroy(&attr);
	if (!started)
		(void)own_run(q); /* here, then: the connection resumes at once */
	return true;
}

/* Whether q runs on a thread of its own (route own_thread, or its
 * own_thread_if says so). */
static bool
own_wanted(struct req *q, const char *method)
{
	struct http_request req;

	if (q->route->own_thread)
		return true;
	if (q->route->own_thread_if == NULL)
		return false;
	fill_request(q, method, &req);
	return q->route->own_thread_if(q->route->arg, &req);
}

/* Releases an answer own_run made that was never queued (the connection
 * closed first). */
static void
own_drop(struct req *q)
{
	if (q->own == NULL)
		return;
	free(q->own->body);
	static_release(q->own);
	free(q->own);
	q->own = NULL;
}

static enum MHD_Result
run_handler(struct req *q, const char *method)
{
	return run_handler_with(q, method, q->route->handler);
}

/* 413: in the route's own error form when it has one (its too_large
 * handler sees the request without a body), else plain text. */
static enum MHD_Result
too_large(struct req *q, const char *method)
{
	if (q->route->too_large != NULL) {
		q->body_len = 0;
		return run_handler_with(q, method, q->route->too_large);
	}
	return queue_text(q->mc, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
}

/* ---- connections ---- */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct conn *
conn_of(struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci != NULL ? ci->socket_context : NULL;
}

static void
gen_unref(struct tls_gen *g)
{
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	for (unsigned i = 0; i < g->ncerts; i++)
		gnutls_pcert_deinit(&g->certs[i]);
	free(g->certs);
	gnutls_privkey_deinit(g->key);
	free(g);
}

static void
ca_unref(struct tls_ca *ca)
{
	if (ca == NULL || atomic_fetch_sub(&ca->refs, 1) != 1)
		return;
	gnutls_certificate_free_credentials(ca->cred);
	free(ca);
}

static void tls_session_start(struct conn *c, struct MHD_Connection *mc);
static void tls_pay(struct conn *c);

/* MHD's connection notifications: tracks conns (invariant 4). */
static void
on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *s = cls;
	struct conn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);

		if (ci == NULL || (c = calloc(1, sizeof(*c))) == NULL)
			return; /* untracked: no deadline, and no TLS handshake */
		c->srv = s;
		c->fd = ci->connect_fd;
		atomic_init(&c->ready_ms, now_ms());
		atomic_init(&c->answering, false);
		pthread_mutex_lock(&s->conns_lock);
		c->next = s->conns;
		if (s->conns != NULL)
			s->conns->prev = c;
		s->conns = c;
		pthread_mutex_unlock(&s->conns_lock);
		*socket_context = c;
		if (s->tls != NULL)
			tls_session_start(c, mc);
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || c == NULL)
		return;
	pthread_mutex_lock(&s->conns_lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&s->conns_lock);
	gen_unref(c->gen);
	ca_unref(c->ca);
	if (c->session != NULL)
		pthread_mutex_destroy(&c->wlock);
	free(c->held);
	free(c);
	*socket_context = NULL;
}

/* The request of q is complete (or refused): the deadline stops. */
static void
answering(struct req *q)
{
	if (q->conn != NULL)
		atomic_store(&q->conn->answering, true);
}

/* Four times a second: shuts down the connections past their deadline
 * (request_timeout_s, 0: none) and writes what TLS connections owe
 * (tls_pay). */
static void *
sweep(void *arg)
{
	struct http_server *s = arg;
	long long limit = (long long)s->request_timeout_s * 1000;

	pthread_mutex_lock(&s->conns_lock);
	while (!s->stopping) {
		struct timespec until;
		long long now = now_ms();

		for (struct conn *c = s->conns; c != NULL; c = c->next) {
			if (c->session != NULL)
				tls_pay(c);
			if (limit == 0 || c->cut || atomic_load(&c->answering) ||
			    now - atomic_load(&c->ready_ms) <= limit)
				continue;
			(void)shutdown(c->fd, SHUT_RDWR);
			c->cut = true;
		}
		until = deadline_in(250 * 1000000ULL);
		(void)pthread_cond_timedwait(&s->sweep_cond, &s->conns_lock, &until);
	}
	pthread_mutex_unlock(&s->conns_lock);
	return NULL;
}

/* ---- TLS ---- */

/* gnutls' certificate callback: the generation in force when the
 * connection's first handshake asks, held by the connection until it
 * closes (invariant 5). */
static int
tls_pick_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
              const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
              gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	struct MHD_Connection *mc = gnutls_session_get_ptr(session);
	struct conn *c = mc != NULL ? conn_of(mc) : NULL;
	struct http_tls *t;

	if (c == NULL || (t = c->srv->tls) == NULL)
		return -1;
	if (c->gen == NULL) {
		pthread_mutex_lock(&t->lock);
		c->gen = t->cur;
		atomic_fetch_add(&c->gen->refs, 1);
		pthread_mutex_unlock(&t->lock);
	}
	*pcert = c->gen->certs;
	*pcert_length = c->gen->ncerts;
	*pkey = c->gen->key;
	return 0;
}

/* Appends n bytes to c->held (wlock held); -1 if out of memory. */
static int
held_add(struct conn *c, const void *p, size_t n)
{
	unsigned char *nb;

	if (n == 0)
		return 0;
	if ((nb = realloc(c->held, c->held_len + n)) == NULL)
		return -1;
	c->held = nb;
	memcpy(c->held + c->held_len, p, n);
	c->held_len += n;
	return 0;
}

/*
 * gnutls' writer for a TLS connection (set by tls_session_start): bytes
 * left from an earlier write go first, in the same sendmsg.  While
 * req_completed sends an answer gathered in one record (c->absorb), what
 * the socket cannot take now (a client that does not read) is kept and
 * counted as written: the answer is over for libmicrohttpd, which would
 * not wait for the socket, so the sweeper writes the rest when it can
 * (c->owed; no answer is corked meanwhile, so at most one is kept).
 * Otherwise a write that cannot take the kept bytes and some of this
 * record reports EAGAIN, retried by gnutls and MHD once writable.
 */
static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct conn *c = ptr;
	struct iovec v[1 + 32]; /* gnutls hands at most 32 buffers at once */
	struct msghdr m;
	size_t len = 0, n = 0, kept;
	ssize_t w;
	int e;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	pthread_mutex_lock(&c->wlock);
	kept = c->held_len;
	if (kept > 0)
		v[n++] = (struct iovec){ .iov_base = c->held, .iov_len = kept };
	for (int i = 0; i < iovcnt && n < sizeof(v) / sizeof(v[0]); i++)
		v[n++] = (struct iovec){ .iov_base = iov[i].iov_base, .iov_len = iov[i].iov_len };
	memset(&m, 0, sizeof(m));
	m.msg_iov = v;
	m.msg_iovlen = n;
	w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	e = errno;
	if (w < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR)
		goto out; /* broken: gnutls reports it */
	if (w < 0)
		w = 0;
	if ((size_t)w < kept) {
		memmove(c->held, c->held + w, kept - (size_t)w);
		c->held_len = kept - (size_t)w;
		w = 0;
	} else {
		c->held_len = 0;
		w -= (ssize_t)kept;
	}
	if (c->absorb) {
		/* keep the rest of this record: the sweeper owes it */
		size_t skip = (size_t)w;

		for (int i = 0; i < iovcnt; i++) {
			size_t l = iov[i].iov_len, off = skip < l ? skip : l;

			skip -= off;
			if (held_add(c, (const unsigned char *)iov[i].iov_base + off, l - off) != 0) {
				w = -1;
				e = ENOMEM;
				goto out;
			}
		}
		w = (ssize_t)len;
	} else if (w == 0) {
		w = -1;
		e = EAGAIN;
	}
	atomic_store(&c->owed, c->held_len > 0);
out:
	pthread_mutex_unlock(&c->wlock);
	errno = e;
	return w;
}

/* The sweeper's part: writes what tls_push owes to c's socket, as much as
 * it takes now (conns_lock held, so c is open). */
static void
tls_pay(struct conn *c)
{
	ssize_t w;

	if (!atomic_load(&c->owed) || pthread_mutex_trylock(&c->wlock) != 0)
		return;
	if (c->held_len > 0) {
		w = send(c->fd, c->held, c->held_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			memmove(c->held, c->held + w, c->held_len - (size_t)w);
			c->held_len -= (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			c->held_len = 0; /* the connection is broken */
		}
	}
	if (c->held_len == 0)
		atomic_store(&c->owed, false);
	pthread_mutex_unlock(&c->wlock);
}

/* The answer is over (req_completed): a corked one leaves as one record.
 * libmicrohttpd takes TCP_CORK on for the header of an answer under 1,400
 * bytes, the first such answer of a connection only (it then believes the
 * socket corked for good), and pushes only what was written before it
 * sets TCP_NODELAY: this record, written after, would wait 200 ms for the
 * kernel.  So until the cork has been found on and taken off, each answer
 * looks whether it is on (an answer of 1,400 bytes or more leaves it off,
 * and a smaller one may come later on the same connection). */
static void
tls_uncork(struct conn *c)
{
	ssize_t rc;
	int on = 0;
	socklen_t len = sizeof(on);

	if (!c->corked)
		return;
	c->corked = false;
	c->absorb = true;
	rc = gnutls_record_uncork(c->session, 0);
	c->absorb = false;
	if (rc < 0) {
		(void)shutdown(c->fd, SHUT_RDWR); /* out of memory or broken */
		return;
	}
	if (!c->tcp_uncorked && getsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, &len) == 0 &&
	    on != 0) {
		on = 0;
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
		c->tcp_uncorked = true;
	}
}

/*
 * A new TLS connection, before its handshake: its session takes the
 * client CA credentials in force (invariant 5), so a reload of the CA
 * bundles changes what the next connections ask for, never an open one.
 * MHD has set up the session (its own credentials, which also name
 * tls_pick_cert) when it notifies the start.
 */
static void
tls_session_start(struct conn *c, struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	struct http_tls *t = c->srv->tls;

	if (ci == NULL || ci->tls_session == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	c->ca = t->ca;
	atomic_fetch_add(&c->ca->refs, 1);
	pthread_mutex_unlock(&t->lock);
	if (gnutls_credentials_set(ci->tls_session, GNUTLS_CRD_CERTIFICATE, c->ca->cred) < 0)
		return;
	/* a phone that reconnects resumes its session: no signature, no
	 * certificates; the client certificate of the first handshake stays
	 * the session's (http_client_cert) */
	if (t->ticket_key.size > 0)
		(void)gnutls_session_ticket_enable_server(ci->tls_session, &t->ticket_key);
	gnutls_certificate_server_set_request(ci->tls_session,
	                                      c->ca->request ? GNUTLS_CERT_REQUEST
	                                                     : GNUTLS_CERT_IGNORE);
	/* reads stay gnutls' own recv() on the socket; writes go through
	 * tls_push */
	if (pthread_mutex_init(&c->wlock, NULL) != 0)
		return;
	gnutls_transport_set_ptr2(ci->tls_session, (gnutls_transport_ptr_t)(intptr_t)c->fd, c);
	gnutls_transport_set_vec_push_function(ci->tls_session, tls_push);
	c->session = ci->tls_session;
}

/* Credentials asking for certificates of the CAs of pem (NULL: asking
 * for none); NULL with err filled. */
static struct tls_ca *
ca_new(const char *pem, char *err, size_t errlen)
{
	struct tls_ca *ca = calloc(1, sizeof(*ca));
	int rc;

	if (ca == NULL || gnutls_certificate_allocate_credentials(&ca->cred) < 0) {
		free(ca);
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&ca->refs, 1);
	gnutls_certificate_set_retrieve_function2(ca->cred, tls_pick_cert);
	if (pem != NULL) {
		gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) };

		rc = gnutls_certificate_set_x509_trust_mem(ca->cred, &d, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			hd_seterr(err, errlen, "client CA certificates: %s",
			          rc < 0 ? gnutls_strerror(rc) : "none found");
			ca_unref(ca);
			return NULL;
		}
		ca->request = true;
	}
	return ca;
}

static int
tls_err(char *err, size_t errlen, const char *what, const char *file, int rc)
{
	hd_seterr(err, errlen, "%s %s: %s", what, file, gnutls_strerror(rc));
	return -1;
}

/* Loads a generation from the files; NULL with err filled. */
static struct tls_gen *
gen_load(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t check = NULL;
	gnutls_datum_t cd = { NULL, 0 }, kd = { NULL, 0 };
	unsigned char fp[32];
	size_t fplen = sizeof(fp);
	struct tls_gen *g;
	unsigned max = 16;
	int rc;

	if ((g = calloc(1, sizeof(*g))) == NULL || (g->certs = calloc(max, sizeof(*g->certs))) == NULL) {
		free(g);
		hd_seterr(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	/* the pair must match: gnutls checks it when loading credentials */
	if ((rc = gnutls_certificate_allocate_credentials(&check)) < 0 ||
	    (rc = gnutls_certificate_set_x509_key_file(check, cert_file, key_file,
	                                               GNUTLS_X509_FMT_PEM)) < 0) {
		tls_err(err, errlen, "certificate and key", cert_file, rc);
		goto fail;
	}
	if ((rc = gnutls_load_file(cert_file, &cd)) < 0) {
		tls_err(err, errlen, "cannot read", cert_file, rc);
		goto fail;
	}
	if ((rc = gnutls_load_file(key_file, &kd)) < 0) {
		tls_err(err, errlen, "cannot read", key_file, rc);
		goto fail;
	}
	g->ncerts = max;
	if ((rc = gnutls_pcert_list_import_x509_raw(g->certs, &g->ncerts, &cd, GNUTLS_X509_FMT_PEM,
	                                            0)) < 0 || g->ncerts == 0) {
		g->ncerts = 0;
		tls_err(err, errlen, "certificates of", cert_file, rc < 0 ? rc : GNUTLS_E_NO_CERTIFICATE_FOUND);
		goto fail;
	}
	if ((rc = gnutls_privkey_init(&g->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(g->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		tls_err(err, errlen, "private key", key_file, rc);
		goto fail;
	}
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &g->certs[0].cert, fp, &fplen) == 0)
		sodium_bin2hex(g->fingerprint, sizeof(g->fingerprint), fp, fplen);
	gnutls_certificate_free_credentials(check);
	if (kd.data != NULL)
		sodium_memzero(kd.data, kd.size);
	gnutls_free(kd.data);
	gnutls_free(cd.data);
	return g;
fail:
	if (check != NULL)
		gnutls_certificate_free_credentials(check);
	if (kd.data != NULL)
		sodium_memzero(kd.data, kd.size);
	gnutls_free(kd.data);
	gnutls_free(cd.data);
	gen_unref(g);
	return NULL;
}

struct http_tls *
http_tls_new(const char *cert_file, const char *key_file, const char *priorities,
             const char *client_ca_pem, bool tickets, char *err, size_t errlen)
{
	static const char floor[] = ":-VERS-TLS1.1:-VERS-TLS1.0:-VERS-SSL3.0";
	gnutls_priority_t pc;
	const char *where = NULL;
	struct http_tls *t;
	size_t n;
	int rc;

	if (cert_file == NULL || key_file == NULL) {
		hd_seterr(err, errlen, "a certificate and a key file are needed");
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		goto oom;
	pthread_mutex_init(&t->lock, NULL);
	lockorder_register(&t->lock, LOCK_HTTP_TLS, "http tls");
	if (priorities == NULL)
		priorities = HTTP_TLS_PRIORITIES;
	n = strlen(priorities) + sizeof(floor);
	if ((t->priorities = malloc(n)) == NULL)
		goto oom;
	memcpy(t->priorities, priorities, strlen(priorities));
	memcpy(t->priorities + strlen(priorities), floor, sizeof(floor));
	if ((rc = gnutls_priority_init(&pc, t->priorities, &where)) < 0) {
		hd_seterr(err, errlen, "bad TLS priority string near '%.32s': %s",
		          where ? where : "", gnutls_strerror(rc));
		goto fail;
	}
	gnutls_priority_deinit(pc);
	if ((t->ca = ca_new(client_ca_pem, err, errlen)) == NULL)
		goto fail;
	if (tickets && (rc = gnutls_session_ticket_key_generate(&t->ticket_key)) < 0) {
		hd_seterr(err, errlen, "session ticket key: %s", gnutls_strerror(rc));
		t->ticket_key.size = 0;
		goto fail;
	}
	if ((t->cur = gen_load(cert_file, key_file, err, errlen)) == NULL)
		goto fail;
	return t;
oom:
	hd_seterr(err, errlen, "out of memory");
fail:
	http_tls_free(t);
	return NULL;
}

int
http_tls_reload(struct http_tls *t, const char *cert_file, const char *key_file,
                char *err, size_t errlen)
{
	struct tls_gen *g = gen_load(cert_file, key_file, err, errlen), *old;

	if (g == NULL)
		return -1;
	pthread_mutex_lock(&t->lock);
	old = t->cur;
	t->cur = g;
	pthread_mutex_unlock(&t->lock);
	gen_unref(old);
	return 0;
}

int
http_tls_set_client_ca(struct http_tls *t, const char *client_ca_pem, char *err, size_t errlen)
{
	struct tls_ca *ca = ca_new(client_ca_pem, err, errlen), *old;

	if (ca == NULL)
		return -1;
	pthread_mutex_lock(&t->lock);
	old = t->ca;
	t->ca = ca;
	pthread_mutex_unlock(&t->lock);
	ca_unref(old);
	return 0;
}

void
http_tls_fingerprint(struct http_tls *t, char out[65])
{
	out[0] = '\0';
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	memcpy(out, t->cur->fingerprint, 65);
	pthread_mutex_unlock(&t->lock);
}

void
http_tls_free(struct http_tls *t)
{
	if (t == NULL)
		return;
	gen_unref(t->cur);
	ca_unref(t->ca);
	if (t->ticket_key.data != NULL) {
		sodium_memzero(t->ticket_key.data, t->ticket_key.size);
		gnutls_free(t->ticket_key.data);
	}
	free(t->priorities);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int
http_client_cert(const struct http_request *req, size_t i, const unsigned char **der,
                 size_t *len)
{
	const struct req *q = req->conn;
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *l;
	unsigned n = 0;

	if (!req->tls || (ci = MHD_get_connection_info(q->mc, MHD_CONNECTION_INFO_GNUTLS_SESSION)) ==
	                     NULL || ci->tls_session == NULL)
		return -1;
	l = gnutls_certificate_get_peers(ci->tls_session, &n);
	if (l == NULL || i >= n)
		return -1;
	*der = l[i].data;
	*len = l[i].size;
	return 0;
}

/* ---- MHD callbacks ---- */

static void *
uri_log(void *cls, const char *uri, struct MHD_Connection *mc)
{
	struct http_server *s = cls;
	size_t len = strlen(uri);
	struct req *q;
	char *qm;

	q = calloc(1, sizeof(*q) + len + 1);
	if (q == NULL)
		return NULL; /* on_access answers with MHD_NO */
	memcpy(q->uri, uri, len + 1);
	q->raw_len = len;
	q->srv = s;
	q->mc = mc;
	q->conn = conn_of(mc);
	q->path = q->uri;
	qm = strchr(q->uri, '?');
	if (qm != NULL) {
		*qm = '\0';
		q->query = qm + 1;
	} else {
		q->query = q->uri + len;
	}
	atomic_fetch_add(&s->inflight, 1);
	return q;
}

static void
req_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
              enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	struct req *q = *con_cls;
	struct qval *v, *next;

	if (q == NULL)
		return;
	/* the answer is over: the wait for the next request starts */
	if (q->conn != NULL) {
		atomic_store(&q->conn->ready_ms, now_ms());
		atomic_store(&q->conn->answering, false);
		if (q->conn->session != NULL)
			tls_uncork(q->conn);
	}
	own_drop(q);
	for (v = q->qvals; v != NULL; v = next) {
		next = v->next;
		free(v);
	}
	/* a body may carry a secret code: wipe it */
	if (q->body != NULL)
		sodium_memzero(q->body, q->body_cap);
	free(q->body);
	free(q);
	*con_cls = NULL;
	atomic_fetch_sub(&s->inflight, 1);
}

/* Parses a Content-Length value; returns false if it is not plain digits
 * that fit. */
static bool
parse_length(const char *v, unsigned long long *out)
{
	char *end;

	if (v == NULL || *v < '0' || *v > '9')
		return false;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno == 0 && *end == '\0';
}

/*
 * A NUL byte inside the request target ends the C string MHD hands us, so
 * "GET /a\0/../x HTTP/1.1" would look like "/a".  MHD splits the request
 * line in place: url is the target (decoded in place, never longer) and
 * version starts right after the single byte that ended it.  When version
 * lies further than that past url, bytes were hidden behind a NUL.  If
 * the two pointers are not in that shape (some other layout), nothing is
 * concluded and the ordinary checks apply.
 */
static bool
hidden_nul(const struct req *q, const char *url, const char *version)
{
	uintptr_t u = (uintptr_t)url, v = (uintptr_t)version;

	if (url == NULL || version == NULL || v <= u || v - u > 65536)
		return false;
	return v - u > q->raw_len + 1;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *mc, const char *url,
          const char *method, const char *version, const char *upload_data,
          size_t *upload_data_size, void **con_cls)
{
	struct http_server *s = cls;
	struct req *q = *con_cls;

	if (q == NULL)
		return MHD_NO; /* uri_log ran out of memory */

	if (!q->started) {
		unsigned long long cl;

		q->started = true;
		if (hidden_nul(q, url, version) || !path_ok(q->path)) {
			answering(q);
			return queue_text(mc, MHD_HTTP_BAD_REQUEST, "bad request path\n");
		}
		q->route = find_route(s, q->path);
		if (q->route == NULL) {
			answering(q);
			return queue_text(mc, MHD_HTTP_NOT_FOUND, "not found\n");
		}
		if (parse_length(MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
		        MHD_HTTP_HEADER_CONTENT_LENGTH), &cl) &&
		    cl > q->route->max_body) {
			answering(q);
			return too_large(q, method);
		}
		return MHD_YES;
	}

	if (*upload_data_size != 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (q->reject == 0 && n <= q->route->max_body - q->body_len) {
			/* the body may hold a secret code: grown by wipe_grow */
			if (wipe_grow(&q->body, &q->body_cap, q->body_len, q->body_len + n + 1) != 0)
				return MHD_NO;
			memcpy(q->body + q->body_len, upload_data, n);
			q->body_len += n;
			q->body[q->body_len] = '\0';
			return MHD_YES;
		}
		/* Over the limit (chunked, or a lying Content-Length): drop the
		 * rest, answer 413 at the end, or hang up if it never ends. */
		q->reject = MHD_HTTP_CONTENT_TOO_LARGE;
		q->discarded += n;
		return q->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
	}

	answering(q);
	if (q->reject != 0)
		return too_large(q, method);
	if (q->own != NULL) { /* resumed: own_run has answered */
		struct http_response *res = q->own;
		enum MHD_Result ret;

		q->own = NULL;
		ret = send_response(q, res);
		free(res);
		return ret;
	}
	if (own_wanted(q, method) && own_start(q, method))
		return MHD_YES;
	return run_handler(q, method);
}

/* MHD's logger: keeps the message raised while MHD_start_daemon runs on
 * the starting thread, drops everything else (no noise per connection). */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct http_server *s = cls;

	if (!atomic_load(&s->starting) || !pthread_equal(pthread_self(), s->starter))
		return;
	if (vsnprintf(s->start_err, sizeof(s->start_err), fmt, ap) < 0)
		s->start_err[0] = '\0';
	/* drop a trailing newline */
	size_t n = strlen(s->start_err);
	while (n > 0 && (s->start_err[n - 1] == '\n' || s->start_err[n - 1] == '\r'))
		s->start_err[--n] = '\0';
}

/* ---- start and stop ---- */

static int
cmp_route(const void *a, const void *b)
{
	const struct route *x = a, *y = b;

	if (x->prefix_len != y->prefix_len)
		return x->prefix_len > y->prefix_len ? -1 : 1;
	return strcmp(x->prefix, y->prefix);
}

static void
free_server(struct http_server *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nroutes; i++)
		free(s->routes[i].prefix);
	free(s->routes);
	sodium_memzero(s->digest_key, sizeof(s->digest_key));
	digest_seen_free(s->digest_seen);
	pthread_cond_destroy(&s->sweep_cond);
	pthread_mutex_destroy(&s->conns_lock);
	free(s);
}

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr,
    socklen_t addrlen);

struct http_server *
http_start(const struct http_opts *o, const struct http_route *routes,
           size_t nroutes, char *err, size_t errlen)
{
	struct http_server *s;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	unsigned flags;
	const union MHD_DaemonInfo *di;
	struct MHD_OptionItem opts[24];
	size_t i, no = 0;

	if (o == NULL || o->listen == NULL) {
		hd_seterr(err, errlen, "no listen address");
		return NULL;
	}
	if (o->port > 65535) {
		hd_seterr(err, errlen, "port %u out of range", o->port);
		return NULL;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, o->listen, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)o->port);
	} else if (inet_pton(AF_INET6, o->listen, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)o->port);
	} else {
		hd_seterr(err, errlen, "listen address is not a numeric IPv4 or IPv6 address");
		return NULL;
	}
	if (sodium_init() < 0) {
		hd_seterr(err, errlen, "libsodium failed to initialise");
		return NULL;
	}

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto oom;
	atomic_init(&s->inflight, 0);
	atomic_init(&s->starting, false);
	pthread_mutex_init(&s->conns_lock, NULL);
	lockorder_register(&s->conns_lock, LOCK_HTTP_CONNS, "http conns");
	pthread_cond_init(&s->sweep_cond, NULL);
	s->tls = o->tls;
	s->request_timeout_s = o->request_timeout_s;
	s->routes = calloc(nroutes ? nroutes : 1, sizeof(*s->routes));
	if (s->routes == NULL)
		goto oom;
	for (i = 0; i < nroutes; i++) {
		struct route *r = &s->routes[s->nroutes];

		if (routes[i].prefix == NULL || routes[i].handler == NULL) {
			hd_seterr(err, errlen, "route %zu has no prefix or handler", i);
			goto fail;
		}
		/* a route of an interface this listener does not serve is
		 * left out: its paths get 404 here */
		if (o->serves != 0 && routes[i].iface != 0 && (routes[i].iface & o->serves) == 0)
			continue;
		r->prefix = strdup(routes[i].prefix);
		if (r->prefix == NULL)
			goto oom;
		s->nroutes++;
		r->prefix_len = strlen(routes[i].prefix);
		r->handler = routes[i].handler;
		r->arg = routes[i].arg;
		r->max_body = routes[i].max_body;
		r->own_thread = routes[i].own_thread;
		r->own_thread_if = routes[i].own_thread_if;
		for (size_t k = 0; k < o->n_too_large; k++)
			if (strcmp(o->too_large[k].prefix, routes[i].prefix) == 0)
				r->too_large = o->too_large[k].handler;
	}
	qsort(s->routes, s->nroutes, sizeof(*s->routes), cmp_route);

	randombytes_buf(s->digest_key, sizeof(s->digest_key));
	if ((s->digest_seen = digest_seen_new(HTTP_DIGEST_SEEN)) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		goto fail;
	}

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
	        MHD_ALLOW_SUSPEND_RESUME;
	/* TLS listeners use poll(): libmicrohttpd 0.9.75's epoll loop keeps a
	 * connection that is waiting for the client's next handshake message
	 * marked readable (only a record read that finds nothing clears the
	 * mark, a handshake never does), so it retries the handshake in a
	 * busy loop until the client answers: 100+ recv() calls and 1-2 ms
	 * of CPU per new TLS connection on a loaded machine.  poll() waits
	 * for the socket. */
	if (o->tls == NULL && MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	else
		flags |= MHD_USE_POLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_DUAL_STACK;

	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &ss };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER,
	                                       (intptr_t)mhd_log, s };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK,
	                                       (intptr_t)uri_log, s };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
	                                       (intptr_t)req_completed, s };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
	                                       (intptr_t)o->timeout_s, NULL };
	if (o->conn_limit > 0)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT,
		                                       (intptr_t)o->conn_limit, NULL };
	if (o->threads > 1)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE,
		                                       (intptr_t)o->threads, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
	                                       (intptr_t)on_connection, s };
	if (o->conn_memory > 0)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		                                       (intptr_t)o->conn_memory, NULL };
	if (o->per_source_limit > 0)
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		                                       (intptr_t)o->per_source_limit, NULL };
	if (o->tls != NULL) {
		flags |= MHD_USE_TLS;
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
		                                       (void *)tls_pick_cert };
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
		                                       o->tls->priorities };
	}
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	s->starter = pthread_self();
	atomic_store(&s->starting, true);
	s->d = MHD_start_daemon(flags, 0, accept_policy, s, on_access, s,
	                        MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	atomic_store(&s->starting, false);
	if (s->d == NULL) {
		hd_seterr(err, errlen, "cannot listen on %s port %u: %s", o->listen,
		        o->port, s->start_err[0] ? s->start_err : "start failed");
		goto fail;
	}
	di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : o->port;
	if (o->request_timeout_s > 0 || o->tls != NULL) {
		if (pthread_create(&s->sweeper, NULL, sweep, s) != 0) {
			hd_seterr(err, errlen, "cannot start the connection sweeper");
			MHD_stop_daemon(s->d);
			goto fail;
		}
		s->sweeping = true;
	}
	return s;
oom:
	hd_seterr(err, errlen, "out of memory");
fail:
	free_server(s);
	return NULL;
}

unsigned
http_port(const struct http_server *s)
{
	return s ? s->port : 0;
}

/* Refuses new connections once http_stop has begun.  MHD_quiesce_daemon is
 * not used for that: in libmicrohttpd 0.9.75 it races with the epoll
 * workers of a thread pool, which take the listening socket out of their
 * epoll set themselves once quiesced, and the loser of that race aborts the
 * process ("Failed to remove listen FD from epoll set"). */
static enum MHD_Result
accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct http_server *s = cls;

	(void)addr;
	(void)addrlen;
	return atomic_load(&s->draining) ? MHD_NO : MHD_YES;
}

void
http_stop(struct http_server *s)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int waited = 0;

	if (s == NULL)
		return;
	atomic_store(&s->draining, true);
	for (;;) {
		if (atomic_load(&s->own_running) == 0) {
			if (atomic_load(&s->inflight) == 0 || waited >= STOP_WAIT_MS)
				break;
			waited += 10;
		}
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(s->d);
	if (s->sweeping) {
		pthread_mutex_lock(&s->conns_lock);
		s->stopping = true;
		pthread_cond_signal(&s->sweep_cond);
		pthread_mutex_unlock(&s->conns_lock);
		pthread_join(s->sweeper, NULL);
	}
	free_server(s);
}

/* ---- request accessors ---- */

const char *
http_header(const struct http_request *req, const char *name)
{
	const struct req *q = req->conn;

	return MHD_lookup_connection_value(q->mc, MHD_HEADER_KIND, name);
}

bool
http_media_type_is(const char *value, const char *type)
{
	size_t n = strlen(type);

	if (value == NULL)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, type, n) != 0)
		return false;
	value += n;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value == '\0' || *value == ';';
}

const char *
http_bearer(const struct http_request *req)
{
	const char *v = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
	size_t i;

	if (v == NULL || strncasecmp(v, "Bearer", 6) != 0 ||
	    (v[6] != ' ' && v[6] != '\t'))
		return NULL;
	v += 6;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v == '\0')
		return NULL;
	for (i = 0; v[i]; i++)
		if (v[i] == ' ' || v[i] == '\t' || is_ctl((unsigned char)v[i]))
			return NULL;
	return v;
}

const char *
http_query_arg(const struct http_request *req, const char *name)
{
	struct req *q = req->conn;
	const char *p = req->query;
	size_t nlen = strlen(name);

	while (*p) {
		const char *amp = strchr(p, '&');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;

		/* The decoded key is never longer than the raw one. */
		if (klen >= nlen && klen <= 3 * nlen) {
			char *k = malloc(klen + 1);
			if (k == NULL)
				return NULL;
			long r = form_unescape(p, klen, true, k);
			bool match = r == (long)nlen && memcmp(k, name, nlen) == 0;
			free(k);
			if (match) {
				const char *v = eq ? eq + 1 : p + plen;
				size_t vlen = eq ? plen - klen - 1 : 0;
				struct qval *qv = malloc(sizeof(*qv) + vlen + 1);
				if (qv == NULL)
					return NULL;
				if (form_unescape(v, vlen, true, qv->text) < 0) {
					free(qv);
					return NULL;
				}
				qv->next = q->qvals;
				q->qvals = qv;
				return qv->text;
			}
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return NULL;
}

/* ---- paths ---- */

/* The part of path after prefix (and one '/' right after it), or NULL. */
static const char *
after_prefix(const char *path, const char *prefix)
{
	size_t pl = strlen(prefix);

	if (strncmp(path, prefix, pl) != 0)
		return NULL;
	path += pl;
	if (*path == '/')
		path++;
	return path;
}

int
http_path_nsegments(const char *path, const char *prefix)
{
	const char *p = after_prefix(path, prefix);
	int n = 0;

	if (p == NULL)
		return -1;
	while (*p) {
		const char *sl = strchr(p, '/');
		n++;
		if (sl == NULL)
			break;
		p = sl + 1; /* a trailing '/' leaves p at "" and ends the loop */
	}
	return n;
}

int
http_path_segment(const char *path, const char *prefix, int n,
                  char *out, size_t outlen)
{
	const char *p = after_prefix(path, prefix);
	const char *sl;
	size_t len, i;
	char *tmp;
	long r;

	if (p == NULL || n < 0 || out == NULL || outlen == 0)
		return -1;
	for (; n > 0; n--) {
		sl = strchr(p, '/');
		if (sl == NULL)
			return -1;
		p = sl + 1;
	}
	sl = strchr(p, '/');
	len = sl ? (size_t)(sl - p) : strlen(p);
	if (len == 0)
		return -1;
	tmp = malloc(len + 1);
	if (tmp == NULL)
		return -1;
	r = form_unescape(p, len, false, tmp);
	if (r <= 0 || (size_t)r >= outlen || r > INT32_MAX)
		goto bad;
	for (i = 0; i < (size_t)r; i++) {
		unsigned char c = (unsigned char)tmp[i];
		if (c == '/' || c == '\\' || is_ctl(c))
			goto bad;
	}
	if (strcmp(tmp, ".") == 0 || strcmp(tmp, "..") == 0)
		goto bad;
	memcpy(out, tmp, (size_t)r + 1);
	free(tmp);
	return (int)r;
bad:
	free(tmp);
	return -1;
}

/* ---- digest ---- */

/* The request-target as the client wrote it (the digest "uri"). */
static int
request_uri(const struct http_request *req, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s%s", req->path, req->query[0] ? "?" : "", req->query);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The parsed Authorization header into a, its text in buf (freed by the
 * caller).  0, or -1 when absent or not a well-formed Digest header. */
static int
auth_header(const struct http_request *req, char **buf, struct digest_auth *a)
{
	const char *h = http_header(req, "Authorization");

	*buf = NULL;
	if (h == NULL || (*buf = strdup(h)) == NULL)
		return -1;
	return digest_parse(*buf, a);
}

char *
http_digest_username(const struct http_request *req)
{
	struct digest_auth a;
	char *buf, *u = NULL;

	if (auth_header(req, &buf, &a) == 0)
		u = strdup(a.username);
	free(buf);
	return u;
}

int
http_digest_check(const struct http_request *req, const char *realm,
                  const char *username, const char *password)
{
	const struct req *q = req->conn;
	struct digest_auth a;
	char *buf, uri[4096];
	int rc = 0;

	if (realm == NULL || username == NULL || password == NULL)
		return 0;
	if (auth_header(req, &buf, &a) == 0 && request_uri(req, uri, sizeof(uri)) == 0) {
		switch (digest_check(&a, q->srv->digest_key, q->srv->digest_seen, realm, username,
		                     password, req->method, uri, (long long)time(NULL),
		                     HTTP_DIGEST_NONCE_S)) {
		case DIGEST_OK: rc = 1; break;
		case DIGEST_STALE: /* fall through: a fresh nonce, at once */
		case DIGEST_REPLAY: rc = -1; break;
		default: rc = 0;
		}
	}
	free(buf);
	return rc;
}

void
http_digest_challenge(const struct http_request *req, struct http_response *res,
                      const char *realm, bool stale)
{
	const struct req *q = req->conn;
	char uri[4096];

	if (realm == NULL || request_uri(req, uri, sizeof(uri)) != 0 ||
	    digest_challenge(q->srv->digest_key, realm, uri, (long long)time(NULL), stale,
	                     res->www_authenticate, sizeof(res->www_authenticate)) != 0) {
		res->www_authenticate[0] = '\0';
		(void)http_printf(res, 500, DEFAULT_CTYPE, "realm too long\n");
		return;
	}
	(void)http_printf(res, 401, DEFAULT_CTYPE, "authentication required\n");
}

const char *
http_cookie(const struct http_request *req, const char *name, char *out, size_t outlen)
{
	const char *h = http_header(req, "Cookie");
	size_t nl = strlen(name);

	/* "a=1; b=2": pairs separated by ';' and blanks */
	while (h != NULL && *h != '\0') {
		const char *end;
		size_t vl;

		h += strspn(h, " \t;");
		end = h + strcspn(h, ";");
		if ((size_t)(end - h) > nl && strncmp(h, name, nl) == 0 && h[nl] == '=') {
			vl = (size_t)(end - h) - nl - 1;
			while (vl > 0 && (h[nl + 1 + vl - 1] == ' ' || h[nl + 1 + vl - 1] == '\t'))
				vl--;
			if (vl == 0 || vl >= outlen)
				return NULL;
			memcpy(out, h + nl + 1, vl);
			out[vl] = '\0';
			return out;
		}
		h = end;
	}
	return NULL;
}
