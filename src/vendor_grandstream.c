/*
 * vendor_grandstream.c -- the "grandstream" profile: Grandstream GXP and
 * GRP phones, XML provisioning files of P-values.
 *
 * Files (see docs/TEMPLATES.md):
 *   cfg<mac>.xml  per-device template (cfg.xml): a <gs_provision> document
 *                 whose <config> holds one element per P-value.  The phone
 *                 asks for cfg<mac> (the binary form; 404) and then
 *                 cfg<mac>.xml (FusionPBX's Grandstream README; Grandstream
 *                 provisioning guide), lowercase MAC.
 * No shared file: every parameter hotdeskd sets is in the per-device file,
 * which writes each of them (an empty value clears it), so a parked phone
 * keeps nothing of its previous user.
 *
 * P-values (Grandstream GXP admin guide; wazo-provd's htek template uses
 * the same numbers): P271 account active, P47 SIP server, P130 transport
 * (0 UDP, 1 TCP, 2 TLS), P35 SIP user ID, P36 authenticate ID, P34
 * password, P3 display name, P270 account name (the line label), P33
 * voicemail number, P30 NTP server, P1362 language ("en", "fr", ...).
 * Line keys and the time zone are not rendered: the keys' P-values differ
 * per model and the zone takes a POSIX TZ string (docs/PHONES.md).
 *
 * User-Agent: "Grandstream GXP2170 1.0.11.3" or "Grandstream Model HW
 * GXP2170 SW 1.0.9.132 DevId 000b8286abcd".  NOTIFY: "check-sync".
 */
#include "vendor.h"

#include <string.h>

static const struct vendor_file gs_device[] = {
	{"cfg{mac}.xml", "cfg.xml", RENDER_XML, NULL},
};

/* "Grandstream <model> <firmware>" or
 * "Grandstream Model HW <model> SW <firmware> DevId <mac>". */
static int
gs_parse_ua(const char *ua, struct vendor_ua *out)
{
	struct vendor_tok tok[12];
	size_t n = vendor_split(ua, tok, 12);

	if (n < 2 || tok[0].n != 11 || !vendor_prefix(tok[0].s, tok[0].n, "Grandstream"))
		return -1;
	if (n >= 4 && tok[1].n == 5 && vendor_prefix(tok[1].s, 5, "Model")) {
		for (size_t i = 2; i + 1 < n; i++) {
			if (tok[i].n == 2 && vendor_prefix(tok[i].s, 2, "HW"))
				vendor_copy(out->model, sizeof(out->model), tok[i + 1].s, tok[i + 1].n);
			else if (tok[i].n == 2 && vendor_prefix(tok[i].s, 2, "SW"))
				vendor_copy(out->firmware, sizeof(out->firmware), tok[i + 1].s,
				            tok[i + 1].n);
			else if (tok[i].n == 5 && vendor_prefix(tok[i].s, 5, "DevId") &&
			         vendor_mac(tok[i + 1].s, tok[i + 1].n, out->mac) < 0)
				out->mac[0] = '\0';
		}
	} else {
		vendor_copy(out->model, sizeof(out->model), tok[1].s, tok[1].n);
		if (n >= 3)
			vendor_copy(out->firmware, sizeof(out->firmware), tok[2].s, tok[2].n);
	}
	return out->model[0] != '\0' ? 0 : -1;
}

static const struct vendor_ops gs_ops = {
	.parse_user_agent = gs_parse_ua,
	.notify_body = NULL,
};

const struct vendor_profile vendor_grandstream = {
	.name = "grandstream",
	.match_priority = 50,
	.device_files = gs_device,
	.n_device_files = sizeof(gs_device) / sizeof(gs_device[0]),
	.shared_files = NULL,
	.n_shared_files = 0,
	.transport = {"0", "1", "2"},
	/* P1362 */
	.language = {"en", "en", "fr", "de", "es", "it", "nl", "pt"},
	.notify_event = "check-sync",
	.notify_content_type = NULL,
	.ops = &gs_ops,
};
