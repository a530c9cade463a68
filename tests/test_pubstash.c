/*
 * test_pubstash.c -- a change renders each file once: pub_check's render
 * is reused by the pub_update that follows it, but only while it is what
 * the device renders to.  A world or a template that changed between the
 * two (a check whose change was rolled back, another path publishing
 * next) is rendered afresh: what is served always equals a fresh render.
 * So is a render made ahead (pub_prerender: a move rendered while its code
 * is checked), which the check takes only while it is still true.
 */
#include <criterion/criterion.h>

#include "metrics.h"
#include "publish.h"
#include "testutil.h"
#include "world.h"

static struct world *w;
static struct pub *p;
static hd_id org, ext, dev;

static void
setup(void)
{
	struct pub_opts o = { 0 };
	char tb[PATH_MAX], sb[PATH_MAX], err[256];
	struct hd_org *og = calloc(1, sizeof(*og));
	struct hd_ext *e = calloc(1, sizeof(*e));
	struct hd_dev *d = calloc(1, sizeof(*d));

	w = world_new();
	cr_assert_not_null(w);
	o.templates = tu_src("templates", tb, sizeof(tb));
	o.static_dir = tu_src("provisioning", sb, sizeof(sb));
	p = pub_new(&o, err, sizeof(err));
	cr_assert_not_null(p, "%s", err);
	og->id = org = 1;
	og->name = strdup("acme");
	og->sip.host = strdup("pbx.acme.test");
	og->sip.port = 5060;
	cr_assert_eq(world_put_org(w, og, err, sizeof(err)), 0, "%s", err);
	e->id = ext = 2;
	e->org = org;
	e->number = strdup("101");
	e->sip_user = strdup("acme-101");
	e->sip_password = strdup("pw-101");
	e->display_name = strdup("Alice Original");
	cr_assert_eq(world_put_ext(w, e, err, sizeof(err)), 0, "%s", err);
	d->id = dev = 3;
	d->org = org;
	snprintf(d->mac, sizeof(d->mac), "001565000003");
	d->profile = strdup("yealink");
	d->model = strdup("T46S");
	d->home_ext = ext;
	cr_assert_eq(world_put_dev(w, d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pub_update(p, w, NULL, &dev, 1, NULL), 0);
}

static void
teardown(void)
{
	pub_free(p);
	world_free(w);
}

TestSuite(pubstash, .init = setup, .fini = teardown);

/* Whether the device's served file holds text. */
static bool
served_has(const char *text)
{
	struct pub_ref ref;
	bool has;

	cr_assert_eq(pub_get_device(p, "001565000003", &ref), 1);
	has = strstr(ref.blob->data, text) != NULL;
	pub_release(ref.blob);
	return has;
}

static void
rename_ext(const char *name)
{
	struct hd_ext *e = hd_ext_dup(world_ext(w, ext));
	char err[256];

	free(e->display_name);
	e->display_name = strdup(name);
	cr_assert_eq(world_put_ext(w, e, err, sizeof(err)), 0, "%s", err);
}

Test(pubstash, the_checked_render_is_published)
{
	char err[256];

	rename_ext("Bob Checked");
	cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pub_update(p, w, NULL, &dev, 1, NULL), 0);
	cr_assert(served_has("Bob Checked"));
	cr_assert_not(served_has("Alice Original"));
}

Test(pubstash, a_world_changed_after_the_check_is_rendered_afresh)
{
	char err[256];
	unsigned long long v0 = pub_version(p, dev);

	/* checked as Bob, but that change was rolled back; Carol's change
	 * publishes with no check of its own */
	rename_ext("Bob Rolled Back");
	cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	rename_ext("Carol Current");
	cr_assert_eq(pub_update(p, w, NULL, &dev, 1, NULL), 0);
	cr_assert(served_has("Carol Current"), "a stale stashed render was published");
	cr_assert_not(served_has("Bob Rolled Back"));
	cr_assert_eq(pub_version(p, dev), v0 + 1);
}

/* A device rendered as name (checked, or prerendered too), then a template
 * installed, then published: the template is in what is served. */
static void
template_after(const char *name, bool prerender)
{
	const struct vendor_profile *prof = vendor_profile_by_name("yealink");
	const char *tmpl = "#!version:1.0.0.1\n# installed afterwards\n"
	                   "account.1.display_name = {{line.display_name}}\n";
	char err[256];

	cr_assert_not_null(prof);
	rename_ext(name);
	if (prerender)
		pub_prerender(p, w, &dev, 1);
	else
		cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pub_template_set(p, prof, "device.cfg", tmpl, strlen(tmpl), err, sizeof(err)),
	             0, "%s", err);
	if (prerender)
		cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pub_update(p, w, NULL, &dev, 1, NULL), 0);
	cr_assert(served_has("# installed afterwards"));
	cr_assert(served_has(name));
}

Test(pubstash, a_template_installed_after_the_check_is_rendered_afresh)
{
	template_after("Dave Checked", false);
}

static uint64_t
renders(void)
{
	return metrics_counter(METRICS_DEVICE_RENDERS);
}

Test(pubstash, the_prerendered_files_are_taken_by_the_check)
{
	char err[256];
	uint64_t r0;

	rename_ext("Erin Ahead");
	pub_prerender(p, w, &dev, 1);
	r0 = renders();
	cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pub_update(p, w, NULL, &dev, 1, NULL), 0);
	cr_assert_eq(renders(), r0, "rendered again after pub_prerender");
	cr_assert(served_has("Erin Ahead"));
}

Test(pubstash, a_world_changed_after_the_prerender_is_rendered_afresh)
{
	char err[256];
	uint64_t r0;

	/* prerendered for a move that another change overtook */
	rename_ext("Bob Ahead");
	pub_prerender(p, w, &dev, 1);
	rename_ext("Carol Current");
	r0 = renders();
	cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(renders(), r0 + 1);
	cr_assert_eq(pub_update(p, w, NULL, &dev, 1, NULL), 0);
	cr_assert(served_has("Carol Current"), "a stale prerender was published");
	cr_assert_not(served_has("Bob Ahead"));
	/* the stale one is gone: the world as it was prerendered renders again */
	rename_ext("Bob Ahead");
	r0 = renders();
	cr_assert_eq(pub_check(p, w, &dev, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(renders(), r0 + 1);
}

Test(pubstash, a_template_installed_after_the_prerender_is_rendered_afresh)
{
	template_after("Dave Ahead", true);
}
