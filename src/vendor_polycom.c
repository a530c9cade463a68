/*
 * vendor_polycom.c -- the "polycom" profile: Polycom/Poly UC software
 * phones (SoundPoint IP, VVX, Trio, Edge).
 *
 * Files (see docs/TEMPLATES.md):
 *   000000000000.cfg    static master file (provisioning/polycom/): its
 *                       CONFIG_FILES lists "[PHONE_MAC_ADDRESS]-line.cfg,
 *                       common.cfg" and nothing the phone uploads;
 *   common.cfg          shared template: everything device-independent;
 *   <mac>-line.cfg      per-device template: line 1 only;
 *   <mac>-phone.cfg, <mac>-web.cfg
 *                       the override files the phone writes after local
 *                       edits, which take precedence over server files:
 *                       served empty (template override.cfg) so that the
 *                       phone's synchronized cache holds no previous
 *                       user's overrides; uploads of them are refused.
 * The phone's own per-device master "<mac>.cfg" is not served (404 is what
 * the phone expects without one).
 *
 * User-Agent: "FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application",
 * optionally with "(SN:0004f2aabbcc)"; the SIP User-Agent lacks the
 * "FileTransport" word.  NOTIFY: "check-sync".
 */
#include "vendor.h"
#include "sip.h"

#include <string.h>

static const struct vendor_file polycom_device[] = {
	{"{mac}-line.cfg", "line.cfg", RENDER_XML, NULL},
	/* the override files, served empty (template override.cfg) */
	{"{mac}-phone.cfg", "override.cfg", RENDER_XML, NULL},
	{"{mac}-web.cfg", "override.cfg", RENDER_XML, NULL},
};

static const struct vendor_file polycom_shared[] = {
	{"000000000000.cfg", NULL, RENDER_XML, NULL},
	{"common.cfg", "common.cfg", RENDER_XML, NULL},
};

/* "<Family>-<Model>-UA/<firmware>" in any token starting with "Poly". */
static int
polycom_parse_ua(const char *ua, struct vendor_ua *out)
{
	struct vendor_tok tok[16];
	size_t n = vendor_split(ua, tok, 16);
	for (size_t i = 0; i < n; i++) {
		if (!vendor_prefix(tok[i].s, tok[i].n, "Poly"))
			continue;
		const char *s = tok[i].s, *ua_at = NULL;
		for (size_t k = 0; k + 4 <= tok[i].n; k++) {
			if (memcmp(s + k, "-UA/", 4) == 0) {
				ua_at = s + k;
				break;
			}
		}
		if (ua_at == NULL)
			continue;
		const char *dash = memchr(s, '-', (size_t)(ua_at - s));
		const char *m = dash && dash < ua_at ? dash + 1 : s;
		vendor_copy(out->model, sizeof(out->model), m, (size_t)(ua_at - m));
		const char *fw = ua_at + 4;
		vendor_copy(out->firmware, sizeof(out->firmware), fw,
		            (size_t)(s + tok[i].n - fw));
		if (vendor_mac_in_parens(ua, "SN:", out->mac) < 0)
			out->mac[0] = '\0';
		return 0;
	}
	return -1;
}

static const struct vendor_ops polycom_ops = {
	.parse_user_agent = polycom_parse_ua,
	.notify_body = NULL,
};

/* voIpProt.SIP.requestValidation (method digest): MD5 with the realm of
 * voIpProt.SIP.requestValidation.digest.realm, default PolycomSPIP */
static const struct vendor_notify_auth notify_auth_polycom = { "PolycomSPIP", 1u << SIP_DIGEST_MD5, false };

const struct vendor_profile vendor_polycom = {
	.name = "polycom",
	.match_priority = 10,
	.device_files = polycom_device,
	.n_device_files = sizeof(polycom_device) / sizeof(polycom_device[0]),
	.shared_files = polycom_shared,
	.n_shared_files = sizeof(polycom_shared) / sizeof(polycom_shared[0]),
	.transport = {"UDPOnly", "TCPOnly", "TLS"},
	/* lcl.ml.lang (UC software admin guide; as wazo-provd maps them) */
	.language = {"English_United_States", "English_United_Kingdom", "French_France",
	             "German_Germany", "Spanish_Spain", "Italian_Italy", "Dutch_Netherlands",
	             "Portuguese_Portugal"},
	.notify_event = "check-sync",
	.notify_content_type = NULL,
	.notify_auth = &notify_auth_polycom,
	.ops = &polycom_ops,
};
