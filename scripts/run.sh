#!/usr/bin/env bash
# `make run`: starts a local single-node ledger in ./data.
#
# The network daemon cledgerd (ACL data-plane API over TLS, on libraft) is issue #3 and is not
# built yet. Until it is, `make run` sets up the same data directory with the engine directly,
# writes one entry, fetches its receipt, and verifies both the receipt and the whole ledger
# offline, then prints the commands to keep working with it. When cledgerd exists this script
# starts it with --data-dir ./data --listen 127.0.0.1:8443 instead.
set -euo pipefail
BIN=${1:-build/bin}
DATA=${CLEDGER_DATA:-./data}
CL="$BIN/cledger"

if [ -x "$BIN/cledgerd" ]; then
    LISTEN=${CLEDGER_LISTEN:-127.0.0.1:8443}
    # Client profile for `cledger put|get|list|...` (docs/client.md). cledgerd creates the
    # certificates on first start; the profile only names them. Absolute paths, so it works from
    # any directory with CLEDGER_PROFILE=$DATA/cledger-profile.json.
    mkdir -p "$DATA"
    DATA_ABS=$(cd "$DATA" && pwd)
    CONNECT=$LISTEN
    case "$LISTEN" in 0.0.0.0:*) CONNECT="127.0.0.1:${LISTEN##*:}" ;; "[::]:"*) CONNECT="[::1]:${LISTEN##*:}" ;; esac
    PROFILE="$DATA/cledger-profile.json"
    cat >"$PROFILE" <<JSON
{"endpoint":"https://$CONNECT","serviceCert":"$DATA_ABS/service_cert.pem","cert":"$DATA_ABS/admin_cert.pem","key":"$DATA_ABS/admin_key.pem"}
JSON
    PENV=""
    [ "$DATA_ABS" = "$(pwd)/data" ] || PENV="  export CLEDGER_PROFILE=$DATA_ABS/cledger-profile.json
"
    cat <<TXT
Starting cledgerd: https://$LISTEN (data directory $DATA; Ctrl-C stops it cleanly)
  service certificate (trust anchor):   $DATA/service_cert.pem
  administrator credential:             $DATA/admin_cert.pem  $DATA/admin_key.pem
  client profile:                       $PROFILE
client (from another terminal in this directory; docs/client.md):
${PENV}  client: $CL put 'hello' --wait        # prints the transaction id TXID
  client: $CL get TXID                  # read it back
  client: $CL list                      # every entry: txid<TAB>contents
  client: $CL receipt TXID --verify     # its write receipt, verified
  client: $CL user add CERT.pem --role Reader
Or with curl:
  curl --cacert $DATA/service_cert.pem --cert $DATA/admin_cert.pem --key $DATA/admin_key.pem \\
       -H 'content-type: application/json' -d '{"contents":"hello"}' \\
       'https://$CONNECT/app/transactions?api-version=2022-05-13'
TXT
    exec "$BIN/cledgerd" --data-dir "$DATA" --listen "$LISTEN"
fi

if [ ! -d "$DATA/node" ]; then
    "$CL" ledger init "$DATA"
else
    echo "using the existing ledger in $DATA"
fi
tx=$("$CL" ledger append "$DATA" --collection demo "hello from make run at $(date -u +%FT%TZ)")
echo "wrote transaction $tx"
"$CL" ledger receipt "$DATA" "$tx" >"$DATA/last_receipt.json"
"$CL" verify-receipt "$DATA/last_receipt.json" --service-cert "$DATA/service_cert.pem"
"$CL" verify-ledger "$DATA" --service-cert "$DATA/service_cert.pem"
cat <<TXT

Local ledger: $DATA (service certificate: $DATA/service_cert.pem)
  $CL ledger append $DATA --collection demo "some record"     write an entry (prints its id)
  $CL ledger get $DATA $tx                                      read it back
  $CL ledger receipt $DATA $tx > receipt.json                   its write receipt
  $CL verify-receipt receipt.json --service-cert $DATA/service_cert.pem
  $CL verify-ledger $DATA --service-cert $DATA/service_cert.pem

The network service (cledgerd, ACL-compatible HTTPS API) is tracked in issue #3; once built,
'make run' starts it on https://127.0.0.1:8443 with this data directory.
TXT
