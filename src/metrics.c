/*
 * metrics.c -- lock-free counters and fixed-bucket latency histograms, and
 * their Prometheus text exposition.
 *
 * Owns: the process-wide registry (one static array per kind, indexed by
 * the enums of metrics.h), the per-thread move being timed, and the
 * /metrics HTTP handler.  Does not own: when things are measured (the
 * callers decide), the HTTP server.
 *
 * Invariants:
 *   1. every stored value only grows, except max (only grows too) and the
 *      gauges (last write wins); all are relaxed atomics, never locked;
 *   2. a histogram's buckets are disjoint: an observation lands in exactly
 *      one (the first bound >= it, or +Inf), the exposition makes them
 *      cumulative and derives _count from them, so a scrape is
 *      self-consistent even while other threads record;
 *   3. the move of a thread is active only between metrics_move_begin and
 *      metrics_move_end on that thread.
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "authlog.h"
#include "http.h"

/* 1, 1.5, 2, 3, 5, 7 per decade, from 1 µs to 70 s. */
const uint64_t metrics_bounds_ns[METRICS_BUCKETS] = {
#define DECADE(u) 10 * (u) / 10, 15 * (u) / 10, 20 * (u) / 10, 30 * (u) / 10, \
	50 * (u) / 10, 70 * (u) / 10
	DECADE(1000ULL), DECADE(10000ULL), DECADE(100000ULL), DECADE(1000000ULL),
	DECADE(10000000ULL), DECADE(100000000ULL), DECADE(1000000000ULL),
	DECADE(10000000000ULL),
#undef DECADE
};

uint64_t
metrics_clock_ns(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t
metrics_now_ns(void)
{
	return metrics_clock_ns(CLOCK_MONOTONIC);
}

/* ---- histograms --------------------------------------------------------- */

static size_t
bucket_of(uint64_t ns)
{
	size_t lo = 0, hi = METRICS_BUCKETS; /* first bound >= ns, in [lo, hi] */

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (metrics_bounds_ns[mid] >= ns)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void
metrics_hist_observe(struct metrics_hist *h, uint64_t ns)
{
	uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);

	atomic_fetch_add_explicit(&h->bucket[bucket_of(ns)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
	while (ns > max && !atomic_compare_exchange_weak_explicit(&h->max_ns, &max, ns,
	                                                          memory_order_relaxed,
	                                                          memory_order_relaxed))
		;
}

uint64_t
metrics_hist_quantile(const struct metrics_hist *h, double q)
{
	uint64_t counts[METRICS_BUCKETS + 1], total = 0, cum = 0;
	uint64_t max = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
	double rank;

	for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
		counts[i] = atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		total += counts[i];
	}
	if (total == 0)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	rank = q * (double)total;
	for (size_t i = 0; i <= METRICS_BUCKETS; i++) {
		double lo, hi, est;

		if (counts[i] == 0 || (double)(cum + counts[i]) < rank) {
			cum += counts[i];
			continue;
		}
		lo = i == 0 ? 0.0 : (double)metrics_bounds_ns[i - 1];
		hi = i < METRICS_BUCKETS ? (double)metrics_bounds_ns[i] : (double)max;
		est = lo + (hi - lo) * ((rank - (double)cum) / (double)counts[i]);
		if (est > (double)max)
			est = (double)max;
		return (uint64_t)est;
	}
	return max;
}

void
metrics_hist_reset(struct metrics_hist *h)
{
	for (size_t i = 0; i <= METRICS_BUCKETS; i++)
		atomic_store(&h->bucket[i], 0);
	atomic_store(&h->count, 0);
	atomic_store(&h->sum_ns, 0);
	atomic_store(&h->max_ns, 0);
}

/* ---- the registry ------------------------------------------------------- */

/* A metric; entries of one family (same name, different labels) follow
 * each other in their table and share the first entry's help. */
struct named {
	const char *name, *help;
	const char *labels; /* e.g. kind="digest", or NULL */
};

static const struct named counter_names[METRICS_COUNTER_N] = {
	[METRICS_STAR30_REQUESTS] = { "hotdeskd_star30_requests_total",
	                              "POST /pbx/v1/star30 requests handled", NULL },
	[METRICS_MOVES] = { "hotdeskd_moves_total",
	                    "*30 requests that moved or returned an extension", NULL },
	[METRICS_DEVICES_PUBLISHED] = { "hotdeskd_publish_devices_total",
	                                "devices handed to the publisher after changes", NULL },
	[METRICS_NOTIFY_FIRST] = { "hotdeskd_move_notify_total",
	                           "moves whose first NOTIFY was handed to the socket", NULL },
	[METRICS_CODE_CHECKS] = { "hotdeskd_code_checks_total",
	                          "secret codes verified against an extension's hash", NULL },
	[METRICS_MOVE_REHEARSALS] = { "hotdeskd_move_rehearsals_total",
	                              "moves with a code read again under the lock before "
	                              "their hash ended", NULL },
#define REFUSED(k) { "hotdeskd_auth_refused_total", \
	             "refused authentications (one log line each), by kind", "kind=\"" k "\"" }
	[METRICS_AUTH_REFUSED + 0] = REFUSED("pbx-token"),
	[METRICS_AUTH_REFUSED + 1] = REFUSED("pbx-network"),
	[METRICS_AUTH_REFUSED + 2] = REFUSED("admin-token"),
	[METRICS_AUTH_REFUSED + 3] = REFUSED("metrics-token"),
	[METRICS_AUTH_REFUSED + 4] = REFUSED("digest"),
	[METRICS_AUTH_REFUSED + 5] = REFUSED("prov-network"),
	[METRICS_AUTH_REFUSED + 6] = REFUSED("throttled"),
	[METRICS_AUTH_REFUSED + 7] = REFUSED("vc-network"),
	[METRICS_AUTH_REFUSED + 8] = REFUSED("client-cert"),
#undef REFUSED
	[METRICS_THROTTLE_MISSES] = { "hotdeskd_throttle_misses_total",
	                              "provisioning misses (unknown MAC or file, wrong "
	                              "credentials, refused source)", NULL },
	[METRICS_THROTTLE_BLOCKS] = { "hotdeskd_throttle_blocks_total",
	                              "sources blocked after repeated misses", NULL },
#define DOWNLOADS(c) { "hotdeskd_downloads_total", \
	               "answers to phones' requests under the provisioning prefix, by " \
	               "status class", "class=\"" c "\"" }
	[METRICS_DOWNLOADS_1XX + 0] = DOWNLOADS("1xx"),
	[METRICS_DOWNLOADS_1XX + 1] = DOWNLOADS("2xx"),
	[METRICS_DOWNLOADS_1XX + 2] = DOWNLOADS("3xx"),
	[METRICS_DOWNLOADS_1XX + 3] = DOWNLOADS("4xx"),
	[METRICS_DOWNLOADS_1XX + 4] = DOWNLOADS("5xx"),
#undef DOWNLOADS
	[METRICS_NOTIFY_SENT] = { "hotdeskd_notify_sent_total",
	                          "resync NOTIFYs handed to the socket", NULL },
	[METRICS_NOTIFY_ANSWERED] = { "hotdeskd_notify_answered_total",
	                              "resync NOTIFYs answered with a 2xx", NULL },
	[METRICS_NOTIFY_FAILED] = { "hotdeskd_notify_failed_total",
	                            "resync NOTIFYs refused, timed out or not sendable", NULL },
	[METRICS_CODE_LOCKOUTS] = { "hotdeskd_code_lockouts_total",
	                            "secret-code lockouts of a (device, extension) pair", NULL },
	[METRICS_STORE_ERRORS] = { "hotdeskd_store_errors_total",
	                           "database operations that failed (conflicts excluded)", NULL },
	[METRICS_RELOADS_OK] = { "hotdeskd_config_reloads_total",
	                         "configuration reloads (SIGHUP) by result", "result=\"applied\"" },
	[METRICS_RELOADS_REFUSED] = { "hotdeskd_config_reloads_total",
	                              "configuration reloads (SIGHUP) by result",
	                              "result=\"refused\"" },
#define WEBHOOK(r) { "hotdeskd_move_webhook_total", \
	             "move webhook: rows delivered, attempts failed, rows dropped", \
	             "result=\"" r "\"" }
	[METRICS_WEBHOOK_DELIVERED] = WEBHOOK("delivered"),
	[METRICS_WEBHOOK_FAILED] = WEBHOOK("failed"),
	[METRICS_WEBHOOK_DROPPED] = WEBHOOK("dropped"),
#undef WEBHOOK
	[METRICS_DEVICE_RENDERS] = { "hotdeskd_device_renders_total",
	                             "renders of a device's files (publishing, dry runs)", NULL },
	[METRICS_FILES_DROPPED] = { "hotdeskd_files_dropped_total",
	                            "devices whose files left memory once the TFTP root held "
	                            "them", NULL },
	[METRICS_FILES_LOADED] = { "hotdeskd_files_loaded_total",
	                           "devices whose files were loaded back from the TFTP root "
	                           "to be served", NULL },
};

static const struct named hist_names[METRICS_HISTOGRAM_N] = {
	[METRICS_MOVE] = { "hotdeskd_move_seconds",
	                   "*30 move: request received to answer, code hash excluded", NULL },
	[METRICS_MOVE_PUBLISHED] = { "hotdeskd_move_published_seconds",
	                             "*30 move: request received to the last changed file "
	                             "published, code hash excluded", NULL },
	[METRICS_MOVE_NOTIFY] = { "hotdeskd_move_notify_seconds",
	                          "*30 move: request received to the first NOTIFY handed "
	                          "to the socket, code hash excluded", NULL },
	[METRICS_CODE_VERIFY] = { "hotdeskd_code_verify_seconds",
	                          "one secret-code hash verification (Argon2id)", NULL },
	[METRICS_PUBLISH] = { "hotdeskd_publish_seconds",
	                      "one publication of changed devices (render, memory, TFTP)", NULL },
};

static const struct named gauge_names[METRICS_GAUGE_N] = {
	[METRICS_STARTUP_SECONDS] = { "hotdeskd_startup_seconds",
	                              "process start to listening", NULL },
#define DEVICES(st) { "hotdeskd_devices", \
	              "devices by resync state (none: never queued); refreshed every " \
	              "few seconds", "sync=\"" st "\"" }
	[METRICS_DEVICES_NONE] = DEVICES("none"),
	[METRICS_DEVICES_PENDING] = DEVICES("pending"),
	[METRICS_DEVICES_NOTIFIED] = DEVICES("notified"),
	[METRICS_DEVICES_SYNCED] = DEVICES("synced"),
	[METRICS_DEVICES_STALE] = DEVICES("stale"),
#undef DEVICES
	[METRICS_WEBHOOK_BACKLOG] = { "hotdeskd_move_webhook_backlog",
	                              "move webhook rows waiting in the outbox", NULL },
	[METRICS_NOTIFY_IN_FLIGHT] = { "hotdeskd_notify_in_flight",
	                               "resync NOTIFY transactions not ended yet (at most [sip] "
	                               "notify_max_pending for bulk changes, plus small ones)", NULL },
};

static _Atomic uint64_t counters[METRICS_COUNTER_N];
static struct metrics_hist hists[METRICS_HISTOGRAM_N];
static _Atomic uint64_t gauges[METRICS_GAUGE_N]; /* bits of a double */
static const char *build_version = "unknown";

void
metrics_inc(enum metrics_counter c, uint64_t n)
{
	if ((unsigned)c < METRICS_COUNTER_N)
		atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

void
metrics_counter_set(enum metrics_counter c, uint64_t v)
{
	if ((unsigned)c < METRICS_COUNTER_N)
		atomic_store_explicit(&counters[c], v, memory_order_relaxed);
}

void
metrics_download(int status)
{
	if (status >= 100 && status <= 599)
		metrics_inc((enum metrics_counter)(METRICS_DOWNLOADS_1XX + status / 100 - 1), 1);
}

void
metrics_set_build(const char *version)
{
	if (version != NULL)
		build_version = version;
}

uint64_t
metrics_counter(enum metrics_counter c)
{
	return (unsigned)c < METRICS_COUNTER_N
	           ? atomic_load_explicit(&counters[c], memory_order_relaxed)
	           : 0;
}

void
metrics_observe(enum metrics_histogram h, uint64_t ns)
{
	if ((unsigned)h < METRICS_HISTOGRAM_N)
		metrics_hist_observe(&hists[h], ns);
}

const struct metrics_hist *
metrics_histogram(enum metrics_histogram h)
{
	return (unsigned)h < METRICS_HISTOGRAM_N ? &hists[h] : &hists[0];
}

void
metrics_gauge_set(enum metrics_gauge g, double v)
{
	uint64_t bits;

	if ((unsigned)g >= METRICS_GAUGE_N)
		return;
	memcpy(&bits, &v, sizeof(bits));
	atomic_store_explicit(&gauges[g], bits, memory_order_relaxed);
}

/* ---- move timing -------------------------------------------------------- */

static _Thread_local struct {
	bool on;
	uint64_t t0;        /* request received */
	uint64_t hash;      /* time spent verifying codes, excluded */
	uint64_t published; /* last publication of this move, 0 none */
} mv;

void
metrics_move_begin(void)
{
	mv.on = true;
	mv.t0 = metrics_now_ns();
	mv.hash = 0;
	mv.published = 0;
}

void
metrics_move_hash(uint64_t ns)
{
	metrics_observe(METRICS_CODE_VERIFY, ns);
	if (mv.on)
		mv.hash += ns;
}

uint64_t
metrics_move_stamp(void)
{
	return mv.on ? mv.t0 + mv.hash : 0;
}

void
metrics_move_published(void)
{
	if (mv.on)
		mv.published = metrics_now_ns();
}

static uint64_t
since(uint64_t start, uint64_t now)
{
	return now > start ? now - start : 0;
}

void
metrics_move_published_at(uint64_t stamp)
{
	if (stamp != 0)
		metrics_observe(METRICS_MOVE_PUBLISHED, since(stamp, metrics_now_ns()));
}

void
metrics_move_end(bool changed)
{
	uint64_t start = metrics_move_stamp();

	if (mv.on && changed) {
		metrics_observe(METRICS_MOVE, since(start, metrics_now_ns()));
		if (mv.published != 0)
			metrics_observe(METRICS_MOVE_PUBLISHED, since(start, mv.published));
		metrics_inc(METRICS_MOVES, 1);
	}
	mv.on = false;
}

void
metrics_move_notified(uint64_t stamp)
{
	if (stamp == 0)
		return;
	metrics_observe(METRICS_MOVE_NOTIFY, since(stamp, metrics_now_ns()));
	metrics_inc(METRICS_NOTIFY_FIRST, 1);
}

/* ---- exposition --------------------------------------------------------- */

/* VmRSS / VmHWM of this process in bytes (0 when unknown). */
static void
read_rss(uint64_t *rss, uint64_t *hwm)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	unsigned long long kb;

	*rss = *hwm = 0;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			*rss = kb * 1024;
		else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			*hwm = kb * 1024;
	}
	fclose(f);
}

static void
write_hist(FILE *f, const struct named *n, const struct metrics_hist *h)
{
	uint64_t cum = 0;

	fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", n->name, n->help, n->name);
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		fprintf(f, "%s_bucket{le=\"%.9g\"} %llu\n", n->name,
		        (double)metrics_bounds_ns[i] / 1e9, (unsigned long long)cum);
	}
	cum += atomic_load_explicit(&h->bucket[METRICS_BUCKETS], memory_order_relaxed);
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", n->name, (unsigned long long)cum);
	fprintf(f, "%s_sum %.9f\n", n->name,
	        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
	fprintf(f, "%s_count %llu\n", n->name, (unsigned long long)cum);
	/* the exact maximum, which buckets cannot give */
	fprintf(f, "# HELP %s_max largest observation since start\n# TYPE %s_max gauge\n",
	        n->name, n->name);
	fprintf(f, "%s_max %.9f\n", n->name,
	        (double)atomic_load_explicit(&h->max_ns, memory_order_relaxed) / 1e9);
}

/* HELP and TYPE at the first entry of a family, then the sample's name and
 * labels (the caller writes the value). */
static void
write_head(FILE *f, const struct named *tab, size_t i, const char *type)
{
	const struct named *n = &tab[i];

	if (i == 0 || strcmp(tab[i - 1].name, n->name) != 0)
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", n->name, n->help, n->name, type);
	if (n->labels != NULL)
		fprintf(f, "%s{%s}", n->name, n->labels);
	else
		fprintf(f, "%s", n->name);
}

char *
metrics_render(size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	uint64_t rss, hwm;
	FILE *f = open_memstream(&buf, &n);

	if (f == NULL)
		return NULL;
	for (size_t i = 0; i < METRICS_COUNTER_N; i++) {
		write_head(f, counter_names, i, "counter");
		fprintf(f, " %llu\n", (unsigned long long)atomic_load_explicit(
		                           &counters[i], memory_order_relaxed));
	}
	for (size_t i = 0; i < METRICS_HISTOGRAM_N; i++)
		write_hist(f, &hist_names[i], &hists[i]);
	for (size_t i = 0; i < METRICS_GAUGE_N; i++) {
		uint64_t bits = atomic_load_explicit(&gauges[i], memory_order_relaxed);
		double v;

		memcpy(&v, &bits, sizeof(v));
		write_head(f, gauge_names, i, "gauge");
		fprintf(f, " %.6f\n", v);
	}
	fprintf(f, "# HELP hotdeskd_build_info the running version, as a label\n"
	           "# TYPE hotdeskd_build_info gauge\n"
	           "hotdeskd_build_info{version=\"%s\"} 1\n", build_version);
	read_rss(&rss, &hwm);
	fprintf(f, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
	           "# TYPE process_resident_memory_bytes gauge\n"
	           "process_resident_memory_bytes %llu\n"
	           "# HELP hotdeskd_resident_memory_peak_bytes Peak resident memory in bytes.\n"
	           "# TYPE hotdeskd_resident_memory_peak_bytes gauge\n"
	           "hotdeskd_resident_memory_peak_bytes %llu\n",
	        (unsigned long long)rss, (unsigned long long)hwm);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	if (len != NULL)
		*len = n;
	return buf;
}

static bool
token_ok(const char *want, const char *got)
{
	size_t lw = strlen(want);

	return got != NULL && strlen(got) == lw && sodium_memcmp(want, got, lw) == 0;
}

void
metrics_http_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	const char *token = arg;
	size_t len;
	char *body;

	if (strcmp(req->path, "/metrics") != 0) {
		(void)http_printf(res, 404, NULL, "not found\n");
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		(void)http_printf(res, 405, NULL, "method not allowed\n");
		return;
	}
	if (token != NULL && token[0] != '\0' && !token_ok(token, http_bearer(req))) {
		authlog_refused(req->peer, AUTHLOG_METRICS_TOKEN,
		                http_bearer(req) ? "invalid" : "missing");
		(void)http_printf(res, 401, NULL, "missing or invalid token\n");
		return;
	}
	if ((body = metrics_render(&len)) == NULL) {
		(void)http_printf(res, 500, NULL, "out of memory\n");
		return;
	}
	http_set_body(res, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}
