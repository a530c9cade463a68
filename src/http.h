/*
 * http.h -- the libmicrohttpd adapter: one server, a router, whole bodies.
 *
 * The adapter owns sockets, threads and the MHD callbacks.  It collects a
 * request's body (up to a per-route limit, answering 413 past it without
 * calling the handler), then calls the route's handler once with the whole
 * request and sends the response the handler filled in.  Handlers never see
 * MHD types and may run concurrently on the server's worker threads.
 *
 * Routes are matched by path prefix, longest first; the handler does the
 * rest of the path itself.  Request paths are checked before routing: a
 * path with NUL, "%00", "..", "//" or a backslash never reaches a handler
 * (400).  Percent-decoding of path segments is the handler's business
 * (http_path_segment).
 */
#ifndef HD_HTTP_H
#define HD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct http_request {
	const char *method;       /* "GET", "HEAD", "POST", "PUT", ... */
	const char *path;         /* raw path without the query, e.g. "/api/v1/orgs/acme" */
	const char *query;        /* raw query string without '?', or "" */
	const char *body;         /* NUL-terminated copy of the body, "" if none */
	size_t body_len;
	const struct sockaddr *peer; /* client address */
	socklen_t peer_len;
	void *conn;               /* opaque, for http_header / http_digest_* */
};

/* A request header (case-insensitive name), or NULL.  Borrowed for the
 * duration of the handler call. */
const char *http_header(const struct http_request *req, const char *name);

/* The token of "Authorization: Bearer <token>", or NULL. */
const char *http_bearer(const struct http_request *req);

/* A query-string argument, percent-decoded, or NULL. */
const char *http_query_arg(const struct http_request *req, const char *name);

struct http_response {
	int status;                /* default 200 */
	const char *content_type;  /* static string; default "text/plain; charset=utf-8" */
	char *body;                /* heap, freed by the adapter; may be NULL */
	size_t body_len;
	const void *static_body;   /* alternative to body: borrowed bytes that outlive
	                              the response (e.g. a published file kept alive
	                              by static_ref); used when body is NULL */
	void (*static_free)(void *ref); /* called with static_ref when sent */
	void *static_ref;
	char etag[80];             /* sent as ETag when non-empty */
	char www_authenticate[512];/* sent when non-empty (digest challenges) */
	bool head_only;            /* HEAD: send headers (Content-Length of body) only */
};

/* Sets res->body to a heap copy of the printf-formatted text.  Returns 0,
 * -1 on out of memory (res then holds a 500). */
int http_printf(struct http_response *res, int status, const char *ctype,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Takes ownership of body (malloc'd) of len bytes. */
void http_set_body(struct http_response *res, int status, const char *ctype,
                   char *body, size_t len);

typedef void (*http_handler)(void *arg, const struct http_request *req,
                             struct http_response *res);

struct http_route {
	const char *prefix;        /* e.g. "/pbx/v1/" */
	http_handler handler;
	void *arg;
	size_t max_body;           /* larger bodies get 413 and no handler call */
	bool accept_put_stream;    /* reserved; keep false */
};

struct http_opts {
	const char *listen;        /* numeric IPv4 or IPv6 address */
	unsigned port;             /* 0 = OS-chosen */
	unsigned threads;          /* worker threads (thread pool) */
	unsigned conn_limit;       /* max concurrent connections */
	unsigned timeout_s;        /* idle connection timeout */
};

struct http_server;

/* Starts listening.  Routes are copied.  Returns NULL with err filled. */
struct http_server *http_start(const struct http_opts *o,
                               const struct http_route *routes, size_t nroutes,
                               char *err, size_t errlen);
/* The port actually bound. */
unsigned http_port(const struct http_server *s);
/* Stops accepting, finishes in-flight requests, frees.  NULL-safe. */
void http_stop(struct http_server *s);

/*
 * Percent-decodes the n-th '/'-separated segment of path after prefix
 * (n from 0) into out.  Returns the decoded length, or -1 if there is no
 * such segment, it does not fit, or it decodes to something containing
 * '/', '\\', NUL or a control character, or is "." or "..".
 */
int http_path_segment(const char *path, const char *prefix, int n,
                      char *out, size_t outlen);
/* Number of segments after prefix ("a/b/c" -> 3; trailing '/' ignored). */
int http_path_nsegments(const char *path, const char *prefix);

/* Digest authentication (RFC 7616) through MHD_digest_auth_check2.
 * http_digest_username returns a malloc'd username or NULL.
 * http_digest_check returns 1 ok, 0 wrong, -1 stale nonce/other error.
 * http_digest_challenge fills res with a 401 and a challenge. */
char *http_digest_username(const struct http_request *req);
int http_digest_check(const struct http_request *req, const char *realm,
                      const char *username, const char *password);
void http_digest_challenge(const struct http_request *req, struct http_response *res,
                           const char *realm, bool stale);

#endif
