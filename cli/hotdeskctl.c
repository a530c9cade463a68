/*
 * hotdeskctl.c -- the command-line client of hotdeskd's admin API.
 *
 * One request (or a short series) per command, over libcurl, answers
 * parsed with jansson: a table for people by default, the API's JSON with
 * --json for scripts.  The token comes from --token-file or the
 * environment (HOTDESKD_TOKEN), never from the command line, so it shows
 * in no process list.  Exit codes (man/hotdeskctl.1):
 *   0 done, 1 refused (400/409/...), 2 usage, 3 not allowed (401/403),
 *   4 not found (404), 5 cannot reach the server or it failed (5xx).
 * This program is not part of the daemon: it links only libcurl and
 * jansson and reads no file of hotdeskd's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

enum { EX_DONE, EX_REFUSED, EX_USAGE, EX_DENIED, EX_NOTFOUND, EX_SERVER };

struct opts {
	const char *url;
	char token[512];
	bool json;
};

struct buf {
	char *p;
	size_t n;
};

static size_t
collect(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t k = size * nmemb;
	char *np = realloc(b->p, b->n + k + 1);

	if (np == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, data, k);
	b->n += k;
	b->p[b->n] = '\0';
	return k;
}

/* Percent-encodes one path segment into a new string. */
static char *
seg(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *c;

	if (e == NULL)
		return NULL;
	c = strdup(e);
	curl_free(e);
	return c;
}

/*
 * One request: method, path (already encoded), optional body and its
 * Content-Type.  Returns the HTTP status (0 when the server cannot be
 * reached, with a message on stderr) and the body in *out (caller frees).
 */
static long
request(const struct opts *o, const char *method, const char *path, const char *body,
        size_t body_len, const char *ctype, struct buf *out)
{
	char url[2048], auth[600], ct[128];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	long status = 0;
	CURLcode rc;

	out->p = NULL;
	out->n = 0;
	if (c == NULL ||
	    snprintf(url, sizeof(url), "%s%s", o->url, path) >= (int)sizeof(url) ||
	    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token) >= (int)sizeof(auth)) {
		fprintf(stderr, "hotdeskctl: URL or token too long\n");
		curl_easy_cleanup(c);
		return 0;
	}
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/json");
	if (ctype != NULL && snprintf(ct, sizeof(ct), "Content-Type: %s", ctype) < (int)sizeof(ct))
		h = curl_slist_append(h, ct);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	if ((rc = curl_easy_perform(c)) != CURLE_OK)
		fprintf(stderr, "hotdeskctl: %s: %s\n", o->url, curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(h);
	memset(auth, 0, sizeof(auth));
	curl_easy_cleanup(c);
	return status;
}

static int
exit_of(long status)
{
	if (status >= 200 && status < 300)
		return EX_DONE;
	if (status == 401 || status == 403)
		return EX_DENIED;
	if (status == 404)
		return EX_NOTFOUND;
	if (status >= 400 && status < 500)
		return EX_REFUSED;
	return EX_SERVER;
}

/* Prints an API error ({"error": ...}) on stderr. */
static void
print_error(long status, const struct buf *b)
{
	json_t *o = b->p ? json_loads(b->p, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(o, "error"));

	if (status != 0)
		fprintf(stderr, "hotdeskctl: HTTP %ld: %s\n", status, msg ? msg : "(no message)");
	json_decref(o);
}

/* Cell text of a JSON value: strings as they are, null as "-", others as
 * compact JSON. */
static char *
cell(json_t *v)
{
	if (v == NULL || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_true(v))
		return strdup("yes");
	if (json_is_false(v))
		return strdup("no");
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* A dotted path in o ("sync.state"). */
static json_t *
dig(json_t *o, const char *path)
{
	char key[64];

	while (o != NULL && *path) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		o = json_object_get(o, key);
		path += n + (path[n] == '.');
	}
	return o;
}

/* Prints an array of objects as a table of the given columns. */
static void
table(json_t *arr, const char *const *cols)
{
	size_t ncol = 0, w[16] = { 0 }, i;
	json_t *row;

	while (cols[ncol] != NULL && ncol < 16)
		ncol++;
	for (i = 0; i < ncol; i++)
		w[i] = strlen(cols[i]);
	json_array_foreach(arr, i, row) {
		for (size_t c = 0; c < ncol; c++) {
			char *t = cell(dig(row, cols[c]));

			if (t && strlen(t) > w[c])
				w[c] = strlen(t) > 40 ? 40 : strlen(t);
			free(t);
		}
	}
	for (size_t c = 0; c < ncol; c++)
		printf("%-*s%s", (int)w[c], cols[c], c + 1 < ncol ? "  " : "\n");
	json_array_foreach(arr, i, row) {
		for (size_t c = 0; c < ncol; c++) {
			char *t = cell(dig(row, cols[c]));

			/* a control character of a hostile name would rewrite the terminal */
			for (char *p = t; p && *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					*p = '?';
			printf("%-*.*s%s", (int)w[c], 40, t ? t : "", c + 1 < ncol ? "  " : "\n");
			free(t);
		}
	}
}

/* Runs a GET and shows member `key` of the answer as a table, or the
 * whole answer with --json. */
static int
show(const struct opts *o, const char *path, const char *key, const char *const *cols)
{
	struct buf b;
	long st = request(o, "GET", path, NULL, 0, NULL, &b);
	json_t *js;
	int ex = exit_of(st);

	if (ex != EX_DONE) {
		print_error(st, &b);
	} else if (o->json || key == NULL) {
		fputs(b.p ? b.p : "", stdout);
		putchar('\n');
	} else if ((js = json_loads(b.p ? b.p : "", 0, NULL)) != NULL) {
		json_t *arr = json_object_get(js, key);

		table(json_is_array(arr) ? arr : js, cols);
		json_decref(js);
	}
	free(b.p);
	return ex;
}

/* Runs a request with a body and prints the answer (JSON), or an error. */
static int
send_body(const struct opts *o, const char *method, const char *path, const char *body,
     size_t len, const char *ctype)
{
	struct buf b;
	long st = request(o, method, path, body, len, ctype, &b);
	int ex = exit_of(st);

	if (ex != EX_DONE)
		print_error(st, &b);
	else if (b.p != NULL)
		printf("%s\n", b.p);
	free(b.p);
	return ex;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct buf b = { NULL, 0 };
	char chunk[65536];
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "hotdeskctl: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (collect(chunk, 1, n, &b) != n)
			break;
	if (f != stdin)
		fclose(f);
	if (b.p == NULL)
		b.p = strdup("");
	*len = b.n;
	return b.p;
}

static int
usage(void)
{
	fputs("usage: hotdeskctl [--url URL] [--token-file FILE] [--json] COMMAND ...\n"
	      "commands: orgs | extensions ORG | devices [ORG] | where[-is] ORG NUMBER |\n"
	      "  return ORG NUMBER | resync MAC | templates |\n"
	      "  template get|put|dry-run|history|rollback PROFILE NAME [FILE|VERSION] |\n"
	      "  events [--org O] [--type T] [--extension N] [--device MAC] [--follow] |\n"
	      "  import ORG FILE [--dry-run] | export ORG [--reveal] |\n"
	      "  tokens | token new admin|org [ORG] [NAME] | token rotate ID | token revoke ID\n"
	      "see hotdeskctl(1)\n", stderr);
	return EX_USAGE;
}

static const char *const COL_ORGS[] = { "name", "display_name", "sip_server.host", NULL };
static const char *const COL_EXTS[] = { "number", "display_name", "sip_user", "status",
	                                "home_device", "virtual_on", "has_secret_code", NULL };
static const char *const COL_DEVS[] = { "mac", "org", "profile", "model", "home_extension",
	                                "carries.extension", "sync.state", NULL };
static const char *const COL_TMPL[] = { "profile", "name", "kind", "version", NULL };
static const char *const COL_EVENTS[] = { "id", "at", "type", "org", "extension", "device",
	                                  "detail", NULL };
static const char *const COL_TOKENS[] = { "id", "role", "org", "name", "created_at", NULL };
static const char *const COL_WHERE[] = { "org", "number", "status", "home_device",
	                                 "virtual_on", NULL };
static const char *const COL_HIST[] = { "version", "active", "created_at", "comment", NULL };

/* events [--follow]: pages with ?after=, then polls every 2 s. */
static int
events(const struct opts *o, int argc, char **argv)
{
	char q[1024] = "", path[1200];
	long long after = 0;
	bool follow = false;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--follow") == 0) {
			follow = true;
		} else if (i + 1 < argc && (strcmp(argv[i], "--org") == 0 ||
		           strcmp(argv[i], "--type") == 0 || strcmp(argv[i], "--extension") == 0 ||
		           strcmp(argv[i], "--device") == 0)) {
			char *v = seg(argv[i + 1]);
			size_t n = strlen(q);

			if (v == NULL || snprintf(q + n, sizeof(q) - n, "&%s=%s", argv[i] + 2, v) >=
			                     (int)(sizeof(q) - n)) {
				free(v);
				return usage();
			}
			free(v);
			i++;
		} else {
			return usage();
		}
	}
	for (bool first = true;; first = false) {
		struct buf b;
		json_t *js, *arr, *ev;
		size_t i;
		long st;

		if (snprintf(path, sizeof(path), "/api/v1/events?limit=1000&after=%lld%s", after, q) >=
		    (int)sizeof(path))
			return usage();
		st = request(o, "GET", path, NULL, 0, NULL, &b);
		if (exit_of(st) != EX_DONE) {
			print_error(st, &b);
			free(b.p);
			return exit_of(st);
		}
		js = json_loads(b.p ? b.p : "", 0, NULL);
		free(b.p);
		arr = json_object_get(js, "events");
		if (o->json) {
			json_array_foreach(arr, i, ev) {
				char *t = json_dumps(ev, JSON_COMPACT);

				printf("%s\n", t ? t : "");
				free(t);
			}
		} else if (json_array_size(arr) > 0 || first) {
			table(arr, COL_EVENTS);
		}
		fflush(stdout);
		json_array_foreach(arr, i, ev)
			after = json_integer_value(json_object_get(ev, "id"));
		bool more = json_is_integer(json_object_get(js, "next"));
		json_decref(js);
		if (!more && !follow)
			return EX_DONE;
		if (!more)
			sleep(2);
	}
}

static int
template_cmd(const struct opts *o, int argc, char **argv)
{
	char path[1024], *p, *n, *body;
	size_t len;
	int ex;

	if (argc < 3)
		return usage();
	p = seg(argv[1]);
	n = seg(argv[2]);
	if (p == NULL || n == NULL ||
	    snprintf(path, sizeof(path), "/api/v1/templates/%s/%s", p, n) >= (int)sizeof(path)) {
		free(p);
		free(n);
		return usage();
	}
	free(p);
	free(n);
	if (strcmp(argv[0], "get") == 0 && argc == 3) {
		struct buf b;
		long st = request(o, "GET", path, NULL, 0, NULL, &b);
		json_t *js;

		if ((ex = exit_of(st)) != EX_DONE)
			print_error(st, &b);
		else if (o->json)
			printf("%s\n", b.p);
		else if ((js = json_loads(b.p, 0, NULL)) != NULL) {
			fputs(json_string_value(json_object_get(js, "content")), stdout);
			json_decref(js);
		}
		free(b.p);
		return ex;
	}
	if (strcmp(argv[0], "history") == 0 && argc == 3) {
		strncat(path, "/history", sizeof(path) - strlen(path) - 1);
		return show(o, path, "versions", COL_HIST);
	}
	if (strcmp(argv[0], "rollback") == 0 && argc == 4) {
		char bodyv[64];
		char *end;
		long v = strtol(argv[3], &end, 10);

		if (*end != '\0' || v <= 0)
			return usage();
		snprintf(bodyv, sizeof(bodyv), "{\"version\": %ld}", v);
		strncat(path, "/rollback", sizeof(path) - strlen(path) - 1);
		return send_body(o, "POST", path, bodyv, strlen(bodyv), "application/json");
	}
	if ((strcmp(argv[0], "put") == 0 || strcmp(argv[0], "dry-run") == 0) && argc == 4) {
		if ((body = read_file(argv[3], &len)) == NULL)
			return EX_USAGE;
		if (argv[0][0] == 'd')
			strncat(path, "/dry-run", sizeof(path) - strlen(path) - 1);
		ex = send_body(o, argv[0][0] == 'd' ? "POST" : "PUT", path, body, len, "text/plain");
		free(body);
		return ex;
	}
	return usage();
}

static int
run(const struct opts *o, int argc, char **argv)
{
	char path[1024], *a = NULL, *b = NULL, *body;
	const char *cmd = argv[0];
	size_t len;
	int ex = EX_USAGE;

	if (argc >= 2 && (a = seg(argv[1])) == NULL)
		return EX_SERVER;
	if (argc >= 3 && (b = seg(argv[2])) == NULL) {
		free(a);
		return EX_SERVER;
	}
#define PATH(...) (snprintf(path, sizeof(path), __VA_ARGS__) < (int)sizeof(path))
	if (strcmp(cmd, "orgs") == 0 && argc == 1)
		ex = show(o, "/api/v1/orgs", "orgs", COL_ORGS);
	else if (strcmp(cmd, "extensions") == 0 && argc == 2 &&
	         PATH("/api/v1/orgs/%s/extensions", a))
		ex = show(o, path, "extensions", COL_EXTS);
	else if (strcmp(cmd, "devices") == 0 && argc <= 2 &&
	         PATH("/api/v1/devices%s%s", a ? "?org=" : "", a ? a : ""))
		ex = show(o, path, "devices", COL_DEVS);
	else if ((strcmp(cmd, "where") == 0 || strcmp(cmd, "where-is") == 0) && argc == 3 &&
	         PATH("/api/v1/orgs/%s/extensions/%s", a, b)) {
		struct buf r;
		long st = request(o, "GET", path, NULL, 0, NULL, &r);
		json_t *js, *arr;

		if ((ex = exit_of(st)) != EX_DONE) {
			print_error(st, &r);
		} else if (o->json) {
			printf("%s\n", r.p);
		} else if ((js = json_loads(r.p, 0, NULL)) != NULL) {
			arr = json_array();
			json_array_append(arr, js);
			table(arr, COL_WHERE);
			json_decref(arr);
			json_decref(js);
		}
		free(r.p);
	} else if (strcmp(cmd, "return") == 0 && argc == 3 &&
	           PATH("/api/v1/orgs/%s/extensions/%s/return", a, b))
		ex = send_body(o, "POST", path, "{}", 2, "application/json");
	else if (strcmp(cmd, "resync") == 0 && argc == 2 && PATH("/api/v1/devices/%s/resync", a))
		ex = send_body(o, "POST", path, "{}", 2, "application/json");
	else if (strcmp(cmd, "templates") == 0 && argc == 1)
		ex = show(o, "/api/v1/templates", "templates", COL_TMPL);
	else if (strcmp(cmd, "template") == 0)
		ex = template_cmd(o, argc - 1, argv + 1);
	else if (strcmp(cmd, "events") == 0)
		ex = events(o, argc - 1, argv + 1);
	else if (strcmp(cmd, "import") == 0 && (argc == 3 || (argc == 4 &&
	         strcmp(argv[3], "--dry-run") == 0)) &&
	         PATH("/api/v1/orgs/%s/import%s", a, argc == 4 ? "?dry_run=1" : "")) {
		if ((body = read_file(argv[2], &len)) != NULL) {
			ex = send_body(o, "POST", path, body, len, "text/csv");
			free(body);
		}
	} else if (strcmp(cmd, "export") == 0 && (argc == 2 || (argc == 3 &&
	           strcmp(argv[2], "--reveal") == 0)) &&
	           PATH("/api/v1/orgs/%s/export%s", a, argc == 3 ? "?reveal=1" : "")) {
		struct buf r;
		long st = request(o, "GET", path, NULL, 0, NULL, &r);

		if ((ex = exit_of(st)) != EX_DONE)
			print_error(st, &r);
		else
			fwrite(r.p, 1, r.n, stdout);
		free(r.p);
	} else if (strcmp(cmd, "tokens") == 0 && argc == 1)
		ex = show(o, "/api/v1/tokens", "tokens", COL_TOKENS);
	else if (strcmp(cmd, "token") == 0 && argc >= 3 && strcmp(argv[1], "new") == 0) {
		json_t *req = json_pack("{s:s}", "role", argv[2]);
		char *txt;

		if (argc >= 4)
			json_object_set_new(req, strcmp(argv[2], "org") == 0 ? "org" : "name",
			                    json_string(argv[3]));
		if (argc >= 5)
			json_object_set_new(req, "name", json_string(argv[4]));
		txt = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		if (txt != NULL)
			ex = send_body(o, "POST", "/api/v1/tokens", txt, strlen(txt), "application/json");
		free(txt);
	} else if (strcmp(cmd, "token") == 0 && argc == 3 && strcmp(argv[1], "revoke") == 0 &&
	           PATH("/api/v1/tokens/%s", b))
		ex = send_body(o, "DELETE", path, NULL, 0, NULL);
	else if (strcmp(cmd, "token") == 0 && argc == 3 && strcmp(argv[1], "rotate") == 0 &&
	         PATH("/api/v1/tokens/%s/rotate", b))
		ex = send_body(o, "POST", path, "{}", 2, "application/json");
	else
		ex = usage();
#undef PATH
	free(a);
	free(b);
	return ex;
}

int
main(int argc, char **argv)
{
	struct opts o = { .url = getenv("HOTDESKD_URL") };
	const char *tf = NULL, *env = getenv("HOTDESKD_TOKEN");
	int i, ex;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o.json = true;
		else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
			o.url = argv[++i];
		else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc)
			tf = argv[++i];
		else if (strcmp(argv[i], "--help") == 0)
			return usage() == EX_USAGE ? EX_DONE : EX_USAGE;
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	if (o.url == NULL)
		o.url = "http://127.0.0.1:8080";
	if (tf != NULL) {
		FILE *f = fopen(tf, "r");

		if (f == NULL || fgets(o.token, sizeof(o.token), f) == NULL) {
			fprintf(stderr, "hotdeskctl: %s: cannot read a token\n", tf);
			if (f)
				fclose(f);
			return EX_USAGE;
		}
		fclose(f);
		o.token[strcspn(o.token, "\r\n")] = '\0';
	} else if (env != NULL && snprintf(o.token, sizeof(o.token), "%s", env) >=
	                              (int)sizeof(o.token)) {
		fprintf(stderr, "hotdeskctl: HOTDESKD_TOKEN too long\n");
		return EX_USAGE;
	}
	if (o.token[0] == '\0') {
		fprintf(stderr, "hotdeskctl: no token: set HOTDESKD_TOKEN or use --token-file\n");
		return EX_USAGE;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	ex = run(&o, argc - i, argv + i);
	curl_global_cleanup();
	memset(o.token, 0, sizeof(o.token));
	return ex;
}
