#!/usr/bin/env bash
# `make run`: starts a local single-node ledger (cledgerd) in ./data, listening on 127.0.0.1:8443,
# after writing a client profile, and prints how to talk to it.
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

echo "run.sh: $BIN/cledgerd is not built (make run builds it)" >&2
exit 1
