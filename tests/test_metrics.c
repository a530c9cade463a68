/*
 * test_metrics.c -- counters, histograms (buckets, quantiles, maximum,
 * concurrent recording), move timing and the Prometheus exposition.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "testutil.h"

static uint64_t
cumulative_count(const struct metrics_hist *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i <= METRICS_BUCKETS; i++)
		n += atomic_load(&h->bucket[i]);
	return n;
}

/* A thread's CPU clock read while it runs, and 0 once it cannot be
 * read: what the service's code checks are timed by. */
static void *
spin_ms(void *arg)
{
	uint64_t t0 = metrics_clock_ns(CLOCK_THREAD_CPUTIME_ID);

	(void)arg;
	while (metrics_clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0 < 2000000)
		;
	return NULL;
}

Test(metrics, clocks_in_nanoseconds_and_zero_when_unreadable)
{
	pthread_t t;
	clockid_t cpu;
	uint64_t a = metrics_now_ns(), b = metrics_clock_ns(CLOCK_MONOTONIC);

	cr_assert_neq(a, 0);
	cr_assert_geq(b, a, "the monotonic clock went back");
	cr_assert_eq(pthread_create(&t, NULL, spin_ms, NULL), 0);
	cr_assert_eq(pthread_getcpuclockid(t, &cpu), 0);
	pthread_join(t, NULL);
	cr_assert_eq(metrics_clock_ns(cpu), 0, "the CPU clock of a thread that ended read");
	cr_assert_eq(metrics_clock_ns((clockid_t)-1), 0, "an invalid clock read as a time");
	cr_assert_geq(metrics_clock_ns(CLOCK_THREAD_CPUTIME_ID), 1, "this thread's CPU time");
}

Test(metrics, bounds_increase_and_span_microseconds_to_a_minute)
{
	for (size_t i = 1; i < METRICS_BUCKETS; i++)
		cr_assert_gt(metrics_bounds_ns[i], metrics_bounds_ns[i - 1], "bound %zu", i);
	cr_assert_eq(metrics_bounds_ns[0], 1000ULL);
	cr_assert_geq(metrics_bounds_ns[METRICS_BUCKETS - 1], 60ULL * 1000000000ULL);
}

Test(metrics, observation_lands_in_first_bucket_not_below_it)
{
	struct metrics_hist h = { 0 };

	metrics_hist_observe(&h, 1000);   /* exactly 1 µs: first bucket */
	metrics_hist_observe(&h, 1001);   /* just above: second */
	metrics_hist_observe(&h, 0);      /* zero: first */
	metrics_hist_observe(&h, 500ULL * 1000000000ULL); /* beyond the last: +Inf */
	cr_assert_eq(atomic_load(&h.bucket[0]), 2);
	cr_assert_eq(atomic_load(&h.bucket[1]), 1);
	cr_assert_eq(atomic_load(&h.bucket[METRICS_BUCKETS]), 1);
	cr_assert_eq(atomic_load(&h.count), 4);
	cr_assert_eq(atomic_load(&h.sum_ns), 2001ULL + 500ULL * 1000000000ULL);
	cr_assert_eq(atomic_load(&h.max_ns), 500ULL * 1000000000ULL);
}

Test(metrics, quantiles_within_bucket_width_and_clamped_to_max)
{
	struct metrics_hist h = { 0 };
	uint64_t p50, p99;

	cr_assert_eq(metrics_hist_quantile(&h, 0.5), 0, "empty histogram");
	/* 1..1000 µs, uniformly */
	for (uint64_t us = 1; us <= 1000; us++)
		metrics_hist_observe(&h, us * 1000);
	p50 = metrics_hist_quantile(&h, 0.5);
	p99 = metrics_hist_quantile(&h, 0.99);
	cr_assert(p50 >= 300000 && p50 <= 700000, "p50 %llu ns", (unsigned long long)p50);
	cr_assert(p99 >= 700000 && p99 <= 1000000, "p99 %llu ns", (unsigned long long)p99);
	cr_assert_eq(metrics_hist_quantile(&h, 1.0), 1000000, "max is exact");
	cr_assert_leq(metrics_hist_quantile(&h, 0.0), 1000);
	cr_assert_leq(p50, p99);

	/* one value: every quantile is at most that value */
	metrics_hist_reset(&h);
	metrics_hist_observe(&h, 4200000);
	cr_assert_eq(atomic_load(&h.count), 1);
	cr_assert_leq(metrics_hist_quantile(&h, 0.99), 4200000);
	cr_assert_geq(metrics_hist_quantile(&h, 0.99), 3000000, "within its bucket");
}

struct worker {
	struct metrics_hist *h;
	uint64_t base;
};

static void *
hammer(void *arg)
{
	struct worker *w = arg;

	for (uint64_t i = 0; i < 100000; i++) {
		metrics_hist_observe(w->h, w->base + i % 5000);
		metrics_inc(METRICS_DEVICES_PUBLISHED, 1);
	}
	return NULL;
}

Test(metrics, concurrent_recording_loses_nothing)
{
	struct metrics_hist h = { 0 };
	pthread_t t[4];
	struct worker w[4];
	uint64_t before = metrics_counter(METRICS_DEVICES_PUBLISHED);

	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ &h, (uint64_t)i * 1000000 };
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(atomic_load(&h.count), 400000);
	cr_assert_eq(cumulative_count(&h), 400000);
	cr_assert_eq(atomic_load(&h.max_ns), 3000000 + 4999);
	cr_assert_eq(metrics_counter(METRICS_DEVICES_PUBLISHED) - before, 400000);
}

Test(metrics, move_excludes_hash_and_only_counts_changes)
{
	const struct metrics_hist *mv = metrics_histogram(METRICS_MOVE);
	const struct metrics_hist *pub = metrics_histogram(METRICS_MOVE_PUBLISHED);
	const struct metrics_hist *ver = metrics_histogram(METRICS_CODE_VERIFY);
	uint64_t n0 = atomic_load(&mv->count), v0 = atomic_load(&ver->count);
	uint64_t stamp, t0;

	cr_assert_eq(metrics_move_stamp(), 0, "no move outside begin/end");
	t0 = metrics_now_ns();
	metrics_move_begin();
	/* pretend the verify took 10 s: the move must not include it */
	metrics_move_hash(10ULL * 1000000000ULL);
	stamp = metrics_move_stamp();
	cr_assert_geq(stamp, t0 + 10ULL * 1000000000ULL);
	metrics_move_published();
	metrics_move_end(true);
	cr_assert_eq(atomic_load(&mv->count), n0 + 1);
	cr_assert_eq(atomic_load(&pub->count), n0 + 1);
	cr_assert_eq(atomic_load(&ver->count), v0 + 1);
	cr_assert_lt(atomic_load(&mv->max_ns), 1000000000ULL, "hash excluded");
	cr_assert_eq(metrics_move_stamp(), 0, "ended");

	metrics_move_begin();
	metrics_move_end(false); /* need_code, retry, ...: not a move */
	cr_assert_eq(atomic_load(&mv->count), n0 + 1);

	/* the NOTIFY may be sent from another thread with the stamp */
	metrics_move_notified(metrics_now_ns());
	metrics_move_notified(0); /* not a move: ignored */
	cr_assert_eq(atomic_load(&metrics_histogram(METRICS_MOVE_NOTIFY)->count), 1);
}

Test(metrics, exposition_is_prometheus_text)
{
	size_t len;
	char *txt, *p;

	metrics_inc(METRICS_STAR30_REQUESTS, 3);
	metrics_observe(METRICS_PUBLISH, 2500000); /* 2.5 ms */
	metrics_gauge_set(METRICS_STARTUP_SECONDS, 1.25);
	txt = metrics_render(&len);
	cr_assert_not_null(txt);
	cr_assert_eq(strlen(txt), len);
	cr_assert_not_null(strstr(txt, "# TYPE hotdeskd_star30_requests_total counter\n"
	                               "hotdeskd_star30_requests_total 3\n"));
	cr_assert_not_null(strstr(txt, "# TYPE hotdeskd_publish_seconds histogram\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_publish_seconds_bucket{le=\"0.002\"} 0\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_publish_seconds_bucket{le=\"0.003\"} 1\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_publish_seconds_bucket{le=\"+Inf\"} 1\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_publish_seconds_count 1\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_publish_seconds_sum 0.002500000\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_publish_seconds_max 0.002500000\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_startup_seconds 1.250000\n"));
	p = strstr(txt, "\nprocess_resident_memory_bytes ");
	cr_assert_not_null(p);
	p = strchr(p + 1, ' ');
	cr_assert_gt(strtoull(p + 1, NULL, 10), 0, "resident memory read from /proc");
	/* every line is a comment or "name{labels} value" */
	for (char *l = txt; *l; l = strchr(l, '\n') + 1) {
		cr_assert(l[0] == '#' || (l[0] >= 'a' && l[0] <= 'z'), "line %.40s", l);
		cr_assert_not_null(strchr(l, '\n'), "every line ends");
	}
	free(txt);
}

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

Test(metrics, labelled_families_share_one_help_and_type)
{
	char *txt;

	metrics_download(200);
	metrics_download(304);
	metrics_download(404);
	metrics_download(403);
	metrics_download(99);  /* not a status: ignored */
	metrics_download(600);
	metrics_counter_set(METRICS_STORE_ERRORS, 7);
	metrics_gauge_set(METRICS_DEVICES_STALE, 2);
	metrics_set_build("9.8.7");
	txt = metrics_render(NULL);
	cr_assert_not_null(txt);
	cr_assert_eq(count_of(txt, "# TYPE hotdeskd_downloads_total counter\n"), 1);
	cr_assert_eq(count_of(txt, "# HELP hotdeskd_downloads_total "), 1);
	cr_assert_not_null(strstr(txt, "hotdeskd_downloads_total{class=\"1xx\"} 0\n"
	                               "hotdeskd_downloads_total{class=\"2xx\"} 1\n"
	                               "hotdeskd_downloads_total{class=\"3xx\"} 1\n"
	                               "hotdeskd_downloads_total{class=\"4xx\"} 2\n"
	                               "hotdeskd_downloads_total{class=\"5xx\"} 0\n"), "%s", txt);
	cr_assert_eq(count_of(txt, "# TYPE hotdeskd_auth_refused_total counter\n"), 1);
	cr_assert_eq(count_of(txt, "hotdeskd_auth_refused_total{kind="), 9);
	cr_assert_not_null(strstr(txt, "hotdeskd_store_errors_total 7\n"));
	cr_assert_eq(count_of(txt, "# TYPE hotdeskd_devices gauge\n"), 1);
	cr_assert_not_null(strstr(txt, "hotdeskd_devices{sync=\"stale\"} 2.000000\n"));
	cr_assert_not_null(strstr(txt, "hotdeskd_build_info{version=\"9.8.7\"} 1\n"));
	cr_assert_eq(count_of(txt, "# TYPE hotdeskd_config_reloads_total counter\n"), 1);
	free(txt);
}
