/*
 * test_publish.c -- the publisher (src/publish.h) on an in-memory store
 * with the store's fault hook (tests/faults.h): a template change
 * re-rendered for every device with the shared files refreshed, and a
 * start-up, each run once per store step with that step failing.  After
 * each run the files served and in the TFTP root equal a render of the
 * stored world, a publisher restarted from the store serves the same
 * bytes (versions included), and every file written is in the store's
 * manifest.
 */
#include "faults.h"

#include <fcntl.h>
#include <unistd.h>

#include "fsutil.h"
#include "pubcache.h"

struct tmpl_change {
	const char *profile, *name, *insert; /* inserted after the first line */
	bool per_device;                     /* a per-device file's template */
	struct fx *f;
};

/* Installs the changed template in the store and in the publisher, as a
 * template save does (before the fault is armed: what is tested is the
 * publishing). */
static int
tmpl_install_locked(const struct world *w, struct store *st, void *arg)
{
	struct tmpl_change *t = arg;
	const struct vendor_profile *prof = vendor_profile_by_name(t->profile);
	char *src = NULL, *nsrc, err[256];
	size_t len = 0, plen = strlen(t->insert), first;
	const char *nl;
	int version;

	(void)w;
	cr_assert_not_null(prof);
	cr_assert_eq(pub_template_default(t->f->pub, prof, t->name, &src, &len, err, sizeof(err)),
	             0, "%s", err);
	/* after the first line (an XML file's declaration stays first) */
	nl = memchr(src, '\n', len);
	cr_assert_not_null(nl);
	first = (size_t)(nl - src) + 1;
	nsrc = malloc(plen + len + 1);
	cr_assert_not_null(nsrc);
	memcpy(nsrc, src, first);
	memcpy(nsrc + first, t->insert, plen);
	memcpy(nsrc + first + plen, src + first, len - first + 1);
	cr_assert_eq(pub_template_set(t->f->pub, prof, t->name, nsrc, plen + len, err,
	                              sizeof(err)), 0, "%s", err);
	cr_assert_eq(store_tmpl_add(st, t->profile, t->name, nsrc, "test", 1000, &version), 0,
	             "%s", store_errmsg(st));
	free(src);
	free(nsrc);
	return 0;
}

static int
prep_tmpl(struct fx *f, void *arg)
{
	struct tmpl_change *t = arg;

	t->f = f;
	return svc_locked(f->svc, tmpl_install_locked, t) == 0 ? SVC_OK : SVC_INTERNAL;
}

struct rerender {
	struct fx *f;
	const struct tmpl_change *t;
	bool wrong; /* the changed set is not the profile's devices */
};

static int
all_devs(struct hd_dev *d, void *arg)
{
	cr_assert_eq(hd_idset_add(arg, d->id), 0);
	return 0;
}

/* Every device re-rendered (what a template save hands the publisher)
 * and the shared files refreshed; the devices found changed are those of
 * the template's profile, whatever the store does. */
static int
rerender_locked(const struct world *w, struct store *st, void *arg)
{
	struct rerender *r = arg;
	struct hd_idset ids = { 0 }, changed = { 0 };

	world_each_dev(w, all_devs, &ids);
	if (pub_update(r->f->pub, w, st, ids.v, ids.n, &changed) != 0)
		r->wrong = true;
	pub_shared_refresh(r->f->pub, st);
	for (size_t i = 0; i < ids.n; i++) {
		const struct hd_dev *d = world_dev(w, ids.v[i]);
		bool want = r->t->per_device && strcmp(d->profile, r->t->profile) == 0;

		if (want != hd_idset_has(&changed, d->id))
			r->wrong = true;
	}
	hd_idset_free(&ids);
	hd_idset_free(&changed);
	return 0;
}

static int
op_rerender(struct fx *f, void *arg)
{
	struct rerender r = { f, arg, false };

	cr_assert_eq(svc_locked(f->svc, rerender_locked, &r), 0);
	return r.wrong ? FX_WRONG : SVC_OK;
}

Test(publish_faults, template_change_per_device_file)
{
	struct tmpl_change t = { "yealink", "device.cfg", "# per-device change\n", true, NULL };

	fx_faults_world("yealink device.cfg re-rendered", prep_tmpl, op_rerender, &t, false);
}

Test(publish_faults, template_change_shared_file)
{
	/* a shared template: no per-device file changes, the shared file in
	 * the TFTP root is rewritten */
	struct tmpl_change t = { "polycom", "common.cfg", "<!-- shared change -->\n", false, NULL };

	fx_faults_world("polycom common.cfg refreshed", prep_tmpl, op_rerender, &t, false);
}

/* ---- start-up ------------------------------------------------------------ */

/* A restart: a new publisher over the same TFTP root reconciled from the
 * store (the files are there, the versions recorded) in one transaction,
 * as the daemon starts.  A failed start-up stops the daemon: the next
 * start (without the fault: the hook fails one step) must serve exactly
 * the stored world, whatever the failed one left in the TFTP root. */
struct restart {
	struct pub *p;
	char err[256];
};

static int
restart_body(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	struct restart *rs = arg;

	(void)chg;
	return pub_reconcile(rs->p, w, st, rs->err, sizeof(rs->err)) != 0 ? -1 : 0;
}

static struct pub *
restart_once(struct fx *f, int *rc)
{
	struct pub_opts po = { .templates = "templates", .static_dir = "provisioning" };
	struct restart rs = { NULL, "" };

	po.tftp_root = f->tftp;
	rs.p = pub_new(&po, rs.err, sizeof(rs.err));
	cr_assert_not_null(rs.p, "%s", rs.err);
	*rc = svc_transact(f->svc, "start-up", restart_body, NULL, &rs);
	return rs.p;
}

static int
op_restart(struct fx *f, void *arg)
{
	int rc, again;
	struct pub *p = restart_once(f, &rc);

	(void)arg;
	if (rc != SVC_OK) {
		pub_free(p);
		p = restart_once(f, &again);
		cr_assert_eq(again, SVC_OK, "the start after a failed one failed");
	}
	pub_free(f->pub);
	f->pub = p;
	return rc == SVC_OK ? SVC_OK : SVC_INTERNAL;
}

/* While the daemon is down, Bob's phone is gone from the TFTP root and
 * Ada's file was truncated. */
static int
prep_damage(struct fx *f, void *arg)
{
	char path[4096];
	FILE *fp;

	(void)arg;
	snprintf(path, sizeof(path), "%s/0004f2000101-line.cfg", f->tftp);
	cr_assert_eq(unlink(path), 0, "%s", path);
	snprintf(path, sizeof(path), "%s/001565000100.cfg", f->tftp);
	cr_assert_not_null(fp = fopen(path, "w"), "%s", path);
	fclose(fp);
	return SVC_OK;
}

Test(publish_faults, start_up_repairs_the_tftp_root)
{
	fx_faults_world("start-up", prep_damage, op_restart, NULL, false);
}

/* A start-up over an empty TFTP root (the first start, or a root on tmpfs
 * after a reboot) writes the files it renders as it goes, before its
 * transaction commits: what waits in memory for the writer is bounded by
 * its backlog, not by the number of devices. */
struct first_start {
	struct pub *p;
	const char *root;
	char err[256];
	int present; /* device files in the root when pub_reconcile returned */
};

static int
first_start_body(const struct world *w, struct store *st, struct svc_change *chg, void *arg)
{
	static const char *const names[] = { "0004f2000101-line.cfg", "001565000100.cfg",
		                             "001565000103.cfg" };
	struct first_start *fs = arg;
	char path[4096];
	struct stat sb;

	(void)chg;
	if (pub_reconcile(fs->p, w, st, fs->err, sizeof(fs->err)) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", fs->root, names[i]);
		fs->present += stat(path, &sb) == 0 && sb.st_size > 0;
	}
	return 0;
}

Test(publish_block, a_first_start_writes_files_before_its_transaction_commits)
{
	struct fx *f = fx_new();
	struct pub_opts po = { .templates = "templates", .static_dir = "provisioning" };
	struct first_start fs = { .present = 0 };
	char *root = tu_tmpdir();

	cr_assert_not_null(root);
	po.tftp_root = root;
	fs.root = root;
	fs.p = pub_new(&po, fs.err, sizeof(fs.err));
	cr_assert_not_null(fs.p, "%s", fs.err);
	cr_assert_eq(svc_transact(f->svc, "start-up", first_start_body, NULL, &fs), SVC_OK, "%s",
	             fs.err);
	cr_assert_eq(fs.present, 3, "%d of 3 files in the root before the commit", fs.present);
	pub_free(fs.p);
	(void)nftw(root, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(root);
	fx_free(f);
}

/* A start-up that renders every device (not after a clean stop, or with a
 * new build: every render key changed) and finds each file in the root
 * as rendered writes nothing, and keeps none of them in memory: the first
 * two fetches read the file asked for from the root without keeping it,
 * a third one loads the device's files back. */
Test(publish_block, a_start_that_finds_its_files_in_place_keeps_none_in_memory)
{
	struct fx *f = fx_new();
	int rc;
	struct pub *p = restart_once(f, &rc);
	struct pub_ref ref = { 0 };
	size_t len;
	char *root;

	cr_assert_eq(rc, SVC_OK);
	pub_settle(p);
	cr_assert_eq(pub_resident(p), 0, "%zu devices' files in memory", pub_resident(p));
	/* the first two fetches read the file from the root; the third
	 * one keeps it */
	root = fs_read_file(f->tftp, "0004f2000101-line.cfg", 1 << 20, &len);
	cr_assert_not_null(root);
	for (size_t k = 0; k < 3; k++) {
		cr_assert_eq(pub_get(p, "0004f2000101-line.cfg", &ref), 1,
		             "a file in place is not served");
		cr_assert(ref.blob->len == len && memcmp(ref.blob->data, root, len) == 0);
		cr_assert_eq(pub_resident(p), k / 2, "after fetch %zu: %zu devices' files in memory",
		             k + 1, pub_resident(p));
		pub_release(ref.blob);
	}
	free(root);
	pub_free(p);
	fx_free(f);
}

/* ---- files not in memory --------------------------------------------------- */

/* The daemon's refill (main.c): the device rendered again under the
 * service lock; here it also waits until the writer put that render in
 * the root, and so dropped it from memory, before the fetch goes on. */
struct refill {
	struct fx *f;
	hd_id dev;
	int calls;
};

static int
refill_locked(const struct world *w, struct store *st, void *arg)
{
	struct refill *r = arg;

	return pub_refill(r->f->pub, w, st, r->dev);
}

static void
refill_and_settle(void *arg, hd_id dev)
{
	struct refill *r = arg;

	r->dev = dev;
	r->calls++;
	cr_assert_eq(svc_locked(r->f->svc, refill_locked, r), 0);
	pub_settle(r->f->pub);
}

Test(publish_lazy, a_fetch_gets_the_render_of_a_file_not_as_published_even_once_it_is_dropped)
{
	struct fx *f = fx_new();
	struct refill r = { f, 0, 0 };
	const char *name = "001565000103.cfg";
	struct pub_ref ref;
	char *want, *now;
	size_t len, nlen;
	int fd;

	pub_set_refill(f->pub, refill_and_settle, &r);
	/* written, so not in memory: the root's copy changed in place */
	want = fs_read_file(f->tftp, name, 1 << 20, &len);
	cr_assert_not_null(want);
	cr_assert_gt(len, 16);
	{
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", f->tftp, name);
		fd = open(path, O_WRONLY);
		cr_assert_neq(fd, -1);
		cr_assert_eq(pwrite(fd, "################", 16, 0), 16);
		close(fd);
	}
	/* the fetch finds it not as published, renders it (written and
	 * dropped meanwhile) and serves that render, loaded from the root */
	cr_assert_eq(pub_get(f->pub, name, &ref), 1, "the fetch found no file");
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(ref.blob->len, len);
	cr_assert_eq(memcmp(ref.blob->data, want, len), 0, "not the published file");
	pub_release(ref.blob);
	now = fs_read_file(f->tftp, name, 1 << 20, &nlen);
	cr_assert_not_null(now);
	cr_assert(nlen == len && memcmp(now, want, len) == 0, "the root was not rewritten");
	free(want);
	free(now);
	fx_free(f);
}

/* Files loaded back by fetches stay in memory for the devices loaded
 * last only: fetching every device does not bring every file back for
 * good.  Each fetch still gets the published bytes. */
Test(publish_lazy, files_loaded_by_fetches_stay_for_the_last_devices_only)
{
	static const char *const names[] = { "001565000100.cfg", "0004f2000101-line.cfg",
		                                 "00605c000102.xml", "001565000103.cfg" };
	struct fx *f = fx_new();
	struct pub_ref ref;

	pub_set_loaded_max(f->pub, 2);
	cr_assert_eq(pub_resident(f->pub), 0, "written files are not in memory");
	/* the third round loads each device's files */
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < 4; i++) {
			size_t len;
			char *want = fs_read_file(f->tftp, names[i], 1 << 20, &len);

			cr_assert_not_null(want, "%s", names[i]);
			cr_assert_eq(pub_get(f->pub, names[i], &ref), 1, "%s not served", names[i]);
			cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0,
			          "%s: not the published bytes", names[i]);
			pub_release(ref.blob);
			free(want);
			cr_assert_leq(pub_resident(f->pub), 2, "after %s: %zu devices in memory",
			              names[i], pub_resident(f->pub));
		}
	}
	cr_assert_eq(pub_resident(f->pub), 2);
	/* the two loaded last are served from memory */
	cr_assert_eq(pub_get(f->pub, names[3], &ref), 1);
	pub_release(ref.blob);
	cr_assert_eq(pub_resident(f->pub), 2);
	fx_free(f);
}

/* A first fetch of a file not in memory reads that file only and checks
 * it against its own sum: another file of the device missing from the
 * root does not stop it, nothing is rendered, nothing stays in memory;
 * the same for a second fetch.  A third fetch loads the device's files
 * (all of them, each checked): the missing one makes the device rendered
 * again. */
Test(publish_lazy, a_first_fetch_reads_and_checks_only_the_file_asked_for)
{
	struct fx *f = fx_new();
	struct refill r = { f, 0, 0 };
	const char *name = "0004f2000101-line.cfg", *other = "0004f2000101-web.cfg";
	struct pub_ref ref;
	char path[PATH_MAX], *want, *back;
	size_t len, blen;

	pub_set_refill(f->pub, refill_and_settle, &r);
	want = fs_read_file(f->tftp, name, 1 << 20, &len);
	cr_assert_not_null(want);
	snprintf(path, sizeof(path), "%s/%s", f->tftp, other);
	cr_assert_eq(unlink(path), 0, "%s", path);
	cr_assert_eq(pub_resident(f->pub), 0, "written files are not in memory");

	for (int k = 0; k < 2; k++) {
		cr_assert_eq(pub_get(f->pub, name, &ref), 1, "%s not served", name);
		cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0,
		          "not the published bytes");
		pub_release(ref.blob);
		cr_assert_eq(r.calls, 0, "fetch %d: the device was rendered: a file not asked "
		             "for was read", k + 1);
		cr_assert_eq(pub_resident(f->pub), 0, "fetch %d kept the files in memory", k + 1);
	}

	/* fetched a third time: the device's files are loaded, the missing
	 * one is rendered and written again */
	cr_assert_eq(pub_get(f->pub, name, &ref), 1, "%s not served", name);
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0);
	pub_release(ref.blob);
	cr_assert_eq(r.calls, 1);
	back = fs_read_file(f->tftp, other, 1 << 20, &blen);
	cr_assert_not_null(back, "%s not written again", other);
	free(back);
	free(want);
	fx_check(f, "after the fetches", NULL);
	fx_free(f);
}

/* Without a refill function, a file changed behind the publisher's back
 * is never served: not by the first fetch (its sum), nor by the next
 * ones (the hash of the device's files). */
Test(publish_lazy, a_file_not_as_published_is_never_served)
{
	struct fx *f = fx_new();
	const char *name = "00605c000102.xml";
	struct pub_ref ref;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", f->tftp, name);
	fd = open(path, O_WRONLY);
	cr_assert_neq(fd, -1);
	cr_assert_eq(pwrite(fd, "<!-- changed -->", 16, 0), 16);
	close(fd);
	for (int k = 0; k < 3; k++) {
		cr_assert_eq(pub_get(f->pub, name, &ref), 0, "fetch %d: the changed file served", k);
		cr_assert_null(ref.blob);
	}
	fx_free(f);
}

/* Whether hex (lower case) of v, in either byte order, is in s. */
static bool
holds_u64_hex(const char *s, uint64_t v)
{
	char be[17], le[17];

	snprintf(be, sizeof(be), "%016llx", (unsigned long long)v);
	for (int i = 0; i < 8; i++)
		snprintf(le + 2 * i, 3, "%02x", (unsigned)(v >> (8 * i)) & 0xff);
	return strstr(s, be) != NULL || strstr(s, le) != NULL;
}

/* A file's ETag is the same whichever way it is served: read from the
 * TFTP root for one answer (the first two fetches), loaded into memory
 * (the next), or rendered and kept in memory by a publisher without a TFTP
 * root: a phone's If-None-Match gets its 304 from either.  The ETag
 * shows nothing of the file's stored sum, and another file's differs. */
Test(publish_lazy, a_file_has_one_etag_whichever_way_it_is_served)
{
	struct fx *f = fx_new();
	struct pub_opts po = { .templates = "templates", .static_dir = "provisioning" };
	struct restart rs = { NULL, "" };
	const char *name = "0004f2000101-line.cfg", *other = "0004f2000101-web.cfg";
	struct pub_ref ref;
	struct pub_dev *e;
	char lazy[40], loaded[40];
	size_t len;
	char *want = fs_read_file(f->tftp, name, 1 << 20, &len);

	cr_assert_not_null(want);
	cr_assert_eq(pub_resident(f->pub), 0, "written files are not in memory");
	cr_assert_eq(pub_get(f->pub, name, &ref), 1);
	cr_assert(ref.blob->heap, "a first fetch kept the file");
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0);
	cr_assert_eq(strlen(ref.blob->etag), 34, "ETag %s", ref.blob->etag);
	snprintf(lazy, sizeof(lazy), "%s", ref.blob->etag);
	pub_release(ref.blob);

	cr_assert_eq(pub_get(f->pub, name, &ref), 1);
	cr_assert(ref.blob->heap, "a second fetch kept the file");
	cr_assert_str_eq(ref.blob->etag, lazy);
	pub_release(ref.blob);
	cr_assert_eq(pub_get(f->pub, name, &ref), 1);
	cr_assert_not(ref.blob->heap, "a third fetch did not load the files");
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0);
	snprintf(loaded, sizeof(loaded), "%s", ref.blob->etag);
	pub_release(ref.blob);
	cr_assert_str_eq(loaded, lazy, "the loaded file's ETag differs from the one read once");

	e = idmap_get(&f->pub->by_mac, pcache_mac_key("0004f2000101"));
	cr_assert_not_null(e);
	for (size_t i = 0; i < e->nfiles; i++) {
		cr_assert_neq(e->sum[i], 0);
		cr_assert_not(holds_u64_hex(lazy, e->sum[i]), "the ETag %s shows sum %zu", lazy, i);
	}
	cr_assert_eq(pub_get(f->pub, other, &ref), 1);
	cr_assert_str_neq(ref.blob->etag, lazy, "two files, one ETag");
	pub_release(ref.blob);

	/* every file rendered and kept in memory (no TFTP root) */
	rs.p = pub_new(&po, rs.err, sizeof(rs.err));
	cr_assert_not_null(rs.p, "%s", rs.err);
	cr_assert_eq(svc_transact(f->svc, "start-up", restart_body, NULL, &rs), SVC_OK, "%s",
	             rs.err);
	cr_assert_eq(pub_get(rs.p, name, &ref), 1);
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0,
	          "not the same bytes");
	cr_assert_str_eq(ref.blob->etag, lazy, "the rendered file's ETag differs");
	pub_release(ref.blob);
	pub_free(rs.p);
	free(want);
	fx_free(f);
}

/* ---- each file's sum across a restart --------------------------------------- */

struct sums_of {
	hd_id dev[8];
	uint64_t sum[8][PUB_MAX_FILES];
	size_t n;
};

static int
sums_each(void *v, void *arg)
{
	const struct pub_dev *e = v;
	struct sums_of *s = arg;

	cr_assert_lt(s->n, 8);
	s->dev[s->n] = e->id;
	memcpy(s->sum[s->n], e->sum, sizeof(e->sum));
	s->n++;
	return 0;
}

static const uint64_t *
sums_find(const struct sums_of *s, hd_id dev)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->dev[i] == dev)
			return s->sum[i];
	return NULL;
}

static int
stop_locked(const struct world *w, struct store *st, void *arg)
{
	(void)w;
	pub_stop(arg, st);
	return 0;
}

/* A restart as the daemon makes it after a clean stop: the root taken
 * as clean (outside a transaction), then reconciled in one. */
static int
take_clean_locked(const struct world *w, struct store *st, void *arg)
{
	struct restart *rs = arg;

	(void)w;
	return pub_tftp_take_clean(rs->p, st, rs->err, sizeof(rs->err));
}

static struct pub *
clean_restart(struct fx *f)
{
	struct pub_opts po = { .templates = "templates", .static_dir = "provisioning" };
	struct restart rs = { NULL, "" };

	cr_assert_eq(svc_locked(f->svc, stop_locked, f->pub), 0);
	pub_free(f->pub);
	f->pub = NULL;
	po.tftp_root = f->tftp;
	rs.p = pub_new(&po, rs.err, sizeof(rs.err));
	cr_assert_not_null(rs.p, "%s", rs.err);
	cr_assert_eq(svc_locked(f->svc, take_clean_locked, &rs), 0, "%s", rs.err);
	cr_assert_eq(svc_transact(f->svc, "start-up", restart_body, NULL, &rs), SVC_OK, "%s",
	             rs.err);
	f->pub = rs.p;
	return rs.p;
}

/* The rows as an older release left them: no sums (sql/018's column
 * NULL), the rest kept; or (mistie) sums left by a release that knows
 * none but changed the row: not tied to its file_hash. */
struct rows {
	struct store_devcfg c[8];
	char hash[8][33], key[8][33], fh[8][33], sums[8][81];
	size_t n;
	bool mistie;
};

static int
rows_each(const struct store_devcfg *c, void *arg)
{
	struct rows *r = arg;

	cr_assert_lt(r->n, 8);
	r->c[r->n] = *c;
	snprintf(r->hash[r->n], 33, "%s", c->hash);
	snprintf(r->key[r->n], 33, "%s", c->key);
	snprintf(r->fh[r->n], 33, "%s", c->file_hash);
	r->c[r->n].hash = r->hash[r->n];
	r->c[r->n].key = r->key[r->n];
	r->c[r->n].file_hash = r->fh[r->n];
	r->c[r->n].file_sums = "";
	if (r->mistie) {
		cr_assert_geq(strlen(c->file_sums), 32, "sums: %zu hex digits", strlen(c->file_sums));
		snprintf(r->sums[r->n], sizeof(r->sums[r->n]), "%s", c->file_sums);
		/* the tie: the first 16 digits, those of file_hash */
		cr_assert_eq(memcmp(r->sums[r->n], c->file_hash, 16), 0);
		r->sums[r->n][0] = r->sums[r->n][0] == 'f' ? 'e' : 'f';
		r->c[r->n].file_sums = r->sums[r->n];
	}
	r->n++;
	return 0;
}

static int
forget_sums_locked(const struct world *w, struct store *st, void *arg)
{
	struct rows r = { .n = 0, .mistie = arg != NULL };

	(void)w;
	cr_assert_eq(store_devcfg_each(st, rows_each, &r), 0);
	cr_assert_gt(r.n, 0);
	for (size_t i = 0; i < r.n; i++)
		cr_assert_eq(store_devcfg_put(st, &r.c[i], 1000), 0, "%s", store_errmsg(st));
	return 0;
}

/* Each file's sum is stored with the device: a clean restart, which
 * takes the files as they are in the root, knows them all (the same, the
 * key being kept in the store), and a first fetch reads only the file it
 * asks for (another file of the device missing does not matter). */
Test(publish_sums, each_files_sum_survives_a_clean_restart)
{
	struct fx *f = fx_new();
	struct sums_of before = { .n = 0 }, after = { .n = 0 };
	const char *name = "0004f2000101-line.cfg";
	struct pub_ref ref;
	char path[PATH_MAX], *want;
	size_t len;
	struct pub *p;

	pub_settle(f->pub);
	idmap_each(&f->pub->by_id, sums_each, &before);
	cr_assert_eq(before.n, 4);
	p = clean_restart(f);
	cr_assert_eq(pub_resident(p), 0, "the files were not taken as they are");
	idmap_each(&p->by_id, sums_each, &after);
	cr_assert_eq(after.n, before.n);
	for (size_t i = 0; i < before.n; i++) {
		const uint64_t *s = sums_find(&after, before.dev[i]);

		cr_assert_not_null(s);
		for (size_t k = 0; k < PUB_MAX_FILES; k++)
			cr_assert_eq(s[k], before.sum[i][k], "device %lld file %zu: sum %llx, was %llx",
			             (long long)before.dev[i], k, (unsigned long long)s[k],
			             (unsigned long long)before.sum[i][k]);
		cr_assert_neq(s[0], 0, "a sum unknown after the restart");
	}
	want = fs_read_file(f->tftp, name, 1 << 20, &len);
	cr_assert_not_null(want);
	snprintf(path, sizeof(path), "%s/0004f2000101-phone.cfg", f->tftp);
	cr_assert_eq(unlink(path), 0, "%s", path);
	cr_assert_eq(pub_get(p, name, &ref), 1, "%s not served after the restart", name);
	cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0);
	pub_release(ref.blob);
	free(want);
	fx_free(f);
}

/* Rows of an older release (no sums, or sums not tied to the row's
 * file_hash): a clean restart takes the files as they are with their
 * sums unknown, and serves each file as published (checked with the
 * device's other files). */
static void
rows_without_sums(bool mistie)
{
	struct fx *f = fx_new();
	struct sums_of after = { .n = 0 };
	static const char *const names[] = { "001565000100.cfg", "0004f2000101-line.cfg",
		                                 "00605c000102.xml", "001565000103.cfg" };
	struct pub_ref ref;
	struct pub *p;

	pub_settle(f->pub);
	cr_assert_eq(svc_locked(f->svc, forget_sums_locked, mistie ? f : NULL), 0);
	p = clean_restart(f);
	cr_assert_eq(pub_resident(p), 0, "the files were not taken as they are");
	idmap_each(&p->by_id, sums_each, &after);
	for (size_t i = 0; i < after.n; i++)
		for (size_t k = 0; k < PUB_MAX_FILES; k++)
			cr_assert_eq(after.sum[i][k], 0, "a sum known from a row without sums");
	for (size_t i = 0; i < 4; i++) {
		size_t len;
		char *want = fs_read_file(f->tftp, names[i], 1 << 20, &len);

		cr_assert_not_null(want);
		cr_assert_eq(pub_get(p, names[i], &ref), 1, "%s not served", names[i]);
		cr_assert(ref.blob->len == len && memcmp(ref.blob->data, want, len) == 0,
		          "%s: not the published bytes", names[i]);
		pub_release(ref.blob);
		free(want);
	}
	fx_check(f, "after a restart with rows without sums", NULL);
	fx_free(f);
}

Test(publish_sums, rows_without_sums_still_serve_the_published_files)
{
	rows_without_sums(false);
}

Test(publish_sums, sums_not_tied_to_the_rows_file_hash_are_not_taken)
{
	rows_without_sums(true);
}

/* ---- entries made at start-up -------------------------------------------- */

/* A restart makes every device's entry in one block (pub.block); a
 * device deleted afterwards gives its entry back without free() (ASan
 * would abort: not an allocation of its own), and the pub is freed with
 * the block. */
Test(publish_block, a_device_whose_entry_start_up_made_is_deleted_like_any_other)
{
	struct fx *f = fx_new();
	struct svc_result r = { 0 };
	struct pub_ref ref;
	int rc;
	struct pub *p = restart_once(f, &rc);
	char path[PATH_MAX];

	cr_assert_eq(rc, SVC_OK);
	pub_free(f->pub);
	f->pub = p;
	cr_assert_eq(p->block_n, 4);
	cr_assert_eq(p->block_used, 4, "the entries were not made in the block");
	cr_assert_eq(pub_get(p, "0004f2000101-line.cfg", &ref), 1);
	pub_release(ref.blob);
	cr_assert_eq(svc_dev_delete(f->svc, "0004f2000101", &r), SVC_OK, "%s", r.err);
	pub_settle(p);
	cr_assert_eq(pub_get(p, "0004f2000101-line.cfg", &ref), 0, "the deleted device's file is served");
	snprintf(path, sizeof(path), "%s/0004f2000101-line.cfg", f->tftp);
	cr_assert_neq(access(path, F_OK), 0, "the deleted device's file is in the root");
	/* the others still served, and a device added after start-up gets
	 * an entry of its own */
	cr_assert_eq(pub_get(p, "001565000103.cfg", &ref), 1);
	pub_release(ref.blob);
	cr_assert_eq(svc_dev_put(f->svc, fx_dev(f->org, "001565000199", "yealink", 0, NULL), &r),
	             SVC_OK, "%s", r.err);
	pub_settle(p);
	cr_assert_eq(pub_get(p, "001565000199.cfg", &ref), 1);
	pub_release(ref.blob);
	cr_assert_eq(p->block_used, 4);
	fx_check(f, "after a delete and an add", NULL);
	fx_free(f);
}
