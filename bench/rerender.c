/*
 * rerender.c -- timing harness of the re-render benchmark: what a template
 * change costs at N devices, through the daemon's own code path.
 *
 * Opens the service on a benchmark database (svc_open: store, migrations,
 * world), builds the publisher and reconciles as the daemon does at start
 * (main.c startup_publish), then changes the per-device template of every
 * vendor profile (a comment appended, so every device's files change) with
 * pub_template_set, and times pub_update_profile(all profiles) under the
 * service lock: render, hash, swap into memory, write the TFTP root
 * atomically, record versions.  Prints "key=value" lines.
 *
 *   rerender DB SQL_DIR TEMPLATES STATIC TFTP_ROOT
 *
 * Built by bench/scale.sh against build/libhotdeskd.a; not part of the
 * daemon.  Exit status 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "publish.h"
#include "service.h"
#include "store.h"

struct job {
	struct pub *pub;
	struct hd_idset changed;
	char err[512];
	int rc;
};

static int
reconcile(const struct world *w, struct store *st, void *arg)
{
	struct job *j = arg;

	return j->rc = pub_reconcile(j->pub, w, st, j->err, sizeof(j->err));
}

static int
rerender_all(const struct world *w, struct store *st, void *arg)
{
	struct job *j = arg;

	return j->rc = pub_update_profile(j->pub, w, st, NULL, &j->changed);
}

static char *
slurp(const char *dir, const char *profile, const char *name, size_t *len)
{
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s/%s", dir, profile, name) >= sizeof(path) ||
	    (f = fopen(path, "rb")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)n + 64)) == NULL) {
		fclose(f);
		return NULL;
	}
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

/* VmRSS of this process in MiB (0 when unknown). */
static double
rss_mib(void)
{
	char line[256];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (double)kb / 1024;
}

static double
secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *profile, *name, *comment;
	} change[] = {
		{ "polycom", "line.cfg", "<!-- bench: template revised -->\n" },
		{ "yealink", "device.cfg", "# bench: template revised\n" },
		{ "cisco-mpp", "device.xml", "<!-- bench: template revised -->\n" },
		{ "cisco-enterprise", "device.cnf.xml", "<!-- bench: template revised -->\n" },
	};
	struct svc_opts so = { 0 };
	struct pub_opts po = { 0 };
	struct job j = { 0 };
	struct svc *svc;
	char err[512];
	uint64_t t0, t1;

	if (argc != 6) {
		fprintf(stderr, "usage: rerender DB SQL_DIR TEMPLATES STATIC TFTP_ROOT\n");
		return 2;
	}
	so.db_path = argv[1];
	so.sql_dir = argv[2];
	so.hash_ops = 2;
	so.hash_mem = 64 << 20;
	so.code_min_len = 4;
	po.templates = argv[3];
	po.static_dir = argv[4];
	po.tftp_root = argv[5];
	t0 = metrics_now_ns();
	if ((svc = svc_open(&so, err, sizeof(err))) == NULL ||
	    (j.pub = pub_new(&po, err, sizeof(err))) == NULL) {
		fprintf(stderr, "rerender: %s\n", err);
		return 1;
	}
	printf("rss_world_mib=%.1f\n", rss_mib());
	if (svc_locked(svc, reconcile, &j) != 0) {
		fprintf(stderr, "rerender: reconcile: %s\n", j.err);
		return 1;
	}
	t1 = metrics_now_ns();
	printf("load_and_reconcile_s=%.3f\n", secs(t1 - t0));
	printf("rss_published_mib=%.1f\n", rss_mib());

	for (size_t i = 0; i < sizeof(change) / sizeof(change[0]); i++) {
		const struct vendor_profile *prof = vendor_profile_by_name(change[i].profile);
		size_t len;
		char *src = slurp(argv[3], change[i].profile, change[i].name, &len);

		if (prof == NULL || src == NULL) {
			fprintf(stderr, "rerender: cannot read template %s/%s\n", change[i].profile,
			        change[i].name);
			return 1;
		}
		memcpy(src + len, change[i].comment, strlen(change[i].comment));
		len += strlen(change[i].comment);
		if (pub_template_set(j.pub, prof, change[i].name, src, len, err, sizeof(err)) != 0) {
			fprintf(stderr, "rerender: %s/%s: %s\n", change[i].profile, change[i].name, err);
			return 1;
		}
		free(src);
	}
	t0 = metrics_now_ns();
	if (svc_locked(svc, rerender_all, &j) != 0) {
		fprintf(stderr, "rerender: out of memory\n");
		return 1;
	}
	t1 = metrics_now_ns();
	printf("rerender_s=%.3f\n", secs(t1 - t0));
	printf("rerender_changed=%zu\n", j.changed.n);
	hd_idset_free(&j.changed);
	pub_free(j.pub);
	svc_close(svc);
	return 0;
}
