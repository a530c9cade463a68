/*
 * test_http.c -- http.c driven over real sockets: a server on 127.0.0.1
 * with an OS-chosen port, a raw socket client written here (keep-alive,
 * exact bytes, NUL in the request line) and curl (digest auth, uploads).
 * Checks routing, body limits, the path check (handler never called),
 * HEAD, static bodies released exactly once, concurrency and stop.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "testutil.h"

#define ECHO_MAX 64

/* snprintf into an array, failing the test on truncation (test thread only). */
#define FMT(buf, ...) \
	cr_assert_lt((size_t)snprintf((buf), sizeof(buf), __VA_ARGS__), sizeof(buf), "truncated")

static atomic_int calls;          /* handler calls, all routes */
static atomic_int static_freed;   /* static_free calls */
static atomic_int static_sent;    /* responses that carried a static body */
static struct http_server *srv;
static unsigned port;

static const char static_text[] = "static-config-body-0123456789";

/* /echo/: describes the request it got. */
static void
h_echo(void *arg, const struct http_request *req, struct http_response *res)
{
	const char *q = http_query_arg(req, "q");
	const char *x = http_header(req, "X-Test");
	const char *b = http_bearer(req);
	char peer[64] = "?";

	atomic_fetch_add(&calls, 1);
	if (req->peer && req->peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)req->peer)->sin_addr,
		          peer, sizeof(peer));
	http_printf(res, 200, "text/plain", "%s %s q=%s x=%s bearer=%s peer=%s head=%d body=[%.*s]",
	            req->method, req->path, q ? q : "(null)", x ? x : "(null)",
	            b ? b : "(null)", peer, res->head_only, (int)req->body_len, req->body);
	memcpy(res->etag, "\"v1\"", 5);
}

static void
static_release(void *ref)
{
	atomic_int *n = ref;
	atomic_fetch_add(n, 1);
}

/* /static/: a borrowed body; /static/both also sets a heap body. */
static void
h_static(void *arg, const struct http_request *req, struct http_response *res)
{
	atomic_fetch_add(&calls, 1);
	if (strcmp(req->path, "/static/both") == 0) {
		http_printf(res, 200, NULL, "heap wins");
	} else {
		res->static_body = static_text;
		res->body_len = sizeof(static_text) - 1;
		atomic_fetch_add(&static_sent, 1);
	}
	res->content_type = "application/xml";
	res->static_free = static_release;
	res->static_ref = &static_freed;
}

/* /auth/: digest with alice / s3cret. */
static void
h_auth(void *arg, const struct http_request *req, struct http_response *res)
{
	const char *realm = "hotdeskd-test";
	char *user = http_digest_username(req);
	int r = -2;

	atomic_fetch_add(&calls, 1);
	if (user != NULL && strcmp(user, "alice") == 0)
		r = http_digest_check(req, realm, user, "s3cret");
	if (r == 1)
		http_printf(res, 200, NULL, "welcome %s", user);
	else
		http_digest_challenge(req, res, realm, r == -1);
	free(user);
}

/* /slow/: takes a while (for stop). */
static void
h_slow(void *arg, const struct http_request *req, struct http_response *res)
{
	struct timespec ts = { 0, 400 * 1000 * 1000 };

	atomic_fetch_add(&calls, 1);
	nanosleep(&ts, NULL);
	http_printf(res, 200, NULL, "slow done");
}

static void
start(void)
{
	static const struct http_route routes[] = {
		{ "/echo/", h_echo, NULL, ECHO_MAX, 0, false, NULL },
		{ "/echo/big/", h_echo, NULL, 4096, 0, false, NULL }, /* longest prefix wins */
		{ "/static/", h_static, NULL, 0, 0, false, NULL },
		{ "/auth/", h_auth, NULL, 0, 0, false, NULL },
		{ "/slow/", h_slow, NULL, 0, 0, false, NULL },
	};
	struct http_opts o = { .listen = "127.0.0.1", .threads = 4, .conn_limit = 64,
	                       .timeout_s = 10 };
	char err[256] = "";

	atomic_store(&calls, 0);
	atomic_store(&static_freed, 0);
	atomic_store(&static_sent, 0);
	srv = http_start(&o, routes, sizeof(routes) / sizeof(routes[0]), err, sizeof(err));
	cr_assert_not_null(srv, "http_start: %s", err);
	port = http_port(srv);
	cr_assert_gt(port, 0);
}

static void
stop(void)
{
	http_stop(srv);
	srv = NULL;
}

TestSuite(http, .init = start, .fini = stop, .timeout = 30);

/* ---- a raw HTTP/1.1 client ---- */

struct client {
	int fd;
	char buf[65536];
	size_t len;
};

struct resp {
	int status;
	char head[8192];     /* status line and headers, NUL-terminated */
	char body[16384];
	size_t body_len;
	long clen;           /* Content-Length, -1 if none */
};

static void
cl_open(struct client *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->len = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(c->fd, 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
}

static void
cl_send(struct client *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n <= 0)
			return; /* the server may hang up early (413): read what it said */
		data += n;
		len -= (size_t)n;
	}
}

static void
cl_sends(struct client *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Reads more into the buffer; returns bytes read (0 on EOF/timeout). */
static size_t
cl_fill(struct client *c)
{
	if (c->len >= sizeof(c->buf))
		return 0;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	if (n <= 0)
		return 0;
	c->len += (size_t)n;
	return (size_t)n;
}

/* Reads one response; with head, no body is expected whatever the
 * Content-Length.  Returns 0, or -1 if the connection ended first. */
static int
cl_read(struct client *c, struct resp *r, bool head)
{
	char *end;
	size_t hlen;

	memset(r, 0, sizeof(*r));
	r->clen = -1;
	for (;;) {
		end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (end != NULL)
			break;
		if (cl_fill(c) == 0)
			return -1;
	}
	hlen = (size_t)(end - c->buf) + 4;
	cr_assert_lt(hlen, sizeof(r->head));
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	cr_assert_eq(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1, "bad status line: %s", r->head);
	char *cl = strcasestr(r->head, "\r\nContent-Length:");
	if (cl != NULL)
		r->clen = strtol(cl + 17, NULL, 10);
	memmove(c->buf, c->buf + hlen, c->len - hlen);
	c->len -= hlen;
	if (head || r->clen <= 0)
		return 0;
	cr_assert_lt((size_t)r->clen, sizeof(r->body));
	while (c->len < (size_t)r->clen)
		if (cl_fill(c) == 0)
			return -1;
	memcpy(r->body, c->buf, (size_t)r->clen);
	r->body_len = (size_t)r->clen;
	r->body[r->body_len] = '\0';
	memmove(c->buf, c->buf + r->clen, c->len - (size_t)r->clen);
	c->len -= (size_t)r->clen;
	return 0;
}

static void
cl_close(struct client *c)
{
	close(c->fd);
}

/* One request on a fresh connection. */
static void
request(const char *raw, struct resp *r)
{
	struct client c;

	cl_open(&c);
	cl_sends(&c, raw);
	cr_assert_eq(cl_read(&c, r, strncmp(raw, "HEAD", 4) == 0), 0, "no response to %s", raw);
	cl_close(&c);
}

static int
get_status(const char *target)
{
	char raw[1024];
	struct resp r;

	FMT(raw, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", target);
	request(raw, &r);
	return r.status;
}

/* Runs a shell command (curl) and returns its stdout. */
static char *
run(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char *out = calloc(1, 65536);
	size_t n = 0, got;

	cr_assert_not_null(p);
	while ((got = fread(out + n, 1, 65535 - n, p)) > 0)
		n += got;
	pclose(p);
	return out;
}

/* ---- tests ---- */

Test(http, get_with_query_headers_and_bearer)
{
	struct resp r;

	request("GET /echo/abc?x=1&q=a%20b+c%2B HTTP/1.1\r\nHost: t\r\nX-Test: hello\r\n"
	        "Authorization: Bearer tok-123\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "GET /echo/abc q=a b c+ x=hello bearer=tok-123 peer=127.0.0.1 head=0 body=[]");
	cr_assert(strcasestr(r.head, "\r\nContent-Type: text/plain\r\n") != NULL, "%s", r.head);
	cr_assert(strcasestr(r.head, "\r\nETag: \"v1\"\r\n") != NULL, "%s", r.head);
	cr_assert_eq(atomic_load(&calls), 1);
}

Test(http, bearer_variants)
{
	struct resp r;

	request("GET /echo/ HTTP/1.1\r\nHost: t\r\nAuthorization: bearer   tok\r\nConnection: close\r\n\r\n", &r);
	cr_assert(strstr(r.body, "bearer=tok ") != NULL, "%s", r.body);
	request("GET /echo/ HTTP/1.1\r\nHost: t\r\nAuthorization: Basic dTpw\r\nConnection: close\r\n\r\n", &r);
	cr_assert(strstr(r.body, "bearer=(null)") != NULL, "%s", r.body);
	request("GET /echo/ HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer\r\nConnection: close\r\n\r\n", &r);
	cr_assert(strstr(r.body, "bearer=(null)") != NULL, "%s", r.body);
	request("GET /echo/ HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer a b\r\nConnection: close\r\n\r\n", &r);
	cr_assert(strstr(r.body, "bearer=(null)") != NULL, "%s", r.body);
}

Test(http, post_body_echo_and_limit)
{
	struct resp r;
	char raw[1024], body[ECHO_MAX + 1];

	memset(body, 'b', ECHO_MAX);
	body[ECHO_MAX] = '\0';
	/* exactly max_body: accepted */
	FMT(raw, "POST /echo/p HTTP/1.1\r\nHost: t\r\nContent-Type: "
	         "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n"
	         "Connection: close\r\n\r\n%s", ECHO_MAX, body);
	request(raw, &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, body) != NULL, "%s", r.body);
	cr_assert_eq(atomic_load(&calls), 1);

	/* one more byte: 413 from the declared length, handler not called */
	FMT(raw, "POST /echo/p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
	         "Connection: close\r\n\r\n%sX", ECHO_MAX + 1, body);
	request(raw, &r);
	cr_assert_eq(r.status, 413);
	cr_assert_eq(atomic_load(&calls), 1);

	/* a longer prefix has its own, larger limit */
	FMT(raw, "POST /echo/big/x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
	         "Connection: close\r\n\r\n%sX", ECHO_MAX + 1, body);
	request(raw, &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(atomic_load(&calls), 2);
}

Test(http, rejected_body_is_never_parsed_as_a_request)
{
	static const char smuggled[] = "GET /echo/smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
	                               "GET /echo/smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
	char raw[1024];
	struct client c;
	struct resp r;

	/* over the limit on a keep-alive connection: the body (which looks
	 * like requests) must be dropped or the connection closed */
	FMT(raw, "POST /echo/p HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
	         sizeof(smuggled) - 1, smuggled);
	cl_open(&c);
	cl_sends(&c, raw);
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cr_assert_eq(r.status, 413);
	/* whatever follows is either refused or a clean EOF, never served */
	while (cl_read(&c, &r, false) == 0)
		cr_assert_neq(r.status, 200, "smuggled request served: %s", r.body);
	cl_close(&c);
	/* and a 404 or 400 with a body pending likewise */
	FMT(raw, "POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s",
	         sizeof(smuggled) - 1, smuggled);
	cl_open(&c);
	cl_sends(&c, raw);
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cr_assert_eq(r.status, 404);
	while (cl_read(&c, &r, false) == 0)
		cr_assert_neq(r.status, 200, "smuggled request served: %s", r.body);
	cl_close(&c);
	cr_assert_eq(atomic_load(&calls), 0);
}

Test(http, chunked_body_over_limit)
{
	struct resp r;
	struct client c;

	/* no Content-Length: the limit is found while reading */
	cl_open(&c);
	cl_sends(&c, "POST /echo/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
	         "Connection: close\r\n\r\n"
	         "28\r\n0123456789012345678901234567890123456789\r\n"
	         "28\r\n0123456789012345678901234567890123456789\r\n0\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cl_close(&c);
	cr_assert_eq(r.status, 413);
	cr_assert_eq(atomic_load(&calls), 0);

	/* under the limit, chunked: delivered whole */
	cl_open(&c);
	cl_sends(&c, "POST /echo/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
	         "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cl_close(&c);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "body=[hello world]") != NULL, "%s", r.body);
}

Test(http, curl_upload_over_limit)
{
	char cmd[512];
	char *out;

	FMT(cmd, "head -c 5000 /dev/zero | tr '\\0' a | curl -s -o /dev/null "
	         "-w '%%{http_code}' --data-binary @- http://127.0.0.1:%u/echo/x", port);
	out = run(cmd);
	cr_assert_str_eq(out, "413");
	free(out);
	FMT(cmd, "curl -s -d 'caller=alice&digits=201' http://127.0.0.1:%u/echo/x", port);
	out = run(cmd);
	cr_assert(strstr(out, "POST /echo/x") && strstr(out, "body=[caller=alice&digits=201]"), "%s", out);
	free(out);
	cr_assert_eq(atomic_load(&calls), 1);
}

Test(http, unknown_route_404)
{
	struct resp r;

	request("GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 404);
	cr_assert_str_eq(r.body, "not found\n");
	cr_assert_eq(get_status("/echo"), 404); /* prefix is "/echo/" */
	cr_assert_eq(atomic_load(&calls), 0);
}

Test(http, traversal_and_bad_paths_400)
{
	const char *bad[] = {
		"/echo/../etc/passwd", "/echo/a/../b", "/a/../echo/b", "/echo/a/%2e%2e/b",
		"/echo/%2E%2e", "/echo/%2E./x", "/echo/.%2e", "/echo/./x", "/echo/%2e/x",
		"/echo/..", "/echo/a%00b", "/echo/a%00", "/echo/%00", "//echo/a", "/echo//a",
		"/echo/a\\b", "/echo/a%5cb", "/echo/a%5C..%5Cb", "/echo/%zz", "/echo/a%2",
		"/echo/a%0a",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(get_status(bad[i]), 400, "%s", bad[i]);
	cr_assert_eq(atomic_load(&calls), 0, "a handler saw a bad path");

	/* dots inside names are fine */
	cr_assert_eq(get_status("/echo/a..b/.hidden/x.cfg"), 200);
	cr_assert_eq(get_status("/echo/...%2e"), 200);
	cr_assert_eq(atomic_load(&calls), 2);
}

Test(http, nul_in_request_line)
{
	static const char raw[] = "GET /echo/a\0/../../etc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	struct client c;
	struct resp r;

	cl_open(&c);
	cl_send(&c, raw, sizeof(raw) - 1);
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cl_close(&c);
	cr_assert_eq(r.status, 400);
	cr_assert_eq(atomic_load(&calls), 0);

	static const char rawq[] = "GET /echo/a?q=1\0x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	cl_open(&c);
	cl_send(&c, rawq, sizeof(rawq) - 1);
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cl_close(&c);
	cr_assert_eq(r.status, 400);
	cr_assert_eq(atomic_load(&calls), 0);
}

Test(http, head_has_length_but_no_body)
{
	struct client c;
	struct resp r;

	cl_open(&c);
	cl_sends(&c, "HEAD /static/cfg.xml HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, true), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.clen, (long)sizeof(static_text) - 1, "%s", r.head);
	cr_assert(strcasestr(r.head, "\r\nContent-Type: application/xml\r\n") != NULL, "%s", r.head);
	/* if HEAD had sent a body, this GET's status line would be garbage */
	cl_sends(&c, "HEAD /echo/h HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, true), 0);
	cr_assert_eq(r.status, 200);
	long echo_len = r.clen;
	cl_sends(&c, "GET /echo/h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, false), 0);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, "GET /echo/h") == r.body, "%s", r.body);
	/* the HEAD answer advertised the length of the body it would have had */
	cr_assert_eq(echo_len, r.clen + 1, "HEAD %ld vs GET %ld", echo_len, r.clen); /* "HEAD" vs "GET" */
	cl_close(&c);
}

Test(http, keep_alive_two_requests_one_connection)
{
	struct client c;
	struct resp r1, r2;

	cl_open(&c);
	cl_sends(&c, "GET /echo/one HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r1, false), 0);
	cr_assert_eq(r1.status, 200);
	cr_assert(strcasestr(r1.head, "Connection: close") == NULL, "%s", r1.head);
	cl_sends(&c, "POST /echo/two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
	cr_assert_eq(cl_read(&c, &r2, false), 0, "second request on the same connection failed");
	cr_assert_eq(r2.status, 200);
	cr_assert(strstr(r1.body, "GET /echo/one") == r1.body);
	cr_assert(strstr(r2.body, "POST /echo/two") == r2.body && strstr(r2.body, "body=[abc]"));
	/* pipelined: two requests in one write */
	cl_sends(&c, "GET /echo/p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /echo/p2 HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r1, false), 0);
	cr_assert_eq(cl_read(&c, &r2, false), 0);
	cr_assert(strstr(r1.body, "/echo/p1") && strstr(r2.body, "/echo/p2"));
	cl_close(&c);
	cr_assert_eq(atomic_load(&calls), 4);
}

Test(http, static_body_counts)
{
	struct client c;
	struct resp r;
	int i, expect = 0;

	cl_open(&c);
	for (i = 0; i < 10; i++) {
		cl_sends(&c, "GET /static/a.cfg HTTP/1.1\r\nHost: t\r\n\r\n");
		cr_assert_eq(cl_read(&c, &r, false), 0);
		expect++;
	}
	cl_sends(&c, "HEAD /static/a.cfg HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, true), 0);
	expect++;
	cl_sends(&c, "GET /static/both HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&c, &r, false), 0);
	expect++;
	/* clients that leave before reading their answers (the request may or
	 * may not reach the handler: every response made is released) */
	for (i = 0; i < 5; i++) {
		struct client c2;
		cl_open(&c2);
		cl_sends(&c2, "GET /static/gone HTTP/1.1\r\nHost: t\r\n\r\n");
		cl_close(&c2);
	}
	cl_close(&c);
	http_stop(srv); /* MHD is done with every response once stopped */
	srv = NULL;
	int made = atomic_load(&calls);
	cr_assert_geq(made, expect);
	cr_assert_eq(atomic_load(&static_freed), made, "freed %d of %d",
	             atomic_load(&static_freed), made);
	cr_assert_eq(atomic_load(&static_sent), made - 1);
}

Test(http, digest_auth_with_curl)
{
	char cmd[512];
	char *out;

	FMT(cmd, "curl -s --digest -u alice:s3cret -w ' %%{http_code}' "
	         "http://127.0.0.1:%u/auth/cfg", port);
	out = run(cmd);
	cr_assert_str_eq(out, "welcome alice 200");
	free(out);

	FMT(cmd, "curl -s --digest -u alice:wrong -o /dev/null -w '%%{http_code}' "
	         "http://127.0.0.1:%u/auth/cfg", port);
	out = run(cmd);
	cr_assert_str_eq(out, "401");
	free(out);

	FMT(cmd, "curl -s --digest -u mallory:s3cret -o /dev/null -w '%%{http_code}' "
	         "http://127.0.0.1:%u/auth/cfg", port);
	out = run(cmd);
	cr_assert_str_eq(out, "401");
	free(out);
}

Test(http, digest_challenge_header)
{
	struct resp r;

	request("GET /auth/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 401);
	cr_assert(strcasestr(r.head, "\r\nWWW-Authenticate: Digest ") != NULL, "%s", r.head);
	cr_assert(strstr(r.head, "realm=\"hotdeskd-test\"") != NULL, "%s", r.head);
	cr_assert(strstr(r.head, "nonce=\"") != NULL, "%s", r.head);
	cr_assert(strstr(r.head, "stale") == NULL, "%s", r.head);
	cr_assert_str_eq(r.body, "authentication required\n");
	/* a made-up nonce is stale/invalid, never accepted */
	request("GET /auth/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Digest "
	        "username=\"alice\", realm=\"hotdeskd-test\", nonce=\"0000\", uri=\"/auth/x\", "
	        "response=\"00000000000000000000000000000000\", qop=auth, nc=00000001, "
	        "cnonce=\"abc\"\r\n\r\n", &r);
	cr_assert_eq(r.status, 401);
}

static void *
hammer(void *arg)
{
	int *ok = arg;
	struct client c;
	struct resp r;
	char raw[256], want[64];

	cl_open(&c);
	for (int i = 0; i < 50; i++) {
		int n1 = snprintf(raw, sizeof(raw), "GET /echo/t%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
		int n2 = snprintf(want, sizeof(want), "GET /echo/t%d ", i);
		if (n1 < 0 || (size_t)n1 >= sizeof(raw) || n2 < 0 || (size_t)n2 >= sizeof(want))
			break; /* counted as a failure by the caller */
		cl_sends(&c, raw);
		if (cl_read(&c, &r, false) == 0 && r.status == 200 && strstr(r.body, want) == r.body)
			(*ok)++;
	}
	cl_close(&c);
	return NULL;
}

Test(http, concurrent_clients)
{
	pthread_t t[8];
	int ok[8] = { 0 };

	for (int i = 0; i < 8; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &ok[i]), 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(ok[i], 50, "thread %d: %d of 50", i, ok[i]);
	}
	cr_assert_eq(atomic_load(&calls), 400);
}

static void *
slow_client(void *arg)
{
	struct resp *r = arg;
	struct client c;

	cl_open(&c);
	cl_sends(&c, "GET /slow/x HTTP/1.1\r\nHost: t\r\n\r\n");
	if (cl_read(&c, r, false) != 0)
		r->status = -1;
	cl_close(&c);
	return NULL;
}

Test(http, stop_finishes_in_flight_request)
{
	pthread_t t;
	struct resp r;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	memset(&r, 0, sizeof(r));
	cr_assert_eq(pthread_create(&t, NULL, slow_client, &r), 0);
	/* wait (bounded) until the handler is running */
	for (int i = 0; i < 200 && atomic_load(&calls) == 0; i++)
		nanosleep(&ts, NULL);
	cr_assert_eq(atomic_load(&calls), 1);
	http_stop(srv);
	srv = NULL;
	pthread_join(t, NULL);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "slow done");
}

Test(http, start_errors)
{
	static const struct http_route rt[] = { { "/", h_echo, NULL, 0, 0, false, NULL } };
	struct http_opts o = { .listen = "not-an-address", .threads = 1, .conn_limit = 8,
	                       .timeout_s = 5 };
	char err[256] = "";

	cr_assert_null(http_start(&o, rt, 1, err, sizeof(err)));
	cr_assert(strstr(err, "numeric") != NULL, "%s", err);
	o.listen = "127.0.0.1";
	o.port = port; /* taken by the suite's server */
	cr_assert_null(http_start(&o, rt, 1, err, sizeof(err)));
	cr_assert(strstr(err, "cannot listen") != NULL, "%s", err);
}

Test(http, ipv6_dual_stack)
{
	static const struct http_route rt[] = { { "/echo/", h_echo, NULL, 0, 0, false, NULL } };
	struct http_opts o = { .listen = "::", .threads = 2, .conn_limit = 8, .timeout_s = 5 };
	char err[256] = "";
	struct http_server *s6 = http_start(&o, rt, 1, err, sizeof(err));
	unsigned saved = port;
	struct resp r;

	if (s6 == NULL)
		cr_skip_test("no IPv6 here: %s", err);
	port = http_port(s6);
	cr_assert_gt(port, 0);
	request("GET /echo/v4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 200, "IPv4 client on a dual-stack socket");
	port = saved;
	http_stop(s6);
	http_stop(NULL);
}

/* A request whose headers hold pad bytes of padding, kept alive. */
static int
padded_status(struct client *c, size_t pad)
{
	char *raw = malloc(pad + 256), *h = malloc(pad + 1);
	struct resp r;

	cr_assert(raw != NULL && h != NULL);
	memset(h, 'a', pad);
	h[pad] = '\0';
	sprintf(raw, "GET /echo/p HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", h);
	cl_sends(c, raw);
	free(raw);
	free(h);
	cr_assert_eq(cl_read(c, &r, false), 0, "no answer to a request with %zu bytes of header", pad);
	return r.status;
}

/* The per-connection memory of a phones-only listener leaves room for
 * headers far larger than a phone's (under 2 KiB), request after request
 * on one connection; past it the answer is 431, not a cut connection.
 * Other listeners take twice as much. */
Test(http, connection_memory_fits_requests_and_refuses_past_it)
{
	static const struct http_route rt[] = { { "/echo/", h_echo, NULL, 0, 0, false, NULL } };
	struct http_opts o = { .listen = "127.0.0.1", .threads = 1, .conn_limit = 8,
	                       .timeout_s = 5, .conn_memory = HTTP_CONN_MEMORY_PHONES };
	char err[256] = "";
	struct http_server *s = http_start(&o, rt, 1, err, sizeof(err));
	unsigned saved = port;
	struct client c;

	cr_assert_not_null(s, "%s", err);
	port = http_port(s);
	cl_open(&c);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(padded_status(&c, 6000), 200);
		cr_assert_eq(padded_status(&c, 10), 200);
	}
	cr_assert_eq(padded_status(&c, 12000), 431);
	cl_close(&c);
	http_stop(s);
	o.conn_memory = HTTP_CONN_MEMORY;
	s = http_start(&o, rt, 1, err, sizeof(err));
	cr_assert_not_null(s, "%s", err);
	port = http_port(s);
	cl_open(&c);
	cr_assert_eq(padded_status(&c, 12000), 200);
	cr_assert_eq(padded_status(&c, 10), 200);
	cl_close(&c);
	port = saved;
	http_stop(s);
}

/* ---- own_thread routes: long handlers off the worker threads ---- */

static atomic_int gate_in;      /* h_gate calls that started */
static atomic_int gate_out;     /* h_gate calls that returned */
static atomic_bool gate_open;
static atomic_int gate_thread_mismatch; /* handler calls whose thread changed */

/* /gate/: waits (at most 10 s) until the test opens the gate, then
 * describes the request like /echo/. */
static void
h_gate(void *arg, const struct http_request *req, struct http_response *res)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	pthread_t self = pthread_self();

	atomic_fetch_add(&gate_in, 1);
	for (int i = 0; i < 2000 && !atomic_load(&gate_open); i++)
		nanosleep(&ts, NULL);
	h_echo(arg, req, res);
	if (!pthread_equal(self, pthread_self()))
		atomic_fetch_add(&gate_thread_mismatch, 1);
	atomic_fetch_add(&gate_out, 1);
}

/* /long/: longer than http_stop's bounded wait for ordinary requests. */
static void
h_long(void *arg, const struct http_request *req, struct http_response *res)
{
	struct timespec ts = { 5, 500 * 1000 * 1000 };

	atomic_fetch_add(&gate_in, 1);
	nanosleep(&ts, NULL);
	http_printf(res, 200, NULL, "long done");
	atomic_fetch_add(&gate_out, 1);
}

/* /maybe/: on a thread of its own when the body asks for it */
static atomic_int pred_calls;

static bool
wants_own(void *arg, const struct http_request *req)
{
	atomic_fetch_add(&pred_calls, 1);
	return arg == &pred_calls && strstr(req->body, "own=1") != NULL &&
	       strcmp(req->method, "POST") == 0 && strcmp(req->path, "/maybe/x") == 0;
}

/* One worker thread: a request it served itself would hold it. */
static void
start_own(void)
{
	static const struct http_route routes[] = {
		{ "/echo/", h_echo, NULL, ECHO_MAX, 0, false, NULL },
		{ "/gate/", h_gate, NULL, ECHO_MAX, 0, true, NULL },
		{ "/long/", h_long, NULL, 0, 0, true, NULL },
		{ "/maybe/", h_gate, &pred_calls, ECHO_MAX, 0, false, wants_own },
	};
	struct http_opts o = { .listen = "127.0.0.1", .threads = 1, .conn_limit = 64,
	                       .timeout_s = 30 };
	char err[256] = "";

	atomic_store(&calls, 0);
	atomic_store(&gate_in, 0);
	atomic_store(&gate_out, 0);
	atomic_store(&gate_open, false);
	atomic_store(&gate_thread_mismatch, 0);
	atomic_store(&pred_calls, 0);
	srv = http_start(&o, routes, sizeof(routes) / sizeof(routes[0]), err, sizeof(err));
	cr_assert_not_null(srv, "http_start: %s", err);
	port = http_port(srv);
}

TestSuite(http_own, .init = start_own, .fini = stop, .timeout = 40);

static void
wait_for(atomic_int *n, int want)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	for (int i = 0; i < 2000 && atomic_load(n) < want; i++)
		nanosleep(&ts, NULL);
	cr_assert_geq(atomic_load(n), want);
}

Test(http_own, a_long_request_leaves_its_worker_thread_to_the_others)
{
	static const char body[] = "code=1234";
	struct client a;
	struct resp r;
	char raw[512];

	/* the server's only worker thread takes a request that waits */
	cl_open(&a);
	FMT(raw, "POST /gate/x?q=1 HTTP/1.1\r\nHost: t\r\nX-Test: kept\r\n"
	         "Content-Type: application/x-www-form-urlencoded\r\n"
	         "Content-Length: %zu\r\n\r\n%s", sizeof(body) - 1, body);
	cl_sends(&a, raw);
	wait_for(&gate_in, 1);
	/* meanwhile other connections are answered by that thread */
	for (int i = 0; i < 3; i++) {
		request("GET /echo/meanwhile HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
		cr_assert_eq(r.status, 200);
		cr_assert(strstr(r.body, "GET /echo/meanwhile") != NULL, "%s", r.body);
	}
	cr_assert_eq(atomic_load(&gate_out), 0, "the long request is still running");
	/* the long request's answer, with everything its handler saw */
	atomic_store(&gate_open, true);
	cr_assert_eq(cl_read(&a, &r, false), 0, "no answer to the long request");
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "POST /gate/x q=1 x=kept bearer=(null) peer=127.0.0.1 "
	                         "head=0 body=[code=1234]");
	cr_assert(strcasestr(r.head, "\r\nETag: \"v1\"\r\n") != NULL, "%s", r.head);
	cr_assert_eq(atomic_load(&gate_thread_mismatch), 0);
	/* the connection goes on: the next request on it, then a HEAD */
	cl_sends(&a, "GET /echo/again HTTP/1.1\r\nHost: t\r\n\r\n");
	cr_assert_eq(cl_read(&a, &r, false), 0);
	cr_assert(strstr(r.body, "GET /echo/again") != NULL, "%s", r.body);
	cl_sends(&a, "HEAD /gate/h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	cr_assert_eq(cl_read(&a, &r, true), 0);
	cr_assert_eq(r.status, 200);
	cr_assert_gt(r.clen, 0, "HEAD carries the length of the full body");
	cr_assert_eq(cl_fill(&a), 0, "no body after HEAD, then the connection closes");
	cl_close(&a);
}

Test(http_own, a_query_argument_decoded_on_the_requests_own_thread)
{
	struct resp r;

	atomic_store(&gate_open, true);
	request("GET /gate/q?q=a%20b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(strstr(r.body, " q=a b ") != NULL, "%s", r.body);
}

/* The client of /long/: waits up to 15 s for its answer (status 0: none). */
Test(http_own, a_route_chooses_per_request)
{
	struct client a;
	struct resp r;

	/* asked for by the body: the worker thread stays free meanwhile */
	cl_open(&a);
	cl_sends(&a, "POST /maybe/x HTTP/1.1\r\nHost: t\r\n"
	             "Content-Type: application/x-www-form-urlencoded\r\n"
	             "Content-Length: 5\r\n\r\nown=1");
	wait_for(&gate_in, 1);
	request("GET /echo/meanwhile HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", &r);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(atomic_load(&gate_out), 0);
	atomic_store(&gate_open, true);
	cr_assert_eq(cl_read(&a, &r, false), 0);
	cr_assert_str_eq(r.body, "POST /maybe/x q=(null) x=(null) bearer=(null) peer=127.0.0.1 "
	                         "head=0 body=[own=1]");
	/* not asked for: served on the worker thread, the predicate asked once */
	cl_sends(&a, "POST /maybe/x HTTP/1.1\r\nHost: t\r\n"
	             "Content-Type: application/x-www-form-urlencoded\r\n"
	             "Content-Length: 5\r\nConnection: close\r\n\r\nown=0");
	cr_assert_eq(cl_read(&a, &r, false), 0);
	cr_assert(strstr(r.body, "body=[own=0]") != NULL, "%s", r.body);
	cr_assert_eq(atomic_load(&pred_calls), 2);
	cl_close(&a);
}

static void *
long_client(void *arg)
{
	struct resp *r = arg;
	struct timeval tv = { 15, 0 };
	struct client c;

	cl_open(&c);
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cl_sends(&c, "GET /long/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	if (cl_read(&c, r, false) != 0)
		r->status = 0;
	cl_close(&c);
	return NULL;
}

Test(http_own, stop_waits_for_a_long_request_to_the_end)
{
	pthread_t t;
	struct resp r;

	memset(&r, 0, sizeof(r));
	cr_assert_eq(pthread_create(&t, NULL, long_client, &r), 0);
	wait_for(&gate_in, 1);
	/* ordinary requests are waited for 5 s at most; this one takes 5.5 s */
	http_stop(srv);
	srv = NULL;
	cr_assert_eq(atomic_load(&gate_out), 1, "stopped before the handler returned");
	pthread_join(t, NULL);
	cr_assert_eq(r.status, 200, "the answer was sent before the server stopped");
	cr_assert_str_eq(r.body, "long done");
}

/* ---- path helpers (no server needed) ---- */

Test(http_path, segments)
{
	char out[64];

	cr_assert_eq(http_path_nsegments("/api/v1/orgs/acme/extensions", "/api/v1/"), 3);
	cr_assert_eq(http_path_nsegments("/api/v1/orgs/acme/", "/api/v1/"), 2);
	cr_assert_eq(http_path_nsegments("/api/v1/", "/api/v1/"), 0);
	cr_assert_eq(http_path_nsegments("/api/v1/orgs", "/api/v1"), 1);
	cr_assert_eq(http_path_nsegments("/other/x", "/api/v1/"), -1);

	cr_assert_eq(http_path_segment("/api/v1/orgs/acme/extensions", "/api/v1/", 0, out, sizeof(out)), 4);
	cr_assert_str_eq(out, "orgs");
	cr_assert_eq(http_path_segment("/api/v1/orgs/acme/extensions", "/api/v1/", 1, out, sizeof(out)), 4);
	cr_assert_str_eq(out, "acme");
	cr_assert_eq(http_path_segment("/api/v1/orgs/acme/extensions", "/api/v1/", 2, out, sizeof(out)), 10);
	cr_assert_eq(http_path_segment("/api/v1/orgs/acme/extensions", "/api/v1/", 3, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/api/v1/orgs/acme/", "/api/v1/", 2, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/api/v1/x", "/api/v1/", -1, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/zzz/v1/x", "/api/v1/", 0, out, sizeof(out)), -1);
	/* decoding; '+' is not a space in a path */
	cr_assert_eq(http_path_segment("/pbx/v1/extensions/alice%40acme+1", "/pbx/v1/", 1, out, sizeof(out)), 12);
	cr_assert_str_eq(out, "alice@acme+1");
	cr_assert_eq(http_path_segment("/p/J%C3%BCrg", "/p/", 0, out, sizeof(out)), 5);
	/* refused decodings */
	cr_assert_eq(http_path_segment("/p/a%2fb", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/a%5Cb", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/a%00b", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/a%0Ab", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/a%7fb", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/%2e%2E", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/%2e", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/..", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/%zz", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/a%4", "/p/", 0, out, sizeof(out)), -1);
	cr_assert_eq(http_path_segment("/p/a//b", "/p/", 1, out, sizeof(out)), -1);
	/* fit: the decoded text and its NUL */
	cr_assert_eq(http_path_segment("/p/abcd", "/p/", 0, out, 5), 4);
	cr_assert_eq(http_path_segment("/p/abcd", "/p/", 0, out, 4), -1);
	cr_assert_eq(http_path_segment("/p/%41%42%43%44", "/p/", 0, out, 5), 4);
	cr_assert_str_eq(out, "ABCD");
}

Test(http_resp, printf_and_set_body)
{
	struct http_response res;

	memset(&res, 0, sizeof(res));
	cr_assert_eq(http_printf(&res, 400, NULL, "bad %s %d", "field", 7), 0);
	cr_assert_eq(res.status, 400);
	cr_assert_str_eq(res.body, "bad field 7");
	cr_assert_eq(res.body_len, 11);
	cr_assert_null(res.content_type);
	http_set_body(&res, 201, "application/json", strdup("{}"), 2);
	cr_assert_eq(res.status, 201);
	cr_assert_str_eq(res.content_type, "application/json");
	cr_assert_str_eq(res.body, "{}");
	free(res.body);
}

/* ---- media types (no server needed) ---- */

Test(http_media, exact_type_parameters_aside)
{
	const char *form = "application/x-www-form-urlencoded";

	cr_assert(http_media_type_is(form, form));
	cr_assert(http_media_type_is("Application/X-WWW-Form-URLencoded", form));
	cr_assert(http_media_type_is("application/x-www-form-urlencoded; charset=utf-8", form));
	cr_assert(http_media_type_is("  application/x-www-form-urlencoded\t;charset=utf-8", form));
	cr_assert(http_media_type_is("application/x-www-form-urlencoded ", form));
	cr_assert(http_media_type_is("application/json;charset=UTF-8", "application/json"));
	/* a longer type that starts with the same text is another type */
	cr_assert_not(http_media_type_is("application/x-www-form-urlencodedXYZ", form));
	cr_assert_not(http_media_type_is("application/jsonx", "application/json"));
	cr_assert_not(http_media_type_is("application/json x", "application/json"));
	cr_assert_not(http_media_type_is("application/json-patch+json", "application/json"));
	cr_assert_not(http_media_type_is("application/jso", "application/json"));
	cr_assert_not(http_media_type_is("", "application/json"));
	cr_assert_not(http_media_type_is(NULL, "application/json"));
	cr_assert_not(http_media_type_is("text/json", "application/json"));
}
