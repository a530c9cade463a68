#!/bin/sh
# demo.sh -- starts hotdeskd on an embedded SQLite file (demo/hotdeskd.db)
# with demo data, prints how to try a *30 with curl, and runs in the
# foreground until Ctrl-C.  PORT=8080 by default.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
port=${PORT:-8080}
mkdir -p demo demo/tftp
chmod 0755 demo/tftp
pbx=demo-pbx-token-0123456789
admin=demo-admin-token-0123456789
cat > demo/hotdeskd.ini <<INI
; hotdeskd demo configuration (scripts/demo.sh)
[server]
listen = 127.0.0.1
port = $port
port_file = $root/demo/port
check_invariants = true
[database]
path = $root/demo/hotdeskd.db
migrations = $root/sql
[log]
level = info
[pbx]
token = $pbx
[admin]
token = $admin
[provisioning]
templates = $root/templates
static = $root/provisioning
tftp_root = $root/demo/tftp
INI
rm -f demo/port
./build/hotdeskd --config demo/hotdeskd.ini &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM
i=0
while [ ! -s demo/port ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then echo "hotdeskd did not start" >&2; exit 1; fi
	sleep 0.1
done
url=http://127.0.0.1:$port
api() { # METHOD PATH JSON
	curl -sf -o /dev/null -X "$1" -H "Authorization: Bearer $admin" "$url$2" -d "$3" ||
		{ echo "demo data: $1 $2 failed" >&2; exit 1; }
}
api PUT /api/v1/orgs/demo '{"display_name":"Demo Inc.","sip_server":{"host":"pbx.demo.test","port":5060,"transport":"udp"}}'
for n in 101 102 103 104 105; do
	allow=false; code='"secret_code":null'
	case $n in 101|102|103) allow=true ;; esac
	case $n in 102|103|104|105) code="\"secret_code\":\"${n}0\"" ;; esac
	api PUT /api/v1/orgs/demo/extensions/$n "{\"sip_user\":\"demo-$n\",\"sip_password\":\"secret-$n\",\"display_name\":\"User $n\",\"label\":\"$n\",\"allow_virtualization\":$allow,$code}"
done
api PUT /api/v1/devices/0004f2000101 '{"org":"demo","profile":"polycom","model":"VVX_500","home_extension":"101","parking":{"sip_user":"demo-park-101","sip_password":"park-secret-101"}}'
api PUT /api/v1/devices/001565000102 '{"org":"demo","profile":"yealink","model":"T46S","home_extension":"102","parking":{"sip_user":"demo-park-102","sip_password":"park-secret-102"}}'
api PUT /api/v1/devices/00562b000103 '{"org":"demo","profile":"cisco-mpp","model":"CP-8841-3PCC","home_extension":"103"}'
api PUT /api/v1/devices/00082f000104 '{"org":"demo","profile":"cisco-enterprise","model":"CP-8845","home_extension":"104"}'

cat <<TXT

hotdeskd is running on $url with demo data (organization "demo"):
  extensions 101-105 (sip_user demo-101 ...); 101, 102, 103 allow virtualization;
  secret codes: 102 -> 1020, 103 -> 1030, 104 -> 1040, 105 -> 1050 (105 has no phone)
  phones: 0004f2000101 (Polycom, home 101), 001565000102 (Yealink, home 102),
          00562b000103 (Cisco MPP, home 103), 00082f000104 (Cisco enterprise, home 104)

Try a *30 as the PBX would (extension 102 moves onto 101's phone):
  curl -H 'Authorization: Bearer $pbx' $url/pbx/v1/star30 -d caller=demo-101 -d digits=102
  curl -H 'Authorization: Bearer $pbx' $url/pbx/v1/star30 -d caller=demo-101 -d digits=102 -d code=1020 -d call_id=1
See where everyone is:
  curl -H 'Authorization: Bearer $admin' $url/api/v1/devices
Send 102 home again (bare *30 from the phone it is on):
  curl -H 'Authorization: Bearer $pbx' $url/pbx/v1/star30 -d caller=demo-102
Phone files:   curl $url/provision/0004f2000101-line.cfg     (TFTP root: demo/tftp)
Events:        curl -H 'Authorization: Bearer $admin' $url/api/v1/events

Ctrl-C stops hotdeskd.
TXT
wait $pid
