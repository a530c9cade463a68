/*
 * api_csv.c -- CSV import and export (api_csv.h).
 *
 * Import: the body is parsed (csv.c), mapped to rows (import.c) and handed
 * to svc_import, which applies every row or none.  An error answers 400
 * (or 409 for a key used elsewhere) with the line and column as numbers
 * besides the message.  Export writes the same columns from the world
 * under the service lock; passwords only with ?reveal=1, which needs an
 * admin token and records the event export.reveal.  Neither direction
 * logs a cell.
 */
#include "api_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "csv.h"
#include "import.h"
#include "store.h"

static int
http_of(int svc_err)
{
	switch (svc_err) {
	case SVC_BAD: return 400;
	case SVC_NOTFOUND: return 404;
	case SVC_CONFLICT: return 409;
	case SVC_FORBIDDEN: return 403;
	default: return 500;
	}
}

/* {"error": msg, "field": "csv", "line": L, "column": C} from a message
 * that starts "line L[, column C]". */
static void
csv_error(struct http_response *res, int status, const char *msg)
{
	int line = 0, col = 0;
	json_t *o;

	if (sscanf(msg, "line %d, column %d", &line, &col) < 1)
		line = 0;
	o = json_pack("{s:s, s:s}", "error", msg, "field", "csv");
	if (o != NULL && line > 0)
		json_object_set_new(o, "line", json_integer(line));
	if (o != NULL && col > 0)
		json_object_set_new(o, "column", json_integer(col));
	api_send_json(res, status, o);
}

struct org_find {
	const char *name;
	const struct svc_principal *who;
	hd_id id;
};

static int
find_org(const struct world *w, struct store *st, void *arg)
{
	struct org_find *f = arg;
	const struct hd_org *o = world_org_by_name(w, f->name);

	(void)st;
	if (o != NULL && (f->who->role == SVC_ROLE_ADMIN ||
	                  (f->who->role == SVC_ROLE_ORG && f->who->org == o->id)))
		f->id = o->id;
	return 0;
}

static bool
flag(const struct http_request *req, const char *name)
{
	const char *v = http_query_arg(req, name);

	return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static void
import(struct api_ctx *c, const struct http_request *req, struct http_response *res,
       hd_id org)
{
	struct csv doc;
	struct import_rows rows;
	struct svc_import_report rep;
	struct svc_result r = { 0 };
	bool dry = flag(req, "dry_run");
	char err[256];
	int rc;

	if (csv_parse(req->body, req->body_len, &doc, err, sizeof(err)) != 0) {
		csv_error(res, 400, err);
		return;
	}
	if (import_rows_from_csv(&doc, API_CSV_MAX_ROWS, &rows, err, sizeof(err)) != 0) {
		csv_free(&doc);
		csv_error(res, 400, err);
		return;
	}
	rc = svc_import(c->svc, org, &rows, dry, &rep, &r);
	if (rc != SVC_OK) {
		if (r.field != NULL)
			csv_error(res, http_of(rc), r.err);
		else
			api_json_error(res, http_of(rc), NULL, r.err);
	} else {
		api_send_json(res, dry ? 200 : 201, json_pack(
		    "{s:b, s:I, s:{s:O, s:O, s:I}, s:{s:O, s:O, s:I}, s:I}", "dry_run", dry,
		    "rows", (json_int_t)rows.n,
		    "extensions", "created", rep.ext_created, "changed", rep.ext_changed,
		    "unchanged", (json_int_t)rep.ext_unchanged,
		    "devices", "created", rep.dev_created, "changed", rep.dev_changed,
		    "unchanged", (json_int_t)rep.dev_unchanged,
		    "returned", (json_int_t)rep.moves));
	}
	svc_import_report_free(&rep);
	import_rows_free(&rows);
	/* the body held passwords and codes */
	if (doc.arena != NULL)
		sodium_memzero(doc.arena, req->body_len);
	csv_free(&doc);
}

/* ---- export ------------------------------------------------------------- */

struct exp {
	hd_id org;
	bool reveal;
	struct csv_out out;
	const struct hd_ext **exts;
	const struct hd_dev **devs;
	size_t next, nd;
	const struct world *w;
};

static int
collect_ext(struct hd_ext *e, void *arg)
{
	struct exp *x = arg;

	if (e->org == x->org)
		x->exts[x->next++] = e;
	return 0;
}

static int
collect_dev(struct hd_dev *d, void *arg)
{
	struct exp *x = arg;

	if (d->org == x->org && d->home_ext == 0)
		x->devs[x->nd++] = d;
	return 0;
}

/* Numbers sort as numbers ("99" before "100"), then as text. */
static int
cmp_ext(const void *a, const void *b)
{
	const struct hd_ext *x = *(const struct hd_ext *const *)a, *y = *(const struct hd_ext *const *)b;
	size_t lx = strlen(x->number), ly = strlen(y->number);

	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x->number, y->number);
}

static int
cmp_dev(const void *a, const void *b)
{
	return strcmp((*(const struct hd_dev *const *)a)->mac, (*(const struct hd_dev *const *)b)->mac);
}

static void
put_dev(struct exp *x, const struct hd_dev *d)
{
	csv_put(&x->out, d ? d->mac : NULL);
	csv_put(&x->out, d ? d->profile : NULL);
	csv_put(&x->out, d ? d->model : NULL);
	csv_put(&x->out, d ? d->parking_user : NULL);
	csv_put(&x->out, d && x->reveal ? d->parking_password : NULL);
}

static int
export_rows(const struct world *w, struct store *st, void *arg)
{
	struct exp *x = arg;
	size_t ne = world_count_exts(w), nd = world_count_devs(w);

	(void)st;
	x->w = w;
	x->exts = calloc(ne + 1, sizeof(*x->exts));
	x->devs = calloc(nd + 1, sizeof(*x->devs));
	if (x->exts == NULL || x->devs == NULL)
		return -1;
	world_each_ext(w, collect_ext, x);
	world_each_dev(w, collect_dev, x);
	qsort(x->exts, x->next, sizeof(*x->exts), cmp_ext);
	qsort(x->devs, x->nd, sizeof(*x->devs), cmp_dev);
	for (int c = 0; c < IMP_NCOLS; c++)
		csv_put(&x->out, import_col_names[c]);
	csv_endl(&x->out);
	for (size_t i = 0; i < x->next; i++) {
		const struct hd_ext *e = x->exts[i];

		csv_put(&x->out, e->number);
		csv_put(&x->out, e->display_name);
		csv_put(&x->out, e->label);
		csv_put(&x->out, e->sip_user);
		csv_put(&x->out, x->reveal ? e->sip_password : NULL);
		csv_put(&x->out, NULL); /* secret codes are never shown */
		csv_put(&x->out, e->allow_virtualization ? "yes" : "no");
		put_dev(x, world_dev(w, e->home_dev));
		csv_endl(&x->out);
	}
	for (size_t i = 0; i < x->nd; i++) {
		for (int c = IMP_EXTENSION; c < IMP_MAC; c++)
			csv_put(&x->out, NULL);
		put_dev(x, x->devs[i]);
		csv_endl(&x->out);
	}
	return x->out.failed ? -1 : 0;
}

static void
export(struct api_ctx *c, const struct http_request *req, struct http_response *res,
       const struct svc_principal *who, hd_id org, const char *name)
{
	struct exp x = { .org = org, .reveal = flag(req, "reveal") };
	int rc;

	if (x.reveal && who->role != SVC_ROLE_ADMIN) {
		api_json_error(res, 403, "reveal", "only an admin token may export passwords");
		return;
	}
	if (x.reveal)
		svc_event(c->svc, "export.reveal", org, NULL, NULL, NULL);
	rc = svc_locked(c->svc, export_rows, &x);
	free(x.exts);
	free(x.devs);
	if (rc != 0) {
		csv_out_free(&x.out);
		api_json_error(res, 500, NULL, "out of memory");
		return;
	}
	http_set_body(res, 200, "text/csv; charset=utf-8", x.out.buf, x.out.len);
	x.out.buf = NULL; /* the response owns it */
	(void)name;
}

void
api_csv_handle(struct api_ctx *c, const struct http_request *req, struct http_response *res,
               const struct svc_principal *who, const char *org, const char *what)
{
	struct org_find f = { org, who, 0 };

	svc_locked(c->svc, find_org, &f);
	if (f.id == 0) {
		api_json_error(res, 404, "org", "no such organization");
		return;
	}
	if (strcmp(what, "import") == 0) {
		if (strcmp(req->method, "POST") != 0)
			api_json_error(res, 405, NULL, "method not allowed");
		else
			import(c, req, res, f.id);
	} else if (strcmp(what, "export") == 0) {
		if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
			api_json_error(res, 405, NULL, "method not allowed");
		else
			export(c, req, res, who, f.id, org);
	} else {
		api_json_error(res, 404, NULL, "not found");
	}
}
