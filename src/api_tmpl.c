/*
 * api_tmpl.c -- template administration and device previews (SPEC 6).
 *
 * Templates are server-wide (every organization's phones of a profile use
 * the same ones), so every /templates endpoint needs the admin role; an
 * organization token gets 403.  A device preview is scoped like the
 * device itself.
 *
 * Saving a template (PUT, rollback; a dry run stops after 3) holds the
 * service lock in short steps, never for the whole save, so that moves
 * and the other changes go on while thousands of devices re-render
 * (docs/ARCHITECTURE.md, "A template save"); saves run one at a time
 * (save_mu):
 *   1. the candidate is checked outside the lock (vendor_template_check:
 *      compiles, renders the sample devices, XML well-formed); one hold
 *      makes the publisher note every device changed from then on
 *      (pub_track_begin), then the devices of the profile are listed in
 *      steps (world_walk_devs) and sorted without the lock;
 *   2. the dry run renders it for those devices, a step at a time, and
 *      compares with what is served (pub_dry_devs);
 *   3. one hold, one transaction (svc_transact): the devices changed
 *      since 1 are dry-run again as they are now and the results counted
 *      (the answer's lists are made after it); a candidate that fails
 *      for any real device is refused, naming it, and nothing is
 *      written; else the new template version (store_tmpl_add or
 *      store_tmpl_activate), the list of the devices whose files change
 *      (HOLD_DEVS, HOLD_DONE) and the event template.put /
 *      template.rollback; after the commit, in the same hold, the
 *      template is installed (pub_template_set): any change from now on
 *      renders with it;
 *   4. the re-render, a step at a time: each step writes the list's
 *      progress and hands its devices to the service's change hook in
 *      the same transaction (SVC_CHANGE_FOLD), which publishes them and
 *      writes their resync rows, due at once (the NOTIFYs follow).
 * Until its step a device serves its old files (whole, with their old
 * version) and the save has written no row for it; a move between two
 * steps renders its own devices with the new template.  The answer is
 * sent once every step is done (and, as every change, once the TFTP root
 * holds the files).
 * A crash between 3 and the end of 4 is repaired at start-up: main.c
 * installs the active template versions and reconciles every device, the
 * devices of the list not yet stepped get their rows (api_tmpl_recover)
 * and start-up makes every pending row due.
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
#include <pthread.h>
#include <stdint.h>

#include <jansson.h>
#include <sodium.h>

#include "event.h"
#include "lockorder.h"
#include "log.h"
#include "metrics.h"
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

/*
 * A save holds the service lock in steps of about SAVE_SLICE_NS of work
 * each, and lets the threads waiting for the lock have it between two.
 * A step ends early when a thread waits for the lock, or a *30 move is
 * under way (svc_step_over; the save then waits for it, demand.h): a *30
 * during a save waits for the device being dry-run, or for the
 * SAVE_RR_PART devices being re-rendered (SVC_CHANGE_MORE), and the
 * step's commit.  A step's own cost (a transaction without a sync, WAL)
 * is small against 2 ms, not against 0.5 ms: steps of 0.5 ms took 8-11 %
 * more CPU to re-render 1,000,000 devices.
 */
#define SAVE_SLICE_NS 2000000ull /* 2 ms */
/* devices handed to the change hook at a time within a re-render step
 * (at least PUB_BATCH_MIN, so that their files go to the bulk queue) */
#define SAVE_RR_PART 8
#define SAVE_STEP_MIN 8
#define SAVE_STEP_MAX 4096
/* table slots per step of the listing of the devices (about 1 ms) */
#define SAVE_WALK_SLOTS 65536
/* devices re-rendered whose files the TFTP writer has not written yet:
 * the re-render waits for the writer beyond that (their files are in
 * memory until written) */
#define SAVE_TFTP_BACKLOG 4096
/* The resync rows of a save wait for their device's re-render; should it
 * never come (the store failing for every step), they are due after this
 * long all the same, or at the next start. */
#define SAVE_HOLD_S (24 * 3600)
/* The changed devices of a save whose re-render is under way (meta keys,
 * written with the version, gone with its last step): HOLD_DEVS their
 * ids in decimal, one after the other; HOLD_DONE "done total", how many
 * of them have their resync row.  A crash in between leaves them for the
 * next start (api_tmpl_recover).  Each step writes its own devices' rows:
 * one row per changed device in the commit's hold would keep a *30
 * waiting for all of them (25,000 rows took 110 ms at 100k). */
#define HOLD_DEVS "template_save_devices"
#define HOLD_DONE "template_save_done"

/* One save (PUT, rollback, dry run) at a time: a save's dry run runs in
 * steps and must not interleave with another's. */
static pthread_mutex_t save_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t save_once = PTHREAD_ONCE_INIT;

static void
save_mu_register(void)
{
	lockorder_register(&save_mu, LOCK_TMPL_SAVE, "template save");
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
	bool shared;         /* a shared template or static file */
	/* the dry run: the devices of the profile (sorted up to nsorted, then
	 * those that joined it meanwhile) and each one's result: 1 changes,
	 * 0 same, -1 fails (errs: MAC -> why), 2 not (any more) of the profile */
	struct pub_dry *dr;
	struct idmap_walk walk; /* the listing of the devices, in steps */
	hd_id *ids;
	signed char *res;
	char (*macs)[HD_MAC_LEN + 1]; /* each one's MAC when dry-run */
	size_t nids, capids, nsorted, at, slot;
	json_t *errs;
	bool tracking;       /* the publisher notes the devices changed meanwhile */
	size_t step;         /* devices per hold of the lock */
	uint64_t t0;         /* when the current hold began its work */
	/* results: the changed devices (in the order of ids), the answer's
	 * lists (made after the last hold) */
	struct { hd_id *v; size_t n; } changed;
	size_t unchanged, nfailed;
	json_t *changed_macs, *failed;
	int version;
	bool installed;
	size_t rr_at, rr_next; /* re-render: done, done after this step */
	int status;
	char msg[512];
};

/* The next step's size from how long this one's work took. */
static void
save_pace(struct save *sv, size_t done)
{
	uint64_t took = metrics_now_ns() - sv->t0;
	double want = took > 0 ? (double)done * (double)SAVE_SLICE_NS / (double)took
	                       : (double)SAVE_STEP_MAX;

	if (done == 0)
		return;
	if (want > 2.0 * (double)sv->step) /* grow gently: the load varies */
		want = 2.0 * (double)sv->step;
	sv->step = want < SAVE_STEP_MIN ? SAVE_STEP_MIN
	         : want > SAVE_STEP_MAX ? SAVE_STEP_MAX : (size_t)want;
}

static void
save_fail(struct save *sv, int status, const char *msg)
{
	sv->status = status;
	snprintf(sv->msg, sizeof(sv->msg), "%s", msg);
}

static int
dry_cb(const struct pub_dry_dev *d, void *arg)
{
	struct save *sv = arg;

	sv->res[sv->slot] = (signed char)(d->result > 0 ? 1 : d->result < 0 ? -1 : 0);
	memcpy(sv->macs[sv->slot], d->dev->mac, sizeof(sv->macs[0]));
	if (d->result >= 0) {
		json_object_del(sv->errs, d->dev->mac);
		return 0;
	}
	return json_object_set_new(sv->errs, d->dev->mac,
	                           json_string(d->error ? d->error : "render failed"));
}

/* Dry-runs device ids[i] as the world has it now (lock held). */
static int
dry_one(struct save *sv, const struct world *w, size_t i)
{
	sv->slot = i;
	sv->res[i] = 2; /* unless the dry run finds it a device of the profile */
	return pub_dry_devs(sv->dr, w, &sv->ids[i], 1, dry_cb, sv);
}

static int
ids_push(struct save *sv, hd_id id)
{
	if (sv->nids == sv->capids) {
		size_t cap = sv->capids ? sv->capids * 2 : 256;
		hd_id *v = realloc(sv->ids, cap * sizeof(*v));
		signed char *r;
		char (*m)[HD_MAC_LEN + 1];

		if (v == NULL)
			return -1;
		sv->ids = v;
		if ((r = realloc(sv->res, cap)) == NULL)
			return -1;
		sv->res = r;
		if ((m = realloc(sv->macs, cap * sizeof(*m))) == NULL)
			return -1;
		sv->macs = m;
		sv->capids = cap;
	}
	sv->res[sv->nids] = 2;
	sv->ids[sv->nids++] = id;
	return 0;
}

static int
collect_dev(struct hd_dev *d, void *arg)
{
	struct save *sv = arg;

	if (vendor_profile_by_name(d->profile) != sv->prof)
		return 0;
	return ids_push(sv, d->id) != 0;
}

static int
id_cmp(const void *a, const void *b)
{
	hd_id x = *(const hd_id *)a, y = *(const hd_id *)b;

	return x < y ? -1 : x > y;
}

static int
load_version(const struct store_tmpl *t, void *arg)
{
	struct save *sv = arg;

	if (t->content != NULL && (sv->loaded = strdup(t->content)) == NULL)
		return -1;
	return 0;
}

/* First hold: a rollback's version is read, and the publisher notes,
 * from now on, the devices that change (the listing that follows in
 * steps may miss those, the last check does not). */
static int
save_begin(const struct world *w, struct store *st, void *arg)
{
	struct save *sv = arg;

	(void)w;
	if (sv->rollback != 0) {
		int rc = store_tmpl_get(st, sv->prof->name, sv->name, sv->rollback, load_version, sv);

		if (rc < 0 || (rc > 0 && sv->loaded == NULL)) {
			save_fail(sv, 500, "cannot read the template version");
			return -1;
		}
		if (rc == 0) {
			save_fail(sv, 404, "version: no such version");
			return -1;
		}
		sv->src = sv->loaded;
		sv->len = strlen(sv->loaded);
	}
	pub_track_begin(sv->c->pub);
	sv->tracking = true;
	return 0;
}

/* One step of the listing of the profile's devices (lock held); a table
 * rebuilt meanwhile starts the list again.  1 when the list is whole. */
static int
save_list_step(const struct world *w, struct store *st, void *arg)
{
	struct save *sv = arg;

	(void)st;
	if (world_walk_devs(w, &sv->walk, SAVE_WALK_SLOTS, collect_dev, sv) != 0) {
		save_fail(sv, 500, "out of memory");
		return -1;
	}
	if (sv->walk.restarted)
		sv->nids = 0;
	return sv->walk.done;
}

/* One step of the dry run (lock held). */
static int
save_dry_step(const struct world *w, struct store *st, void *arg)
{
	struct save *sv = arg;
	size_t end = sv->at + sv->step < sv->nids ? sv->at + sv->step : sv->nids;
	size_t from = sv->at;

	(void)st;
	sv->t0 = metrics_now_ns();
	for (; sv->at < end; sv->at++) {
		if (sv->at > from && svc_step_over(sv->c->svc))
			break; /* a *30 waits: the rest in the next step */
		if (dry_one(sv, w, sv->at) != 0) {
			save_fail(sv, 500, "out of memory");
			return -1;
		}
	}
	save_pace(sv, sv->at - from);
	return 0;
}

/* The index of id in sv->ids, or nids. */
static size_t
ids_find(const struct save *sv, hd_id id)
{
	const hd_id *hit = sv->nsorted > 0 ? bsearch(&id, sv->ids, sv->nsorted, sizeof(id), id_cmp)
	                                   : NULL;

	if (hit != NULL)
		return (size_t)(hit - sv->ids);
	for (size_t i = sv->nsorted; i < sv->nids; i++)
		if (sv->ids[i] == id)
			return i;
	return sv->nids;
}

/* The devices the publisher saw change while the dry run released the
 * lock are dry-run again as they are now (lock held).  0, or -1. */
static int
dry_redo(struct save *sv, const struct world *w)
{
	struct hd_idset redo = { 0 };
	int rc = 0;

	sv->tracking = false;
	if (pub_track_end(sv->c->pub, &redo) != 0)
		rc = -1;
	for (size_t k = 0; rc == 0 && k < redo.n; k++) {
		size_t i = ids_find(sv, redo.v[k]);

		if (i == sv->nids && (rc = ids_push(sv, redo.v[k])) != 0)
			break;
		rc = dry_one(sv, w, i);
	}
	hd_idset_free(&redo);
	return rc;
}

/* The results counted, the changed devices listed (lock held, after
 * dry_redo: a device gone meanwhile was dry-run again and is none of
 * them).  0, or -1. */
static int
dry_tally(struct save *sv)
{
	size_t n = 0;

	for (size_t i = 0; i < sv->nids; i++)
		n += sv->res[i] == 1;
	if (n > 0 && (sv->changed.v = malloc(n * sizeof(*sv->changed.v))) == NULL)
		return -1;
	for (size_t i = 0; i < sv->nids; i++) {
		if (sv->res[i] == 1)
			sv->changed.v[sv->changed.n++] = sv->ids[i];
		else if (sv->res[i] == 0)
			sv->unchanged++;
		else if (sv->res[i] < 0)
			sv->nfailed++;
	}
	return 0;
}

/* The answer's lists of MACs from the results (no lock: the MACs are
 * those the dry run saw).  0, or -1. */
static int
dry_lists(struct save *sv)
{
	for (size_t i = 0; i < sv->nids; i++) {
		const char *mac = sv->macs[i];

		if (sv->res[i] == 1) {
			if (json_array_append_new(sv->changed_macs, json_string(mac)) != 0)
				return -1;
		} else if (sv->res[i] < 0) {
			json_t *e = json_object_get(sv->errs, mac);

			if (json_array_append_new(sv->failed, json_pack("{s:s, s:s}", "mac", mac,
			                          "error", e ? json_string_value(e) : "render failed")) != 0)
				return -1;
		}
	}
	return 0;
}

/* A held resync row for each of v[0..n) that is still a device (lock
 * held, in the caller's transaction), for the devices of a save that a
 * crash left without one: due after SAVE_HOLD_S or at the next start
 * (which makes every pending row due).  0 or -1. */
static int
hold_rows(const struct world *w, struct store *st, const hd_id *v, size_t n)
{
	long long now = (long long)time(NULL);

	for (size_t i = 0; i < n; i++)
		if (world_dev(w, v[i]) != NULL &&
		    store_resync_enqueue_at(st, v[i], now, now + SAVE_HOLD_S) != 0)
			return -1;
	return 0;
}

/* The list is gone: every device of it has its row. */
static int
hold_clear(struct store *st)
{
	return store_meta_put(st, HOLD_DEVS, NULL) == 0 &&
	       store_meta_put(st, HOLD_DONE, NULL) == 0 ? 0 : -1;
}

static int
hold_done(struct store *st, size_t done, size_t total)
{
	char buf[48];

	if (done >= total)
		return hold_clear(st);
	snprintf(buf, sizeof(buf), "%zu %zu", done, total);
	return store_meta_put(st, HOLD_DONE, buf) == 0 ? 0 : -1;
}

/* The devices of a save whose rows are not written yet (HOLD_DEVS after
 * the first HOLD_DONE), into *v, *n (malloc'd; none: NULL, 0).  0, or -1
 * (a store error, out of memory); a record that does not parse is none. */
static int
hold_load(struct store *st, hd_id **v, size_t *n)
{
	char head[48], *text = NULL, *p, *end;
	size_t done, total, len;
	int rc;

	*v = NULL;
	*n = 0;
	if ((rc = store_meta_get(st, HOLD_DONE, head, sizeof(head))) <= 0)
		return rc;
	if (sscanf(head, "%zu %zu", &done, &total) != 2 || done > total || total > SIZE_MAX / 24) {
		log_warn("templates: meta %s does not parse: ignored", HOLD_DONE);
		return 0;
	}
	len = total * 21 + 2;
	if ((text = malloc(len)) == NULL ||
	    (total > 0 && (*v = malloc(total * sizeof(**v))) == NULL) ||
	    store_meta_get(st, HOLD_DEVS, text, len) != 1) {
		free(text);
		free(*v);
		*v = NULL;
		return -1;
	}
	p = text;
	for (size_t i = 0; i < total; i++) {
		long long id = strtoll(p, &end, 10);

		if (end == p || id <= 0)
			break;
		p = end;
		if (i >= done)
			(*v)[(*n)++] = (hd_id)id;
	}
	free(text);
	return 0;
}

/* Rows for the devices a save left without (its re-render was cut short:
 * the store failed, or a crash), held as it would have written them. */
int
api_tmpl_recover(const struct world *w, struct store *st)
{
	hd_id *v;
	size_t n;

	if (hold_load(st, &v, &n) != 0)
		return -1;
	if (hold_rows(w, st, v, n) != 0 || hold_clear(st) != 0) {
		free(v);
		return -1;
	}
	if (n > 0)
		log_warn("templates: %zu devices owe a resync after a re-render cut short", n);
	free(v);
	return 0;
}

/* HOLD_DEVS and HOLD_DONE for the changed devices (none written yet). */
static int
hold_put(struct save *sv, struct store *st)
{
	size_t n = sv->changed.n;
	char *text = malloc(n * 21 + 1), *p = text;
	int rc;

	if (text == NULL)
		return -1;
	/* by hand: snprintf took 20 ms of the hold for 250,000 devices */
	for (size_t i = 0; i < n; i++) {
		char digits[20];
		size_t k = 0;

		for (uint64_t id = (uint64_t)sv->changed.v[i]; k == 0 || id > 0; id /= 10)
			digits[k++] = (char)('0' + id % 10);
		if (i > 0)
			*p++ = ' ';
		while (k > 0)
			*p++ = digits[--k];
	}
	*p = '\0';
	rc = store_meta_put(st, HOLD_DEVS, text) == 0 && hold_done(st, 0, n) == 0 ? 0 : -1;
	free(text);
	return rc;
}

/* The rows of a save: the version, the list of the changed devices (each
 * step of the re-render has their resync rows written) and the event (in
 * the service's transaction).  0, or -1. */
static int
save_rows(struct save *sv, const struct world *w, struct store *st)
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
	/* a save whose re-render was cut short left rows to write */
	if (rc == 0)
		rc = api_tmpl_recover(w, st);
	if (rc == 0 && sv->changed.n > 0)
		rc = hold_put(sv, st);
	if (rc != 0)
		return -1;
	return event_add(st, now, sv->rollback ? "template.rollback" : "template.put", 0, NULL,
	                 NULL, json_pack("{s:s, s:s, s:i, s:i}", "profile", sv->prof->name,
	                                 "name", sv->name, "version", sv->version, "devices",
	                                 (int)sv->changed.n));
}

/* The last hold of the checks, and the commit (svc_transact): the devices
 * changed meanwhile are dry-run again, then the rows are written.
 * 0 commits; 1 rolls back (a dry run, or sv->status says why). */
static int
do_save(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct save *sv = arg;

	(void)chg; /* the devices are re-rendered in steps after the commit */
	if (dry_redo(sv, w) != 0 || dry_tally(sv) != 0) {
		save_fail(sv, 500, "out of memory");
		return 1;
	}
	if (sv->dry || sv->nfailed > 0)
		return 1; /* a failure is told once the lists are made */
	if (save_rows(sv, w, st) != 0) {
		log_error("template %s/%s: cannot save: %s", sv->prof->name, sv->name,
		          store_errmsg(st));
		save_fail(sv, 500, "cannot save the template");
		return 1;
	}
	return 0;
}

/* After the commit, in the same hold: the template is installed, so that
 * every change from now on renders with it (start-up repairs a crash
 * before this). */
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
	if (sv->shared)
		pub_shared_refresh(sv->c->pub, st); /* the TFTP copies of shared files */
	sv->installed = true;
	return 0;
}

/* One part of a step of the re-render (svc_transact, called again while
 * it sets SVC_CHANGE_MORE): the list's progress, and the next devices
 * handed to the change hook in the same transaction (SVC_CHANGE_FOLD),
 * which publishes them, records their versions and writes their resync
 * rows, due at once; a shared template or static file changes no
 * per-device file: its devices are "changed" all the same, so that they
 * get their NOTIFY.  The step goes on while it is shorter than
 * SAVE_SLICE_NS and no thread waits for the lock. */
static int
rerender_step(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct save *sv = arg;
	size_t from = sv->rr_next;
	size_t end = from + SAVE_RR_PART < sv->changed.n ? from + SAVE_RR_PART : sv->changed.n;

	if (from == sv->rr_at) /* the step's first part */
		sv->t0 = metrics_now_ns();
	/* each row is written once, by the hook (no held row first); a
	 * device deleted since the listing is unpublished already and owes
	 * no NOTIFY (its row would name no device) */
	if (hold_done(st, end, sv->changed.n) != 0)
		return -1;
	for (size_t i = from; i < end; i++)
		if (world_dev(w, sv->changed.v[i]) != NULL &&
		    hd_idset_push(&chg->devs, sv->changed.v[i]) != 0)
			return -1;
	chg->flags |= SVC_CHANGE_BULK | SVC_CHANGE_FOLD;
	if (sv->shared)
		chg->flags |= SVC_CHANGE_NOTIFY_ALL;
	sv->rr_next = end;
	if (end < sv->changed.n && metrics_now_ns() - sv->t0 < SAVE_SLICE_NS)
		chg->flags |= SVC_CHANGE_MORE;
	return 0;
}

/* Re-renders the changed devices in steps.  A device not re-rendered yet
 * serves its old files, and its resync row waits; a change between two
 * steps renders its own devices with the new template. */
static void
save_rerender(struct save *sv)
{
	int tries = 0;

	while (sv->rr_at < sv->changed.n) {
		sv->rr_next = sv->rr_at; /* a step rolled back starts again */
		if (svc_transact(sv->c->svc, "template", rerender_step, NULL, sv) == SVC_OK) {
			sv->rr_at = sv->rr_next;
			tries = 0;
		} else if (++tries == 3) {
			log_error("template %s/%s: %zu devices not re-rendered (the store fails); "
			          "a restart publishes them", sv->prof->name, sv->name,
			          sv->changed.n - sv->rr_at);
			return;
		}
		/* files wait in memory for the TFTP writer: a few thousand at most */
		pub_tftp_backlog(sv->c->pub, SAVE_TFTP_BACKLOG);
		svc_yield(sv->c->svc);
	}
}

/* Stops the publisher's noting when the save ended before its commit. */
static int
save_untrack(const struct world *w, struct store *st, void *arg)
{
	struct save *sv = arg;
	struct hd_idset drop = { 0 };

	(void)w;
	(void)st;
	(void)pub_track_end(sv->c->pub, &drop);
	hd_idset_free(&drop);
	sv->tracking = false;
	return 0;
}

static void
save_free(struct save *sv)
{
	pub_dry_close(sv->dr);
	free(sv->ids);
	free(sv->res);
	free(sv->macs);
	json_decref(sv->errs);
	free(sv->changed.v);
	json_decref(sv->changed_macs);
	json_decref(sv->failed);
	free(sv->loaded);
}

/* The checks, the dry run in steps, the commit, the re-render in steps
 * (save_mu held).  sv->status says how it ended. */
static void
save_run(struct save *sv)
{
	char err[400];
	int rc;

	if (svc_locked(sv->c->svc, save_begin, sv) != 0) {
		if (sv->status == 200)
			save_fail(sv, 500, "cannot read the devices");
		return;
	}
	while ((rc = svc_locked(sv->c->svc, save_list_step, sv)) == 0)
		svc_yield(sv->c->svc);
	if (rc < 0)
		return;
	if (sv->nids > 0) /* for ids_find; devices joining later go after */
		qsort(sv->ids, sv->nids, sizeof(*sv->ids), id_cmp);
	sv->nsorted = sv->nids;
	if (sv->rollback != 0 &&
	    vendor_template_check(sv->prof, sv->name, sv->src, sv->len, err, sizeof(err)) != 0) {
		sv->status = 409;
		snprintf(sv->msg, sizeof(sv->msg), "version %d is no longer valid: %s",
		         sv->rollback, err);
		return;
	}
	if ((sv->dr = pub_dry_open(sv->c->pub, sv->prof, sv->name, sv->src, sv->len, err,
	                           sizeof(err))) == NULL) {
		save_fail(sv, 500, err);
		return;
	}
	while (sv->at < sv->nsorted) {
		if (svc_locked(sv->c->svc, save_dry_step, sv) != 0)
			return;
		svc_yield(sv->c->svc);
	}
	if (svc_transact(sv->c->svc, "template", do_save, save_install, sv) == SVC_INTERNAL &&
	    sv->status == 200)
		save_fail(sv, 500, "cannot save the template");
	if (sv->status != 200)
		return;
	if (dry_lists(sv) != 0) {
		save_fail(sv, 500, "out of memory");
		return;
	}
	if (sv->nfailed > 0 && !sv->dry) {
		json_t *f = json_array_get(sv->failed, 0);

		sv->status = 400;
		snprintf(sv->msg, sizeof(sv->msg), "the template fails for device %s: %s",
		         json_string_value(json_object_get(f, "mac")),
		         json_string_value(json_object_get(f, "error")));
		return;
	}
	if (!sv->dry && sv->installed)
		save_rerender(sv);
}

/* PUT (save), POST dry-run (dry), POST rollback (rollback > 0). */
static void
save_template(struct treq *r, bool dry, int rollback)
{
	struct save sv = { .c = r->c, .prof = r->prof, .name = r->seg[2], .dry = dry,
	                   .rollback = rollback, .status = 200, .step = SAVE_STEP_MIN };
	char *owned = NULL, *comment = NULL, err[400];

	sv.shared = strcmp(tmpl_kind(r->prof, sv.name), "device") != 0;
	sv.changed_macs = json_array();
	sv.failed = json_array();
	sv.errs = json_object();
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
	pthread_once(&save_once, save_mu_register);
	pthread_mutex_lock(&save_mu);
	svc_thread_steps(true); /* its holds can wait for a *30 */
	save_run(&sv);
	if (sv.tracking)
		(void)svc_locked(r->c->svc, save_untrack, &sv);
	svc_thread_steps(false);
	pthread_mutex_unlock(&save_mu);
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
	if (sv.installed)
		pub_give_back(); /* the old files, the dry run's lists, the answer */
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
