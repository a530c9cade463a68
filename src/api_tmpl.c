/*
 * api_tmpl.c -- template administration and device previews (SPEC 6).
 *
 * Templates are server-wide (every organization's phones of a profile use
 * the same ones), so every /templates endpoint needs the admin role; an
 * organization token gets 403.  A device preview is scoped like the
 * device itself.
 *
 * Saving a template (PUT, rollback) is one step under the service lock:
 *   1. the candidate is checked (vendor_template_check: compiles, renders
 *      the sample devices, XML well-formed);
 *   2. a dry run renders it for every device of the profile and compares
 *      with what is served (pub_dry_run); a candidate that fails for any
 *      real device is refused, naming it;
 *   3. one transaction: the new template version (store_tmpl_add or
 *      store_tmpl_activate), a pending resync row for each device whose
 *      files change, the event template.put / template.rollback;
 *   4. after the commit: the template is installed (pub_template_set),
 *      then the service's change hook re-renders and publishes exactly
 *      the changed devices and wakes the resync engine to send their
 *      NOTIFYs.
 * Steps 1-3 are the body of svc_transact, 4 its `after` and its hook: the
 * service opens and closes the transaction.
 * A crash between 3 and 4 is repaired at start-up: main.c installs the
 * active template versions and reconciles every device, and the resync
 * rows are already there.
 *
 * Secrets: a preview holds the device's SIP password unless redacted
 * (the default); ?reveal=1 shows it to an admin token only and records
 * the event device.reveal.  Nothing here logs a template or a file.
 */
#include "api_tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "event.h"
#include "log.h"
#include "publish.h"
#include "store.h"
#include "vendor.h"

#define PREFIX "/api/v1/"
#define SEG_MAX 160
#define COMMENT_MAX 200

struct treq {
	struct api_ctx *c;
	const struct http_request *req;
	struct http_response *res;
	const struct svc_principal *who;
	char seg[5][SEG_MAX];
	int nseg;
	const struct vendor_profile *prof;
	const char *kind; /* of seg[2] in prof: "device", "shared", "static" */
};

/* ---- output ------------------------------------------------------------- */


/*
 * A validation error of a template: {"error", "field": "content", "line",
 * "column", "in"} -- line and column when msg names them.  "in" says
 * whether the position is in the template or in the rendered output (an
 * XML error found by parsing what the template produced).
 */
static void
content_error(struct http_response *res, int status, const char *msg, json_t *extra)
{
	json_t *o = json_pack("{s:s, s:s}", "error", msg, "field", "content");
	const char *at = strstr(msg, "line ");
	int line, col;

	if (o != NULL && at != NULL) {
		int n = sscanf(at, "line %d, column %d", &line, &col);

		if (n >= 1)
			json_object_set_new(o, "line", json_integer(line));
		if (n == 2)
			json_object_set_new(o, "column", json_integer(col));
		json_object_set_new(o, "in", json_string(at == msg ? "template" : "rendered output"));
	}
	if (o != NULL && extra != NULL)
		json_object_update(o, extra);
	json_decref(extra);
	api_send_json(res, status, o);
}

/* ---- templates of a profile --------------------------------------------- */

/* "device", "shared" or "static" when name is one of prof's templates or
 * static files, else NULL. */
static const char *
tmpl_kind(const struct vendor_profile *prof, const char *name)
{
	for (size_t i = 0; i < prof->n_device_files; i++)
		if (prof->device_files[i].tmpl && strcmp(prof->device_files[i].tmpl, name) == 0)
			return "device";
	for (size_t i = 0; i < prof->n_shared_files; i++) {
		const struct vendor_file *f = &prof->shared_files[i];

		if (f->tmpl ? strcmp(f->tmpl, name) == 0 : strcmp(f->pattern, name) == 0)
			return f->tmpl ? "shared" : "static";
	}
	return NULL;
}

/* The file name patterns served from template `name` of prof. */
static json_t *
tmpl_files(const struct vendor_profile *prof, const char *name)
{
	json_t *a = json_array();

	for (size_t i = 0; i < prof->n_device_files; i++)
		if (prof->device_files[i].tmpl && strcmp(prof->device_files[i].tmpl, name) == 0)
			json_array_append_new(a, json_string(prof->device_files[i].pattern));
	for (size_t i = 0; i < prof->n_shared_files; i++) {
		const struct vendor_file *f = &prof->shared_files[i];

		if (strcmp(f->tmpl ? f->tmpl : f->pattern, name) == 0)
			json_array_append_new(a, json_string(f->pattern));
	}
	return a;
}

/* ---- reads under the lock ----------------------------------------------- */

struct active_map {
	json_t *versions; /* "profile/name" -> version */
};

static int
active_one(const struct store_tmpl *t, void *arg)
{
	struct active_map *m = arg;
	char key[2 * SEG_MAX];

	if ((size_t)snprintf(key, sizeof(key), "%s/%s", t->profile, t->name) < sizeof(key))
		json_object_set_new(m->versions, key, json_integer(t->version));
	return 0;
}

static int
rd_active(const struct world *w, struct store *st, void *arg)
{
	return store_tmpl_active_each(st, active_one, arg);
}

static void
list_templates(struct treq *r)
{
	struct active_map m = { json_object() };
	json_t *arr = json_array();

	if (svc_locked(r->c->svc, rd_active, &m) != 0) {
		json_decref(m.versions);
		json_decref(arr);
		api_json_error(r->res, 500, NULL, "cannot read template versions");
		return;
	}
	for (size_t k = 0; k < vendor_registry_len; k++) {
		const struct vendor_profile *prof = vendor_registry[k];
		size_t nf = prof->n_device_files + prof->n_shared_files;

		for (size_t i = 0; i < nf; i++) {
			const struct vendor_file *f = i < prof->n_device_files
			                                  ? &prof->device_files[i]
			                                  : &prof->shared_files[i - prof->n_device_files];
			const char *name = f->tmpl ? f->tmpl : f->pattern;
			char key[2 * SEG_MAX];
			json_t *v;
			bool seen = false;

			if (f->tmpl == NULL && i < prof->n_device_files)
				continue;
			/* one entry per template, however many files it serves */
			for (size_t j = 0; j < i && !seen; j++) {
				const struct vendor_file *g = j < prof->n_device_files
				                                  ? &prof->device_files[j]
				                                  : &prof->shared_files[j - prof->n_device_files];
				seen = strcmp(g->tmpl ? g->tmpl : g->pattern, name) == 0;
			}
			if (seen)
				continue;
			if ((size_t)snprintf(key, sizeof(key), "%s/%s", prof->name, name) >= sizeof(key))
				continue;
			v = json_object_get(m.versions, key);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:o, s:o}", "profile",
			                      prof->name, "name", name, "kind", tmpl_kind(prof, name),
			                      "files", tmpl_files(prof, name), "version",
			                      v ? json_incref(v) : json_string("default")));
		}
	}
	json_decref(m.versions);
	api_send_json(r->res, 200, json_pack("{s:o}", "templates", arr));
}

struct tmpl_read {
	const char *profile, *name;
	int want;          /* version asked for; 0 = the active one */
	bool history_only; /* no content */
	int active;        /* found active version, 0 = default */
	int found;
	json_t *out;       /* version object of the found one */
	json_t *versions;  /* history */
	int rc;
};

static int
hist_one(const struct store_tmpl *t, void *arg)
{
	struct tmpl_read *tr = arg;

	if (t->active)
		tr->active = t->version;
	if (tr->versions != NULL)
		json_array_append_new(tr->versions, json_pack("{s:i, s:s?, s:I, s:b}", "version",
		                      t->version, "comment", t->comment, "created_at",
		                      (json_int_t)t->created_at, "active", t->active));
	return 0;
}

static int
get_one(const struct store_tmpl *t, void *arg)
{
	struct tmpl_read *tr = arg;

	tr->found = 1;
	tr->out = json_pack("{s:i, s:s?, s:I, s:b, s:s?}", "version", t->version,
	                    "comment", t->comment, "created_at", (json_int_t)t->created_at,
	                    "active", t->active, "content", t->content);
	return tr->out == NULL ? -1 : 0;
}

static int
rd_template(const struct world *w, struct store *st, void *arg)
{
	struct tmpl_read *tr = arg;
	int rc;

	if ((rc = store_tmpl_history(st, tr->profile, tr->name, hist_one, tr)) < 0)
		return tr->rc = -1;
	if (tr->history_only || (tr->want == 0 && tr->active == 0))
		return 0;
	rc = store_tmpl_get(st, tr->profile, tr->name, tr->want ? tr->want : tr->active, get_one, tr);
	return tr->rc = rc < 0 ? -1 : 0;
}

static void
get_template(struct treq *r)
{
	struct tmpl_read tr = { .profile = r->prof->name, .name = r->seg[2] };
	const char *v = http_query_arg(r->req, "version");
	bool shipped = v != NULL && strcmp(v, "default") == 0;
	json_t *o;

	tr.history_only = shipped;
	if (v != NULL && !shipped) {
		if (!api_digits(v, 9) || (tr.want = atoi(v)) < 1) {
			api_json_error(r->res, 400, "version", "version: a version number or default");
			return;
		}
	}
	svc_locked(r->c->svc, rd_template, &tr);
	if (tr.rc != 0) {
		api_json_error(r->res, 500, NULL, "cannot read template versions");
		goto out;
	}
	if (tr.want != 0 && !tr.found) {
		api_json_error(r->res, 404, "version", "no such version");
		goto out;
	}
	if (tr.found) {
		o = tr.out;
		tr.out = NULL;
	} else {
		char *src = NULL, err[256];
		size_t len = 0;
		json_t *content;

		if (pub_template_default(r->c->pub, r->prof, r->seg[2], &src, &len, err,
		                         sizeof(err)) != 0) {
			log_error("template %s/%s: %s", r->prof->name, r->seg[2], err);
			api_json_error(r->res, 500, NULL, "cannot read the default template");
			goto out;
		}
		content = json_stringn(src, len);
		free(src);
		if (content == NULL) {
			api_json_error(r->res, 500, NULL, "the default template is not UTF-8");
			goto out;
		}
		o = json_pack("{s:s, s:o}", "version", "default", "content", content);
	}
	json_object_set_new(o, "profile", json_string(r->prof->name));
	json_object_set_new(o, "name", json_string(r->seg[2]));
	json_object_set_new(o, "kind", json_string(r->kind));
	json_object_set_new(o, "files", tmpl_files(r->prof, r->seg[2]));
	json_object_set_new(o, "active_version",
	                    tr.active ? json_integer(tr.active) : json_string("default"));
	api_send_json(r->res, 200, o);
out:
	json_decref(tr.out);
}

static void
get_history(struct treq *r)
{
	struct tmpl_read tr = { .profile = r->prof->name, .name = r->seg[2], .history_only = true };

	tr.versions = json_array();
	svc_locked(r->c->svc, rd_template, &tr);
	if (tr.rc != 0) {
		json_decref(tr.versions);
		api_json_error(r->res, 500, NULL, "cannot read template versions");
		return;
	}
	api_send_json(r->res, 200, json_pack("{s:s, s:s, s:o, s:o}", "profile", r->prof->name,
	          "name", r->seg[2], "active",
	          tr.active ? json_integer(tr.active) : json_string("default"),
	          "versions", tr.versions));
}

/* ---- saving ------------------------------------------------------------- */

/*
 * The candidate of a PUT or dry-run: the raw body (any Content-Type but
 * JSON; ?comment= gives the comment), or with Content-Type
 * application/json an object {"content": "...", "comment": "..."}.
 * Returns 0 with *src and *len (borrowed from the request or malloc'd into
 * *owned) and *comment (malloc'd or NULL), or -1 with res filled.
 */
static int
take_candidate(struct treq *r, const char **src, size_t *len, char **owned, char **comment)
{
	const char *ct = http_header(r->req, "Content-Type");
	const char *cm = http_query_arg(r->req, "comment");

	*owned = *comment = NULL;
	if (ct != NULL && http_media_type_is(ct, "application/json")) {
		json_error_t je;
		json_t *o = json_loadb(r->req->body, r->req->body_len, JSON_REJECT_DUPLICATES |
		                       JSON_ALLOW_NUL, &je);
		json_t *c = o ? json_object_get(o, "content") : NULL, *k = o ? json_object_get(o,
		                                                          "comment") : NULL;
		const char *key;
		json_t *val;

		if (o == NULL || !json_is_object(o)) {
			json_decref(o);
			api_json_error(r->res, 400, NULL, "invalid JSON body");
			return -1;
		}
		json_object_foreach(o, key, val) {
			if (strcmp(key, "content") != 0 && strcmp(key, "comment") != 0) {
				/* the answer names the field: answer before o (and key) go */
				api_json_error(r->res, 400, key, "unknown field");
				json_decref(o);
				return -1;
			}
		}
		if (!json_is_string(c)) {
			json_decref(o);
			api_json_error(r->res, 400, "content", "content: a string is required");
			return -1;
		}
		if (k != NULL && !json_is_null(k) && !json_is_string(k)) {
			json_decref(o);
			api_json_error(r->res, 400, "comment", "comment: must be a string");
			return -1;
		}
		*len = json_string_length(c);
		if ((*owned = malloc(*len + 1)) == NULL ||
		    (json_is_string(k) && (*comment = strdup(json_string_value(k))) == NULL)) {
			json_decref(o);
			api_json_error(r->res, 500, NULL, "out of memory");
			return -1;
		}
		memcpy(*owned, json_string_value(c), *len + 1);
		*src = *owned;
		json_decref(o);
	} else {
		*src = r->req->body;
		*len = r->req->body_len;
		if (cm != NULL && (*comment = strdup(cm)) == NULL) {
			api_json_error(r->res, 500, NULL, "out of memory");
			return -1;
		}
	}
	if (*comment != NULL &&
	    ((*comment)[0] == '\0' || !api_printable(*comment, COMMENT_MAX, true))) {
		api_json_error(r->res, 400, "comment", "comment: printable, at most 200 bytes");
		return -1;
	}
	if (*len == 0 || memchr(*src, '\0', *len) != NULL || *len > RENDER_MAX_SOURCE) {
		api_json_error(r->res, 400, "content",
		               "content: empty, too large, or holds a NUL byte");
		return -1;
	}
	{
		/* stored and shown as JSON text: must be UTF-8 */
		json_t *t = json_stringn(*src, *len);

		if (t == NULL) {
			api_json_error(r->res, 400, "content", "content: not valid UTF-8");
			return -1;
		}
		json_decref(t);
	}
	return 0;
}

struct save {
	struct api_ctx *c;
	const struct vendor_profile *prof;
	const char *name;
	const char *src;     /* candidate; for a rollback, loaded here */
	size_t len;
	char *loaded;        /* rollback: the content of that version */
	const char *comment;
	int rollback;        /* version to activate, 0 for a put */
	bool dry;
	/* results */
	struct hd_idset changed;
	json_t *changed_macs, *failed;
	size_t unchanged;
	int version;
	int status;
	char msg[512];
};

static int
dry_cb(const struct pub_dry_dev *d, void *arg)
{
	struct save *sv = arg;

	if (d->result > 0) {
		if (hd_idset_add(&sv->changed, d->dev->id) != 0)
			return -1;
		json_array_append_new(sv->changed_macs, json_string(d->dev->mac));
	} else if (d->result < 0) {
		json_array_append_new(sv->failed, json_pack("{s:s, s:s}", "mac", d->dev->mac,
		                      "error", d->error ? d->error : "render failed"));
	} else {
		sv->unchanged++;
	}
	return 0;
}

static int
load_version(const struct store_tmpl *t, void *arg)
{
	struct save *sv = arg;

	if (t->content != NULL && (sv->loaded = strdup(t->content)) == NULL)
		return -1;
	return 0;
}


static void
save_fail(struct save *sv, int status, const char *msg)
{
	sv->status = status;
	snprintf(sv->msg, sizeof(sv->msg), "%s", msg);
}

/* The rows of a save: the version, the changed devices' outbox rows and
 * the event (in the service's transaction).  0, or -1. */
static int
save_rows(struct save *sv, struct store *st)
{
	long long now = (long long)time(NULL);
	int rc;

	if (sv->rollback != 0) {
		rc = store_tmpl_activate(st, sv->prof->name, sv->name, sv->rollback);
		sv->version = sv->rollback;
	} else {
		rc = store_tmpl_add(st, sv->prof->name, sv->name, sv->src, sv->comment, now,
		                    &sv->version);
	}
	for (size_t i = 0; rc == 0 && i < sv->changed.n; i++)
		rc = store_resync_enqueue(st, sv->changed.v[i], now) == 0 ? 0 : -1;
	if (rc != 0)
		return -1;
	return event_add(st, now, sv->rollback ? "template.rollback" : "template.put", 0, NULL,
	                 NULL, json_pack("{s:s, s:s, s:i, s:i}", "profile", sv->prof->name,
	                                 "name", sv->name, "version", sv->version, "devices",
	                                 (int)sv->changed.n));
}

/* The body of a save (svc_transact): checks, the dry run, then the rows.
 * 0 commits; 1 rolls back (a dry run, or sv->status says why). */
static int
do_save(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct save *sv = arg;
	char err[400];
	int rc;

	if (sv->rollback != 0) {
		rc = store_tmpl_get(st, sv->prof->name, sv->name, sv->rollback, load_version, sv);
		if (rc < 0 || (rc > 0 && sv->loaded == NULL)) {
			save_fail(sv, 500, "cannot read the template version");
			return 1;
		}
		if (rc == 0) {
			save_fail(sv, 404, "version: no such version");
			return 1;
		}
		sv->src = sv->loaded;
		sv->len = strlen(sv->loaded);
		if (vendor_template_check(sv->prof, sv->name, sv->src, sv->len, err, sizeof(err)) != 0) {
			sv->status = 409;
			snprintf(sv->msg, sizeof(sv->msg), "version %d is no longer valid: %s",
			         sv->rollback, err);
			return 1;
		}
	}
	if (pub_dry_run(sv->c->pub, w, sv->prof, sv->name, sv->src, sv->len, dry_cb, sv, err,
	                sizeof(err)) != 0) {
		save_fail(sv, 500, err);
		return 1;
	}
	if (sv->dry)
		return 1;
	if (json_array_size(sv->failed) > 0) {
		json_t *f = json_array_get(sv->failed, 0);

		sv->status = 400;
		snprintf(sv->msg, sizeof(sv->msg), "the template fails for device %s: %s",
		         json_string_value(json_object_get(f, "mac")),
		         json_string_value(json_object_get(f, "error")));
		return 1;
	}
	if (save_rows(sv, st) != 0) {
		log_error("template %s/%s: cannot save: %s", sv->prof->name, sv->name,
		          store_errmsg(st));
		save_fail(sv, 500, "cannot save the template");
		return 1;
	}
	/* the change hook publishes exactly these devices; a shared template
	 * or static file changes no per-device file: its devices are
	 * "changed" all the same, so that they get their NOTIFY */
	chg->devs = sv->changed;
	memset(&sv->changed, 0, sizeof(sv->changed));
	if (strcmp(tmpl_kind(sv->prof, sv->name), "device") != 0)
		chg->flags |= SVC_CHANGE_NOTIFY_ALL;
	return 0;
}

/* After the commit, before the change hook publishes the devices: the
 * template is installed (start-up repairs a crash before this). */
static int
save_install(const struct world *w, struct store *st, void *arg)
{
	struct save *sv = arg;
	char err[400];

	(void)w;
	if (pub_template_set(sv->c->pub, sv->prof, sv->name, sv->src, sv->len, err,
	                     sizeof(err)) != 0) {
		char safe[300];

		log_error("template %s/%s version %d saved but not installed: %s", sv->prof->name,
		          sv->name, sv->version, log_sanitize(err, safe, sizeof(safe)));
		save_fail(sv, 500, "saved, but could not be installed; restart applies it");
		return -1;
	}
	if (strcmp(tmpl_kind(sv->prof, sv->name), "device") != 0)
		pub_shared_refresh(sv->c->pub, st); /* the TFTP copies of shared files */
	return 0;
}

static void
save_free(struct save *sv)
{
	hd_idset_free(&sv->changed);
	json_decref(sv->changed_macs);
	json_decref(sv->failed);
	free(sv->loaded);
}

/* PUT (save), POST dry-run (dry), POST rollback (rollback > 0). */
static void
save_template(struct treq *r, bool dry, int rollback)
{
	struct save sv = { .c = r->c, .prof = r->prof, .name = r->seg[2], .dry = dry,
	                   .rollback = rollback, .status = 200 };
	char *owned = NULL, *comment = NULL, err[400];

	sv.changed_macs = json_array();
	sv.failed = json_array();
	if (rollback == 0) {
		if (take_candidate(r, &sv.src, &sv.len, &owned, &comment) != 0)
			goto out;
		sv.comment = comment;
		/* outside the lock: compiles and renders the sample devices */
		if (vendor_template_check(r->prof, sv.name, sv.src, sv.len, err, sizeof(err)) != 0) {
			content_error(r->res, 400, err, NULL);
			goto out;
		}
	}
	if (svc_transact(r->c->svc, "template", do_save, save_install, &sv) == SVC_INTERNAL &&
	    sv.status == 200)
		save_fail(&sv, 500, "cannot save the template");
	if (sv.status == 200 && !dry)
		log_info("template %s/%s: version %d %s, %zu devices changed", r->prof->name,
		         sv.name, sv.version, rollback ? "restored" : "saved",
		         json_array_size(sv.changed_macs));
	if (sv.status != 200) {
		if (sv.status == 400)
			content_error(r->res, 400, sv.msg, json_pack("{s:O}", "devices", sv.failed));
		else
			api_json_error(r->res, sv.status, sv.status == 404 ? "version" : NULL, sv.msg);
		goto out;
	}
	if (dry)
		api_send_json(r->res, 200, json_pack("{s:s, s:s, s:O, s:O, s:I}", "profile",
		          r->prof->name, "name", sv.name, "changed", sv.changed_macs, "failed",
		          sv.failed, "unchanged", (json_int_t)sv.unchanged));
	else
		api_send_json(r->res, 200, json_pack("{s:s, s:s, s:i, s:O, s:I}", "profile",
		          r->prof->name, "name", sv.name, "version", sv.version, "changed",
		          sv.changed_macs, "unchanged", (json_int_t)sv.unchanged));
out:
	if (owned != NULL) {
		sodium_memzero(owned, sv.len);
		free(owned);
	}
	free(comment);
	save_free(&sv);
}

static void
rollback_template(struct treq *r)
{
	json_error_t je;
	json_t *o = json_loadb(r->req->body, r->req->body_len, JSON_REJECT_DUPLICATES, &je);
	json_t *v = o ? json_object_get(o, "version") : NULL;
	int version;

	if (!json_is_object(o) || json_object_size(o) != 1 || !json_is_integer(v) ||
	    json_integer_value(v) < 1 || json_integer_value(v) > 1000000000) {
		json_decref(o);
		api_json_error(r->res, 400, "version", "body: {\"version\": N}");
		return;
	}
	version = (int)json_integer_value(v);
	json_decref(o);
	save_template(r, false, version);
}

/* ---- preview ------------------------------------------------------------ */

struct preview {
	struct api_ctx *c;
	const struct svc_principal *who;
	const char *mac;
	bool reveal;
	json_t *files;
	json_t *out;
	int status;
	char msg[300];
};

static int
preview_file(const char *name, const char *data, size_t len, bool shared, void *arg)
{
	struct preview *pv = arg;
	json_t *content = json_stringn(data, len);

	if (content == NULL)
		return -1;
	json_array_append_new(pv->files, json_pack("{s:s, s:b, s:o}", "name", name, "shared",
	                      shared, "content", content));
	return 0;
}

static int
rd_preview(const struct world *w, struct store *st, void *arg)
{
	struct preview *pv = arg;
	const struct hd_dev *d = world_dev_by_mac(w, pv->mac);
	char err[256] = "";

	if (d == NULL || !(pv->who->role == SVC_ROLE_ADMIN || pv->who->org == d->org)) {
		pv->status = 404;
		snprintf(pv->msg, sizeof(pv->msg), "no such device");
		return 0;
	}
	pv->files = json_array();
	if (pub_preview(pv->c->pub, w, d, !pv->reveal, preview_file, pv, err, sizeof(err)) != 0) {
		char safe[300];

		/* the message names a position or a variable, never a value */
		pv->status = 409;
		snprintf(pv->msg, sizeof(pv->msg), "the device's files do not render: %s",
		         log_sanitize(err, safe, sizeof(safe)));
		return 0;
	}
	pv->out = json_pack("{s:s, s:s, s:s?, s:I, s:b, s:O}", "mac", d->mac, "profile",
	                    d->profile, "model", d->model, "version",
	                    (json_int_t)pub_version(pv->c->pub, d->id), "redacted", !pv->reveal,
	                    "files", pv->files);
	if (pv->reveal)
		(void)event_add(st, (long long)time(NULL), "device.reveal", d->org, NULL, d->mac,
		                NULL);
	return 0;
}

static void
preview(struct treq *r)
{
	struct preview pv = { .c = r->c, .who = r->who, .status = 200 };
	const char *rev = http_query_arg(r->req, "reveal");
	char mac[HD_MAC_LEN + 1];

	if (strcmp(r->seg[2], "preview") != 0 || r->nseg != 3) {
		api_json_error(r->res, 404, NULL, "not found");
		return;
	}
	if (strcmp(r->req->method, "GET") != 0) {
		api_json_error(r->res, 405, NULL, "method not allowed");
		return;
	}
	if (hd_mac_normalize(r->seg[1], mac) != 0) {
		api_json_error(r->res, 400, "mac", "mac: 12 hex digits");
		return;
	}
	pv.mac = mac;
	pv.reveal = rev != NULL && strcmp(rev, "0") != 0 && strcmp(rev, "false") != 0;
	if (pv.reveal && r->who->role != SVC_ROLE_ADMIN) {
		api_json_error(r->res, 403, "reveal", "only an admin token may see credentials");
		return;
	}
	svc_locked(r->c->svc, rd_preview, &pv);
	if (pv.status != 200)
		api_json_error(r->res, pv.status, NULL, pv.msg);
	else
		api_send_json(r->res, 200, pv.out);
	pv.out = NULL;
	json_decref(pv.files);
}

/* ---- entry -------------------------------------------------------------- */

void
api_tmpl_handle(struct api_ctx *c, const struct http_request *req, struct http_response *res,
                const struct svc_principal *who)
{
	struct treq r = { .c = c, .req = req, .res = res, .who = who };
	const char *m = req->method;

	r.nseg = http_path_nsegments(req->path, PREFIX);
	if (r.nseg < 1 || r.nseg > 4) {
		api_json_error(res, 404, NULL, "not found");
		return;
	}
	for (int i = 0; i < r.nseg; i++) {
		if (http_path_segment(req->path, PREFIX, i, r.seg[i], SEG_MAX) < 0) {
			api_json_error(res, 400, NULL, "invalid path");
			return;
		}
	}
	if (strcmp(r.seg[0], "devices") == 0) {
		preview(&r);
		return;
	}
	if (strcmp(r.seg[0], "templates") != 0 || r.nseg == 2) {
		api_json_error(res, 404, NULL, "not found");
		return;
	}
	if (who->role != SVC_ROLE_ADMIN) {
		api_json_error(res, 403, NULL, "templates are server-wide: admin role only");
		return;
	}
	if (r.nseg == 1) {
		if (strcmp(m, "GET") == 0)
			list_templates(&r);
		else
			api_json_error(res, 405, NULL, "method not allowed");
		return;
	}
	if ((r.prof = vendor_profile_by_name(r.seg[1])) == NULL) {
		api_json_error(res, 404, "profile", "no such vendor profile");
		return;
	}
	if ((r.kind = tmpl_kind(r.prof, r.seg[2])) == NULL) {
		api_json_error(res, 404, "name", "the profile has no template of that name");
		return;
	}
	if (r.nseg == 3) {
		if (strcmp(m, "GET") == 0)
			get_template(&r);
		else if (strcmp(m, "PUT") == 0)
			save_template(&r, false, 0);
		else
			api_json_error(res, 405, NULL, "method not allowed");
	} else if (strcmp(r.seg[3], "history") == 0) {
		if (strcmp(m, "GET") == 0)
			get_history(&r);
		else
			api_json_error(res, 405, NULL, "method not allowed");
	} else if (strcmp(r.seg[3], "rollback") == 0 || strcmp(r.seg[3], "dry-run") == 0) {
		if (strcmp(m, "POST") != 0)
			api_json_error(res, 405, NULL, "method not allowed");
		else if (r.seg[3][0] == 'r')
			rollback_template(&r);
		else
			save_template(&r, true, 0);
	} else {
		api_json_error(res, 404, NULL, "not found");
	}
}
