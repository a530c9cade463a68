/*
 * faults.h -- the application layer under fault injection: a service on
 * an in-memory store with a publisher wired to it as the daemon wires it
 * (change hook pub_update, check hook pub_check), a small world, and the
 * checks made after an operation whose k-th store step failed (store.h,
 * store_fault_at; these tests link the store built with -DHD_FAULTS):
 *
 *   1. the world in memory equals the world reloaded from the store,
 *      derived links included (home device, guest);
 *   2. the invariants hold in both (virt_check_invariants: at most one
 *      virtual extension per device, nobody on their own home, ...);
 *   3. the operation is all or nothing: the world is the one before it
 *      (it failed) or the one a fault-free run leaves (it succeeded);
 *   4. every per-device file served (pub_get) and written to the TFTP
 *      root equals a render of the reloaded world (pub_preview), a fresh
 *      publisher reconciled from the store serves the same bytes, and a
 *      device the reloaded world no longer has is served nowhere.
 *
 * fx_faults runs an operation once without a fault, then once per k from
 * 1 until the operation no longer reaches its k-th step, each time on a
 * new fixture, and makes the checks after every run.
 */
#ifndef HD_FAULTS_H
#define HD_FAULTS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "publish.h"
#include "resync_engine.h"
#include "service.h"
#include "store.h"
#include "testutil.h"
#include "vendor.h"
#include "virt.h"
#include "world.h"

#define FX_CODE "4711"

struct fx {
	struct svc *svc;
	struct pub *pub;
	struct resync *rs; /* NULL unless a test starts the engine */
	/* a test's own checks after each run (NULL: none); lock not held */
	void (*extra)(struct fx *f, const char *label);
	char *tftp;       /* the publisher's TFTP root */
	hd_id org;        /* "acme" */
	int hook_calls;   /* change hook runs */
	long armed;       /* the k of the fault armed now, 0 = none */
};

static inline int
fx_on_change(void *arg, const struct world *w, struct store *st, const hd_id *devs, size_t n,
             const char *why, unsigned flags)
{
	struct fx *f = arg;
	struct hd_idset changed = { 0 };
	int rc = 0;

	f->hook_calls++;
	(void)pub_update(f->pub, w, st, devs, n, &changed);
	for (size_t i = 0; (flags & SVC_CHANGE_NOTIFY_ALL) && i < n; i++)
		cr_assert_eq(hd_idset_add(&changed, devs[i]), 0);
	if (f->rs != NULL)
		rc = resync_note(f->rs, w, st, devs, n, &changed, why, flags);
	else if (flags & SVC_CHANGE_OUTBOX)
		rc = store_resync_enqueue_n(st, devs, n, 1000);
	hd_idset_free(&changed);
	return rc;
}

/* The engine is woken once the lock is released, as the daemon does
 * (main.c): what the change staged is committed by then. */
static inline void
fx_on_unlocked(void *arg)
{
	struct fx *f = arg;

	if (f->rs != NULL)
		resync_wake(f->rs);
}

static inline int
fx_on_check(void *arg, const struct world *w, const hd_id *devs, size_t n, char *err,
            size_t errlen)
{
	struct fx *f = arg;

	return pub_check(f->pub, w, devs, n, err, errlen);
}

static inline void
fx_on_prerender(void *arg, const struct world *w, const hd_id *devs, size_t n)
{
	struct fx *f = arg;

	pub_prerender(f->pub, w, devs, n);
}

static inline int
fx_reconcile(const struct world *w, struct store *st, void *arg)
{
	char err[256];
	int rc = pub_reconcile(arg, w, st, err, sizeof(err));

	cr_assert_eq(rc, 0, "pub_reconcile: %s", err);
	return rc;
}

static inline struct hd_org *
fx_org(const char *name)
{
	struct hd_org *o = calloc(1, sizeof(*o));

	cr_assert_not_null(o);
	o->name = strdup(name);
	o->display_name = strdup("Acme Corp");
	o->sip.host = strdup("pbx.acme.test");
	o->sip.port = 5060;
	o->sip.transport = strdup("udp");
	return o;
}

static inline struct hd_ext *
fx_ext(hd_id org, const char *number, const char *name)
{
	struct hd_ext *e = calloc(1, sizeof(*e));
	char user[64];

	cr_assert_not_null(e);
	snprintf(user, sizeof(user), "acme%s", number);
	e->org = org;
	e->number = strdup(number);
	e->sip_user = strdup(user);
	e->sip_password = strdup("pw-secret-" FX_CODE);
	e->display_name = strdup(name);
	e->allow_virtualization = true;
	return e;
}

static inline struct hd_dev *
fx_dev(hd_id org, const char *mac, const char *profile, hd_id home, const char *parking)
{
	struct hd_dev *d = calloc(1, sizeof(*d));

	cr_assert_not_null(d);
	snprintf(d->mac, sizeof(d->mac), "%s", mac);
	d->org = org;
	d->profile = strdup(profile);
	d->home_ext = home;
	if (parking != NULL) {
		d->parking_user = strdup(parking);
		d->parking_password = strdup("park-secret");
	}
	return d;
}

static inline int
fx_org_id_locked(const struct world *w, struct store *st, void *arg)
{
	const struct hd_org *o = world_org_by_name(w, "acme");

	(void)st;
	*(hd_id *)arg = o != NULL ? o->id : 0;
	return o != NULL ? 0 : -1;
}

static inline int
fx_ext_id_locked(const struct world *w, struct store *st, void *arg)
{
	void **a = arg;

	(void)st;
	const struct hd_ext *e = world_ext_by_number(w, *(hd_id *)a[0], a[1]);

	*(hd_id *)a[2] = e != NULL ? e->id : 0;
	return 0;
}

static inline hd_id
fx_ext_id(struct fx *f, const char *number)
{
	hd_id id = 0;
	void *a[3] = { &f->org, (void *)number, &id };

	(void)svc_locked(f->svc, fx_ext_id_locked, a);
	return id;
}

/* A *30 that must succeed (setup). */
static inline void
fx_star30_ok(struct fx *f, const char *caller, const char *digits, const char *code,
             enum virt_result want)
{
	struct svc_star30_req rq = { .caller = caller, .digits = digits, .code = code };
	struct svc_star30_res res;

	cr_assert_eq(svc_star30(f->svc, &rq, &res), SVC_OK);
	cr_assert_eq(res.result, want, "*30 %s from %s: %s", digits ? digits : "", caller,
	             virt_result_name(res.result));
}

/*
 * A new service with its publisher and this world (organization acme):
 *   100 Ada    home on 001565000100 (yealink), visited by Dee
 *   101 Bob    home on 0004f2000101 (polycom), visited by Cy
 *   102 Cy     home on 00605c000102 (cisco-mpp), visiting Bob's phone
 *   103 Dee    home on 001565000103 (yealink, parking account acme-park3),
 *              visiting Ada's phone: hers is parked
 *   104 Eve    no home
 * Every extension has the code FX_CODE and allows virtualization.
 */
static inline struct fx *
fx_new(void)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct svc_opts o = { 0 };
	struct pub_opts po = { 0 };
	struct svc_result r;
	char err[256];
	static const char *const names[] = { "Ada", "Bob", "Cy", "Dee", "Eve" };
	static const char *const numbers[] = { "100", "101", "102", "103", "104" };

	cr_assert_not_null(f);
	o.db_path = ":memory:";
	o.sql_dir = "sql";
	o.hash_ops = 1;
	o.hash_mem = 8192;
	o.code_min_len = 4;
	o.guard = (struct guard_policy){ 3, 5, 600, 60, 3600, 60 };
	o.check_invariants = true;
	o.move_outbox = true; /* the move webhook's rows fail with the rest */
	f->svc = svc_open(&o, err, sizeof(err));
	cr_assert_not_null(f->svc, "svc_open: %s", err);
	{
		/* on tmpfs when there is one: the publisher syncs what it writes */
		char tmpl[] = "/dev/shm/hotdeskd-fx-XXXXXX";

		f->tftp = mkdtemp(tmpl) != NULL ? strdup(tmpl) : tu_tmpdir();
		cr_assert_not_null(f->tftp);
	}
	po.templates = "templates";
	po.static_dir = "provisioning";
	po.tftp_root = f->tftp;
	f->pub = pub_new(&po, err, sizeof(err));
	cr_assert_not_null(f->pub, "pub_new: %s", err);
	cr_assert_eq(svc_locked(f->svc, fx_reconcile, f->pub), 0);
	svc_set_change_hook(f->svc, fx_on_change, f);
	svc_set_unlock_hook(f->svc, fx_on_unlocked, f);
	svc_set_check_hook(f->svc, fx_on_check, f);
	svc_set_prerender_hook(f->svc, fx_on_prerender, f);

	memset(&r, 0, sizeof(r));
	cr_assert_eq(svc_org_put(f->svc, fx_org("acme"), &r), SVC_OK, "org: %s", r.err);
	cr_assert_eq(svc_locked(f->svc, fx_org_id_locked, &f->org), 0);
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(svc_ext_put(f->svc, fx_ext(f->org, numbers[i], names[i]), FX_CODE, &r),
		             SVC_OK, "ext %s: %s", numbers[i], r.err);
	cr_assert_eq(svc_dev_put(f->svc, fx_dev(f->org, "001565000100", "yealink",
	                                         fx_ext_id(f, "100"), NULL), &r),
	             SVC_OK, "dev: %s", r.err);
	cr_assert_eq(svc_dev_put(f->svc, fx_dev(f->org, "0004f2000101", "polycom",
	                                         fx_ext_id(f, "101"), NULL), &r),
	             SVC_OK, "dev: %s", r.err);
	cr_assert_eq(svc_dev_put(f->svc, fx_dev(f->org, "00605c000102", "cisco-mpp",
	                                         fx_ext_id(f, "102"), NULL), &r),
	             SVC_OK, "dev: %s", r.err);
	cr_assert_eq(svc_dev_put(f->svc, fx_dev(f->org, "001565000103", "yealink",
	                                         fx_ext_id(f, "103"), "acme-park3"), &r),
	             SVC_OK, "dev: %s", r.err);
	fx_star30_ok(f, "acme101", "102", FX_CODE, VIRT_ACCEPTED);
	fx_star30_ok(f, "acme100", "103", FX_CODE, VIRT_ACCEPTED);
	/* the daemon answers once the files are in the TFTP root */
	pub_settle(f->pub);
	/* what the faults make the daemon log is expected: FX_VERBOSE shows it */
	if (getenv("FX_VERBOSE") == NULL && freopen("/dev/null", "w", stderr) == NULL)
		abort();
	return f;
}

static inline int
fx_rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void
fx_free(struct fx *f)
{
	resync_free(f->rs);
	svc_close(f->svc);
	pub_free(f->pub);
	(void)nftw(f->tftp, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f->tftp);
	free(f);
}

/* ---- the world as text ---------------------------------------------------- */

static inline const char *
fx_s(const char *s)
{
	return s != NULL ? s : "(null)";
}

static inline int
fx_cmp_id(const void *a, const void *b)
{
	hd_id x = **(const hd_id *const *)a, y = **(const hd_id *const *)b;

	return x < y ? -1 : x > y;
}

struct fx_objs {
	void **v;
	size_t n;
};

static inline int
fx_collect(void *o, void *arg)
{
	struct fx_objs *c = arg;

	c->v = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	cr_assert_not_null(c->v);
	c->v[c->n++] = o;
	return 0;
}

static inline int
fx_collect_org(struct hd_org *o, void *arg)
{
	return fx_collect(o, arg);
}

static inline int
fx_collect_ext(struct hd_ext *e, void *arg)
{
	return fx_collect(e, arg);
}

static inline int
fx_collect_dev(struct hd_dev *d, void *arg)
{
	return fx_collect(d, arg);
}

/* Every field of every object, in id order (the id is each struct's first
 * member); malloc'd. */
static inline char *
fx_dump(const struct world *w)
{
	struct fx_objs c = { 0 };
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);

	cr_assert_not_null(m);
	world_each_org(w, fx_collect_org, &c);
	qsort(c.v, c.n, sizeof(*c.v), fx_cmp_id);
	for (size_t i = 0; i < c.n; i++) {
		const struct hd_org *o = c.v[i];

		fprintf(m, "org %lld %s %s sip %s %d %s prov %d %d %s %s %s site %d %d %s %s\n",
		        (long long)o->id, fx_s(o->name), fx_s(o->display_name), fx_s(o->sip.host),
		        o->sip.port, fx_s(o->sip.transport), (int)o->prov.auth,
		        (int)o->prov.client_cert, fx_s(o->prov.user), fx_s(o->prov.password),
		        fx_s(o->prov.networks), o->site.utc_offset, (int)o->site.dst,
		        fx_s(o->site.ntp_server), fx_s(o->site.language));
	}
	c.n = 0;
	world_each_ext(w, fx_collect_ext, &c);
	qsort(c.v, c.n, sizeof(*c.v), fx_cmp_id);
	for (size_t i = 0; i < c.n; i++) {
		const struct hd_ext *e = c.v[i];

		fprintf(m, "ext %lld org %lld %s %s %s %s %s vm %s lang %s sip %s %d %s virt %d "
		        "code %d on %lld home %lld keys",
		        (long long)e->id, (long long)e->org, fx_s(e->number), fx_s(e->sip_user),
		        fx_s(e->sip_password), fx_s(e->display_name), fx_s(e->label),
		        fx_s(e->voicemail), fx_s(e->language), fx_s(e->sip.host), e->sip.port,
		        fx_s(e->sip.transport), e->allow_virtualization, e->has_secret,
		        (long long)e->virtual_on, (long long)e->home_dev);
		for (size_t k = 0; k < e->nkeys; k++)
			fprintf(m, " %d:%s:%s", (int)e->keys[k].type, fx_s(e->keys[k].value),
			        fx_s(e->keys[k].label));
		fputc('\n', m);
	}
	c.n = 0;
	world_each_dev(w, fx_collect_dev, &c);
	qsort(c.v, c.n, sizeof(*c.v), fx_cmp_id);
	for (size_t i = 0; i < c.n; i++) {
		const struct hd_dev *d = c.v[i];

		fprintf(m, "dev %lld org %lld %s %s %s home %lld park %s %s static %s prov %s "
		        "guest %lld\n",
		        (long long)d->id, (long long)d->org, d->mac, fx_s(d->profile),
		        fx_s(d->model), (long long)d->home_ext, fx_s(d->parking_user),
		        fx_s(d->parking_password), fx_s(d->static_contact), fx_s(d->prov_password),
		        (long long)d->guest);
	}
	free(c.v);
	fclose(m);
	return out;
}

static inline int
fx_dump_locked(const struct world *w, struct store *st, void *arg)
{
	(void)st;
	*(char **)arg = fx_dump(w);
	return 0;
}

/* The service's world as text (malloc'd). */
static inline char *
fx_world(struct fx *f)
{
	char *s = NULL;

	(void)svc_locked(f->svc, fx_dump_locked, &s);
	return s;
}

/* ---- the checks ------------------------------------------------------------ */

/* The names of the per-device files of every device (to check a deleted
 * device is served nowhere): "mac name\n" lines, malloc'd. */
struct fx_names {
	FILE *m;
	const char *mac;
};

static inline int
fx_name_cb(const char *name, const char *data, size_t len, bool shared, void *arg)
{
	struct fx_names *n = arg;

	(void)data;
	(void)len;
	if (!shared)
		fprintf(n->m, "%s %s\n", n->mac, name);
	return 0;
}

static inline int
fx_names_dev(struct hd_dev *d, void *arg)
{
	void **a = arg;
	struct fx_names n = { a[0], d->mac };
	char err[256];

	cr_assert_eq(pub_preview(a[1], a[2], d, false, fx_name_cb, &n, err, sizeof(err)), 0,
	             "preview %s: %s", d->mac, err);
	return 0;
}

static inline int
fx_names_locked(const struct world *w, struct store *st, void *arg)
{
	void **a = arg;
	void *b[3] = { a[0], a[1], (void *)w };

	(void)st;
	return world_each_dev(w, fx_names_dev, b);
}

static inline char *
fx_file_names(struct fx *f)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	void *a[2] = { m, f->pub };

	cr_assert_not_null(m);
	(void)svc_locked(f->svc, fx_names_locked, a);
	fclose(m);
	return out;
}

struct fx_check {
	struct fx *f;
	struct pub *fresh;   /* reconciled from the store */
	const struct world *w2;
	const char *label;   /* which run, for the messages */
	size_t files;
	FILE *names;         /* "/name/" of every file rendered */
};

/* Reads a file of the TFTP root; malloc'd, NULL when absent. */
static inline char *
fx_tftp_read(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	FILE *fp;
	char *buf = NULL;
	size_t cap = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	*len = 0;
	for (;;) {
		if (*len + 4096 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		size_t n = fread(buf + *len, 1, cap - *len, fp);

		*len += n;
		if (n == 0)
			break;
	}
	fclose(fp);
	return buf;
}

static inline int
fx_same_cb(const char *name, const char *data, size_t len, bool shared, void *arg)
{
	struct fx_check *c = arg;
	struct pub_ref ref;
	size_t tlen = 0;
	char *t;

	fprintf(c->names, "/%s/", name);
	if (shared) {
		/* a shared file: served and in the TFTP root as rendered now */
		cr_assert_eq(pub_get(c->f->pub, name, &ref), 1, "%s: %s is not served", c->label,
		             name);
		cr_assert(ref.blob->len == len && memcmp(ref.blob->data, data, len) == 0,
		          "%s: shared %s served differs from a render", c->label, name);
		pub_release(ref.blob);
		t = fx_tftp_read(c->f->tftp, name, &tlen);
		cr_assert_not_null(t, "%s: %s missing from the TFTP root", c->label, name);
		cr_assert(tlen == len && memcmp(t, data, len) == 0,
		          "%s: TFTP %s differs from a render", c->label, name);
		free(t);
		return 0;
	}
	c->files++;
	cr_assert_eq(pub_get(c->f->pub, name, &ref), 1, "%s: %s is not served", c->label, name);
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, data, len) == 0,
	          "%s: %s served differs from a render of the reloaded world", c->label, name);
	pub_release(ref.blob);
	cr_assert_eq(pub_get(c->fresh, name, &ref), 1, "%s: %s not served after a restart",
	             c->label, name);
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, data, len) == 0,
	          "%s: %s differs from what a restarted publisher serves", c->label, name);
	pub_release(ref.blob);
	t = fx_tftp_read(c->f->tftp, name, &tlen);
	cr_assert_not_null(t, "%s: %s missing from the TFTP root", c->label, name);
	cr_assert(tlen == len && memcmp(t, data, len) == 0,
	          "%s: TFTP %s differs from a render of the reloaded world", c->label, name);
	free(t);
	return 0;
}

static inline int
fx_check_dev(struct hd_dev *d, void *arg)
{
	struct fx_check *c = arg;
	char err[256];

	cr_assert_eq(pub_preview(c->f->pub, c->w2, d, false, fx_same_cb, c, err, sizeof(err)), 0,
	             "%s: render of %s: %s", c->label, d->mac, err);
	return 0;
}

struct fx_locked_check {
	struct fx *f;
	const char *label;
	const char *names; /* fx_file_names of the world before the operation */
};

static inline int
fx_tmpl_install(const struct store_tmpl *t, void *arg)
{
	char err[256];
	const struct vendor_profile *prof = vendor_profile_by_name(t->profile);

	cr_assert_not_null(prof);
	cr_assert_eq(pub_template_set(arg, prof, t->name, t->content, strlen(t->content), err,
	                              sizeof(err)), 0, "template %s: %s", t->name, err);
	return 0;
}

static inline int
fx_manifest_cb(const char *name, void *arg)
{
	FILE *m = arg;

	fprintf(m, "/%s/", name);
	return 0;
}

/* Every device's file in the TFTP root is in the store's manifest
 * (tftp_files), so that start-up removes it once its device is gone (even
 * deleted while hotdeskd was stopped); shared files are rewritten, never
 * removed.  A name the store could not record is not written. */
static inline void
fx_check_manifest(const struct fx_locked_check *lc, struct store *st)
{
	char *list = NULL, key[300];
	size_t len = 0;
	FILE *m = open_memstream(&list, &len);
	DIR *dir = opendir(lc->f->tftp);
	struct dirent *de;

	cr_assert(m != NULL && dir != NULL);
	cr_assert_eq(store_tftp_each(st, fx_manifest_cb, m), 0);
	fclose(m);
	while ((de = readdir(dir)) != NULL) {
		struct vendor_file_match vm;

		if (de->d_type != DT_REG ||
		    (vendor_match_file(de->d_name, &vm) == 1 && vm.kind == VENDOR_SHARED))
			continue;
		snprintf(key, sizeof(key), "/%s/", de->d_name);
		cr_assert(strstr(list, key) != NULL,
		          "%s: %s is in the TFTP root but not in the manifest", lc->label,
		          de->d_name);
	}
	closedir(dir);
	free(list);
}

static inline int
fx_check_locked(const struct world *w, struct store *st, void *arg)
{
	struct fx_locked_check *lc = arg;
	struct world *w2 = world_new();
	struct pub_opts po = { .templates = "templates", .static_dir = "provisioning" };
	struct fx_check c = { .f = lc->f, .label = lc->label };
	char err[256], *a, *b, *current = NULL;
	size_t clen = 0;

	cr_assert_not_null(w2);
	/* 1. the world equals the store's */
	cr_assert_eq(store_load_world(st, w2, err, sizeof(err)), 0, "%s: reload: %s", lc->label,
	             err);
	a = fx_dump(w);
	b = fx_dump(w2);
	cr_assert_str_eq(a, b, "%s: the world differs from the store's", lc->label);
	free(a);
	free(b);
	/* 2. the invariants */
	cr_assert_eq(virt_check_invariants(w, err, sizeof(err)), 0, "%s: %s", lc->label, err);
	cr_assert_eq(virt_check_invariants(w2, err, sizeof(err)), 0, "%s: reloaded: %s",
	             lc->label, err);
	/* 4. files: as served, in the TFTP root, after a restart */
	c.fresh = pub_new(&po, err, sizeof(err));
	cr_assert_not_null(c.fresh, "%s", err);
	cr_assert_eq(store_tmpl_active_each(st, fx_tmpl_install, c.fresh), 0);
	cr_assert_eq(pub_reconcile(c.fresh, w2, st, err, sizeof(err)), 0, "%s: restart: %s",
	             lc->label, err);
	c.w2 = w2;
	c.names = open_memstream(&current, &clen);
	cr_assert_not_null(c.names);
	world_each_dev(w2, fx_check_dev, &c);
	cr_assert_gt(c.files, 0);
	/* devices gone: served nowhere */
	for (const char *l = lc->names; l != NULL && *l != '\0';) {
		char mac[HD_MAC_LEN + 1], name[256];
		struct pub_ref ref;
		size_t tlen;
		char *t;

		cr_assert_eq(sscanf(l, "%12s %255s", mac, name), 2);
		l = strchr(l, '\n');
		l = l != NULL ? l + 1 : NULL;
		if (world_dev_by_mac(w2, mac) != NULL)
			continue;
		cr_assert_eq(pub_get(c.f->pub, name, &ref), 0, "%s: %s of a deleted device is served",
		             lc->label, name);
		t = fx_tftp_read(c.f->tftp, name, &tlen);
		cr_assert_null(t, "%s: %s of a deleted device is in the TFTP root", lc->label, name);
	}
	fclose(c.names);
	fx_check_manifest(lc, st);
	free(current);
	pub_free(c.fresh);
	world_free(w2);
	return 0;
}

static inline int
fx_relist_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	pub_tftp_relist(arg, st);
	return 0;
}

static inline int
fx_manifest_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	fx_check_manifest(arg, st);
	return 0;
}

static inline void
fx_check(struct fx *f, const char *label, const char *names)
{
	struct fx_locked_check lc = { f, label, names };

	/* what a client sees after the answer and the main loop's next tick:
	 * files whose names the store failed to record are recorded and
	 * written then (pub_tftp_relist), and the daemon answers once the
	 * files are in the TFTP root (pub_settle); before that tick too,
	 * no file is in the TFTP root unless its name is in the manifest */
	pub_settle(f->pub);
	(void)svc_locked(f->svc, fx_manifest_locked, &lc);
	(void)svc_locked(f->svc, fx_relist_locked, f->pub);
	pub_settle(f->pub);
	(void)svc_locked(f->svc, fx_check_locked, &lc);
	if (f->extra != NULL)
		f->extra(f, label);
}

struct fx_rows {
	struct store_resync *v;
	size_t n;
};

/* The resync outbox as text: "dev state\n" per row (the devices owed a
 * NOTIFY), malloc'd; "" with the engine (fx_outbox_synced). */
static inline int
fx_outbox_row(const struct store_resync *r, void *arg)
{
	fprintf(arg, "%lld %s\n", (long long)r->dev, r->state);
	return 0;
}

static inline int
fx_outbox_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	return store_resync_each(st, fx_outbox_row, arg);
}

static inline int
fx_keep_row(const struct store_resync *r, void *arg)
{
	struct fx_rows *rows = arg;

	rows->v = realloc(rows->v, (rows->n + 1) * sizeof(*rows->v));
	cr_assert_not_null(rows->v);
	rows->v[rows->n++] = *r;
	return 0;
}

static inline int
fx_synced_locked(const struct world *w, struct store *st, void *arg)
{
	struct fx_rows rows = { 0 };

	(void)w, (void)arg;
	cr_assert_eq(store_resync_each(st, fx_keep_row, &rows), 0);
	for (size_t i = 0; i < rows.n; i++) {
		resync_set_state(&rows.v[i], "synced");
		cr_assert_eq(store_resync_put(st, &rows.v[i]), 0);
	}
	free(rows.v);
	return 0;
}

/* Every phone has what it is owed: no NOTIFY is owed before the
 * operation under test (so that the rows it writes show).  Not with the
 * engine (f->rs): its tests prepare rows of their own, and it changes
 * them as it goes (they check them with f->extra). */
static inline void
fx_outbox_synced(struct fx *f)
{
	if (f->rs == NULL)
		cr_assert_eq(svc_locked(f->svc, fx_synced_locked, NULL), 0);
}

static inline char *
fx_outbox(struct fx *f)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);

	cr_assert_not_null(m);
	if (f->rs == NULL)
		cr_assert_eq(svc_locked(f->svc, fx_outbox_locked, m), 0);
	fclose(m);
	return out;
}

/* ---- faults ---------------------------------------------------------------- */

static inline int
fx_arm_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	store_fault_at(st, *(long *)arg);
	return 0;
}

static inline void
fx_arm(struct fx *f, long k)
{
	f->armed = k;
	(void)svc_locked(f->svc, fx_arm_locked, &k);
}

static inline int
fx_disarm_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	*(long *)arg = store_fault_steps(st);
	store_fault_at(st, 0);
	return 0;
}

/* Disarms; returns the steps made since fx_arm. */
static inline long
fx_disarm(struct fx *f)
{
	long n = 0;

	f->armed = 0;
	(void)svc_locked(f->svc, fx_disarm_locked, &n);
	return n;
}

/* An operation on a fixture; returns its SVC_ code, or FX_WRONG when it
 * answered SVC_OK with another outcome than the fault-free one. */
#define FX_WRONG 1000
typedef int (*fx_op)(struct fx *f, void *arg);

/*
 * Runs op once without a fault (it must answer SVC_OK, and change the
 * world when changes_world), then for k = 1, 2, ... on a fresh fixture with the k-th store
 * step failing, until op no longer reaches step k.  After every run: the
 * checks of this file's top comment.  prep (may be NULL) runs on each
 * new fixture before the fault is armed.  Returns how many faults were
 * injected (at least one is asserted).
 */
static inline long
fx_faults_world(const char *what, fx_op prep, fx_op op, void *arg, bool changes_world)
{
	struct fx *f = fx_new();
	char *pre, *post, *names, *out_pre, *out_post, label[128];
	int rc;
	long k, steps;

	if (prep != NULL)
		cr_assert_eq(prep(f, arg), SVC_OK, "%s: preparing", what);
	fx_outbox_synced(f);
	pre = fx_world(f);
	out_pre = fx_outbox(f);
	names = fx_file_names(f);
	fx_arm(f, LONG_MAX); /* counts, never fires */
	cr_assert_eq(op(f, arg), SVC_OK, "%s without a fault", what);
	steps = fx_disarm(f);
	post = fx_world(f);
	out_post = fx_outbox(f);
	if (changes_world)
		cr_assert_str_neq(pre, post, "%s changed nothing", what);
	else
		cr_assert_str_eq(pre, post, "%s changed the world", what);
	snprintf(label, sizeof(label), "%s without a fault", what);
	fx_check(f, label, names);
	fx_free(f);
	for (k = 1;; k++) {
		char *now, *out;
		long n;

		f = fx_new();
		if (prep != NULL)
			cr_assert_eq(prep(f, arg), SVC_OK, "%s: preparing", what);
		fx_outbox_synced(f);
		fx_arm(f, k);
		rc = op(f, arg);
		n = fx_disarm(f);
		now = fx_world(f);
		snprintf(label, sizeof(label), "%s, step %ld of %ld failing (answer %d)", what, k,
		         steps, rc);
		/* a failing store is a database error, never another answer */
		cr_assert(rc == SVC_OK || rc == SVC_INTERNAL, "%s: not SVC_OK nor SVC_INTERNAL",
		          label);
		out = fx_outbox(f);
		if (rc == SVC_OK) {
			cr_assert_str_eq(now, post, "%s: answered OK but the world is not the "
			                 "fault-free one", label);
			/* a change that commits owes its NOTIFYs */
			cr_assert_str_eq(out, out_post, "%s: answered OK but the outbox is not the "
			                 "fault-free one:\n%s\nwanted\n%s", label, out, out_post);
		} else {
			cr_assert_str_eq(now, pre, "%s: failed but changed the world", label);
			cr_assert_str_eq(out, out_pre, "%s: failed but changed the outbox", label);
		}
		fx_check(f, label, names);
		free(now);
		free(out);
		fx_free(f);
		if (n < k) {
			cr_assert_eq(rc, SVC_OK, "%s: never reached the fault but failed", label);
			break;
		}
	}
	free(pre);
	free(post);
	free(out_pre);
	free(out_post);
	free(names);
	cr_assert_gt(k, 1, "%s: no store step to fail", what);
	return k - 1;
}

/* fx_faults_world for an operation that changes the world. */
static inline long
fx_faults(const char *what, fx_op op, void *arg)
{
	return fx_faults_world(what, NULL, op, arg, true);
}

#endif
