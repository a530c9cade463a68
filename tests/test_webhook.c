/*
 * test_webhook.c -- the move webhook's pure parts: the wait between
 * attempts and the request body a PBX parses.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "webhook.h"

Test(webhook, backoff_doubles_up_to_the_cap)
{
	long want[] = { 1, 2, 4, 8, 16, 32, 60, 60, 60 };

	for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++)
		cr_assert_eq(webhook_backoff(i + 1, 60), want[i], "after %d failures: %ld, not %ld",
		             i + 1, webhook_backoff(i + 1, 60), want[i]);
	cr_assert_eq(webhook_backoff(1, 1), 1);
	cr_assert_eq(webhook_backoff(5, 1), 1);
	cr_assert_eq(webhook_backoff(3, 3), 3, "the cap need not be a power of two");
	cr_assert_eq(webhook_backoff(1000000, 86400), 86400, "no overflow after many failures");
}

Test(webhook, body_carries_every_field_encoded)
{
	struct store_pbxout r;
	struct form *f;
	size_t len;
	char err[64], *body;

	memset(&r, 0, sizeof(r));
	r.id = 42;
	r.move = 40;
	r.at = 1796000000;
	strcpy(r.sip_user, "acme 102&x=y");
	strcpy(r.device, "0004f2000101");
	strcpy(r.contact, "sip:acme-101@127.0.0.1:5091;transport=udp");
	strcpy(r.cause, "star30");
	body = webhook_body(&r, &len);
	cr_assert_not_null(body);
	cr_assert_eq(strlen(body), len);
	cr_assert_str_eq(body, "event=move&id=42&move=40&at=1796000000&sip_user=acme%20102%26x%3Dy"
	                       "&device=0004f2000101&contact=sip%3Aacme-101%40127.0.0.1%3A5091"
	                       "%3Btransport%3Dudp&cause=star30");
	f = form_parse(body, len, err, sizeof(err));
	cr_assert_not_null(f, "%s", err);
	cr_assert_str_eq(form_get(f, "sip_user"), "acme 102&x=y");
	cr_assert_str_eq(form_get(f, "contact"), "sip:acme-101@127.0.0.1:5091;transport=udp");
	cr_assert_eq(form_count(f), 8);
	form_free(f);
	free(body);
}

Test(webhook, body_of_a_user_placed_nowhere)
{
	struct store_pbxout r;
	size_t len;
	char *body;

	memset(&r, 0, sizeof(r));
	r.id = r.move = 7;
	strcpy(r.sip_user, "acme-101");
	strcpy(r.cause, "admin");
	body = webhook_body(&r, &len);
	cr_assert_str_eq(body, "event=move&id=7&move=7&at=0&sip_user=acme-101&device=&contact="
	                       "&cause=admin");
	free(body);
}

Test(webhook, kick_and_stop_accept_null)
{
	webhook_kick(NULL);
	webhook_stop(NULL);
}
