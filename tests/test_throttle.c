/*
 * test_throttle.c -- the miss throttle of configuration downloads: a
 * source is blocked at the threshold within a window, for the block time;
 * a window that expired starts over; blocked sources survive a full table;
 * IPv6 sources count per /64; unknown-MAC misses of all sources trip a
 * global limit.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "testutil.h"
#include "throttle.h"

static struct sockaddr_in
v4(const char *ip)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6
v6(const char *ip)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

	cr_assert_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
	return a;
}

#define SA(x) ((const struct sockaddr *)&(x))

static const struct throttle_policy pol = { 3, 60, 300, 0 };

Test(throttle, blocks_at_the_threshold_for_the_block_time)
{
	struct throttle *t = throttle_new(16);
	struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");

	throttle_set_policy(t, &pol);
	cr_assert(!throttle_miss(t, SA(a), 1000));
	cr_assert(!throttle_miss(t, SA(a), 1001));
	cr_assert(!throttle_blocked(t, SA(a), 1001));
	cr_assert(throttle_miss(t, SA(a), 1002), "the third miss starts a block");
	cr_assert(throttle_blocked(t, SA(a), 1002));
	cr_assert(throttle_blocked(t, SA(a), 1301));
	cr_assert(!throttle_blocked(t, SA(a), 1302), "the block ends");
	cr_assert(!throttle_blocked(t, SA(b), 1002), "other sources are not affected");
	throttle_free(t);
}

Test(throttle, an_expired_window_starts_over)
{
	struct throttle *t = throttle_new(16);
	struct sockaddr_in a = v4("192.0.2.1");

	throttle_set_policy(t, &pol);
	cr_assert(!throttle_miss(t, SA(a), 1000));
	cr_assert(!throttle_miss(t, SA(a), 1001));
	cr_assert(!throttle_miss(t, SA(a), 1061), "a new window: count 1");
	cr_assert(!throttle_miss(t, SA(a), 1062));
	cr_assert(!throttle_blocked(t, SA(a), 1062));
	throttle_free(t);
}

Test(throttle, blocked_sources_survive_a_full_table)
{
	struct throttle *t = throttle_new(4);
	struct sockaddr_in bad = v4("198.51.100.7");
	char ip[32];

	throttle_set_policy(t, &pol);
	for (int i = 0; i < 3; i++)
		throttle_miss(t, SA(bad), 1000);
	cr_assert(throttle_blocked(t, SA(bad), 1000));
	/* the scanner rotates through many more addresses than the table holds */
	for (int i = 0; i < 50; i++) {
		struct sockaddr_in x;

		snprintf(ip, sizeof(ip), "203.0.113.%d", i + 1);
		x = v4(ip);
		throttle_miss(t, SA(x), 1001 + i);
	}
	cr_assert(throttle_blocked(t, SA(bad), 1100), "the block was not evicted");
	throttle_free(t);
}

Test(throttle, ipv6_counts_per_64)
{
	struct throttle *t = throttle_new(16);
	struct sockaddr_in6 a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2::ffff"),
	                    c = v6("2001:db8:1:3::1");

	throttle_set_policy(t, &pol);
	throttle_miss(t, SA(a), 1000);
	throttle_miss(t, SA(b), 1000);
	cr_assert(throttle_miss(t, SA(a), 1000), "three misses from one /64");
	cr_assert(throttle_blocked(t, SA(b), 1000));
	cr_assert(!throttle_blocked(t, SA(c), 1000), "another /64 is another source");
	throttle_free(t);
}

static struct sockaddr_in
nth(int i)
{
	char ip[32];

	snprintf(ip, sizeof(ip), "203.0.%d.%d", i / 250, i % 250 + 1);
	return v4(ip);
}

Test(throttle, many_sources_under_the_threshold_trip_the_global_limit)
{
	struct throttle_policy p = { 5, 60, 300, 10 };
	struct throttle *t = throttle_new(64);
	struct sockaddr_in phone = v4("192.0.2.10"), late = v4("198.51.100.99"), x;
	size_t blocked = 0;
	unsigned f;

	throttle_set_policy(t, &p);
	/* five scanners, two guesses each: none reaches 5, the tenth trips */
	for (int i = 0; i < 9; i++) {
		x = nth(i % 5);
		f = throttle_miss_unknown(t, SA(x), 1000 + i, &blocked);
		cr_assert_eq(f, 0, "miss %d: flags %u", i, f);
	}
	cr_assert(!throttle_tripped(t, 1009));
	x = nth(4);
	f = throttle_miss_unknown(t, SA(x), 1009, &blocked);
	cr_assert_eq(f, THROTTLE_TRIPPED, "flags %u", f); /* blocked by the trip */
	cr_assert_eq(blocked, 5, "blocked %zu", blocked);
	cr_assert(throttle_tripped(t, 1009));
	for (int i = 0; i < 5; i++) {
		x = nth(i);
		cr_assert(throttle_blocked(t, SA(x), 1010), "scanner %d not blocked", i);
	}
	/* a phone that never missed is not blocked */
	cr_assert(!throttle_blocked(t, SA(phone), 1010));
	/* while tripped, a new source is blocked at its first miss, of any kind */
	cr_assert_eq(throttle_miss_unknown(t, SA(late), 1011, NULL), THROTTLE_BLOCK);
	cr_assert(throttle_blocked(t, SA(late), 1011));
	cr_assert(throttle_miss(t, SA(phone), 1012), "a wrong password blocks at once too");
	/* after the block time everything is as before */
	cr_assert(!throttle_tripped(t, 1309));
	cr_assert(!throttle_blocked(t, SA(late), 1400));
	x = nth(7);
	cr_assert_eq(throttle_miss_unknown(t, SA(x), 1400, NULL), 0);
	throttle_free(t);
}

Test(throttle, the_global_window_expires_and_zero_is_off)
{
	struct throttle_policy p = { 5, 60, 300, 10 };
	struct throttle *t = throttle_new(64);
	struct sockaddr_in x;

	throttle_set_policy(t, &p);
	/* 9 misses, then the window ends: the count starts over */
	for (int i = 0; i < 9; i++) {
		x = nth(i);
		cr_assert_eq(throttle_miss_unknown(t, SA(x), 1000, NULL), 0);
	}
	for (int i = 0; i < 9; i++) {
		x = nth(100 + i);
		cr_assert_eq(throttle_miss_unknown(t, SA(x), 1060, NULL), 0, "%d", i);
	}
	x = nth(200);
	cr_assert_eq(throttle_miss_unknown(t, SA(x), 1061, NULL), THROTTLE_TRIPPED);
	cr_assert(throttle_blocked(t, SA(x), 1061));
	/* other misses (wrong credentials) never count globally */
	p.global_threshold = 3;
	throttle_set_policy(t, &p);
	for (int i = 0; i < 20; i++) {
		x = nth(300 + i);
		(void)throttle_miss(t, SA(x), 2000);
	}
	cr_assert(!throttle_tripped(t, 2000));
	/* 0 turns the global limit off */
	p.global_threshold = 0;
	throttle_set_policy(t, &p);
	for (int i = 0; i < 100; i++) {
		x = nth(400 + i);
		cr_assert_eq(throttle_miss_unknown(t, SA(x), 3000, NULL), 0);
	}
	cr_assert(!throttle_tripped(t, 3000));
	throttle_free(t);
}
