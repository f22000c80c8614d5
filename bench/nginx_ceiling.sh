#!/bin/sh
# bench/nginx_ceiling.sh — the HTTPS ceiling cledgerd's load numbers are compared with: nginx
# (Debian nginx-light, /usr/sbin/nginx) answering `return 200` over TLS 1.3 on this box.
#
#   sh bench/nginx_ceiling.sh start [DIR]   start nginx; prints, eval-able:
#                                             NGINX_PORT=<port> NGINX_CACERT=<ca.pem> NGINX_DIR=<dir>
#   sh bench/nginx_ceiling.sh stop DIR      stop it and remove DIR
#
# Runs as the current user with DIR (default: a new mktemp directory) as its prefix: generated
# config, logs, pid file and certificates. TLS 1.3 only (cledgerd prefers 1.3 and accepts 1.2;
# bench_load offers 1.3 alone, so both sides of a comparison run 1.3), an ECDSA P-256 leaf for
# 127.0.0.1/localhost issued by a generated P-256 CA (DIR/ca.pem), client certificates requested
# (ssl_verify_client optional_no_ca), keep-alive connections (keepalive_requests 1000000),
# 2 worker processes (NGINX_WORKERS), access_log off, `location / { return 200 '{"ok":true}'; }`.
# The caller must stop it; a watchdog stops it anyway after NGINX_MAX_SECONDS (default 600).
#
# Environment: NGINX_BIN (default /usr/sbin/nginx), NGINX_WORKERS (2), NGINX_MAX_SECONDS (600),
# NGINX_PORT (a fixed port instead of a free one).
set -eu

NGINX=${NGINX_BIN:-/usr/sbin/nginx}
WORKERS=${NGINX_WORKERS:-2}
MAX_SECONDS=${NGINX_MAX_SECONDS:-600}

usage() {
    echo "usage: nginx_ceiling.sh start [DIR] | stop DIR" >&2
    exit 2
}

# port_busy PORT: is something listening on 127.0.0.1:PORT?
port_busy() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
    else
        return 1
    fi
}

gen_certs() {
    d=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=nginx ceiling CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,digitalSignature,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=127.0.0.1" -keyout "$d/leaf.key" -out "$d/leaf.csr" 2>/dev/null
    cat >"$d/leaf.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
    openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$d/leaf.ext" -out "$d/leaf.pem" 2>/dev/null
    chmod 600 "$d/ca.key" "$d/leaf.key"
}

write_conf() {
    d=$1
    port=$2
    # as root nginx would hand its workers to nobody: keep the current user
    user_line=
    if [ "$(id -u)" = 0 ]; then
        user_line="user $(id -un) $(id -gn);"
    fi
    cat >"$d/nginx.conf" <<EOF
$user_line
worker_processes $WORKERS;
pid $d/nginx.pid;
error_log $d/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    server {
        listen 127.0.0.1:$port ssl;
        server_name 127.0.0.1 localhost;
        ssl_protocols TLSv1.3;
        ssl_certificate $d/leaf.pem;
        ssl_certificate_key $d/leaf.key;
        ssl_verify_client optional_no_ca;
        ssl_session_cache off;
        default_type application/json;
        location / {
            return 200 '{"ok":true}';
        }
    }
}
EOF
}

start() {
    [ -x "$NGINX" ] || { echo "nginx_ceiling.sh: $NGINX not found (apt-get install nginx-light)" >&2; exit 2; }
    command -v openssl >/dev/null || { echo "nginx_ceiling.sh: openssl not found" >&2; exit 2; }
    if [ $# -ge 1 ]; then
        DIR=$1
        mkdir -p "$DIR"
    else
        DIR=$(mktemp -d "${TMPDIR:-/tmp}/cledger-nginx.XXXXXX")
    fi
    DIR=$(cd "$DIR" && pwd)
    mkdir -p "$DIR/tmp"
    gen_certs "$DIR"
    tries=0
    while :; do
        tries=$((tries + 1))
        if [ -n "${NGINX_PORT:-}" ]; then
            port=$NGINX_PORT
        else
            # a free port in 20000..59999 (the bind below is the real test)
            r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
            port=$((20000 + r % 40000))
            if port_busy "$port"; then
                continue
            fi
        fi
        write_conf "$DIR" "$port"
        : >"$DIR/error.log"
        if "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log" 2>"$DIR/start.err"; then
            break
        fi
        if [ -n "${NGINX_PORT:-}" ] || [ "$tries" -ge 10 ] ||
            ! grep -q "Address already in use" "$DIR/start.err" "$DIR/error.log"; then
            echo "nginx_ceiling.sh: nginx failed to start:" >&2
            cat "$DIR/start.err" "$DIR/error.log" >&2
            exit 1
        fi
    done
    # wait for the pid file (the master writes it once it has bound the port)
    i=0
    while [ ! -s "$DIR/nginx.pid" ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -s "$DIR/nginx.pid" ] || { echo "nginx_ceiling.sh: no pid file" >&2; cat "$DIR/error.log" >&2; exit 1; }
    master=$(cat "$DIR/nginx.pid")
    # watchdog: stop this nginx after MAX_SECONDS if the caller forgets (only if it is still the
    # same master process)
    # shellcheck disable=SC2016 # expanded by the inner sh
    nohup sh -c 'sleep "$1"; if [ "$(cat "$2/nginx.pid" 2>/dev/null)" = "$3" ]; then kill -TERM "$3"; fi' \
        watchdog "$MAX_SECONDS" "$DIR" "$master" >/dev/null 2>&1 &
    echo $! >"$DIR/watchdog.pid"
    echo "$port" >"$DIR/port"
    echo "NGINX_PORT=$port NGINX_CACERT=$DIR/ca.pem NGINX_DIR=$DIR"
}

stop() {
    DIR=$1
    [ -d "$DIR" ] || { echo "nginx_ceiling.sh: $DIR: no such directory" >&2; exit 1; }
    if [ -s "$DIR/nginx.pid" ]; then
        master=$(cat "$DIR/nginx.pid")
        if kill -TERM "$master" 2>/dev/null; then
            i=0
            while kill -0 "$master" 2>/dev/null && [ $i -lt 50 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            kill -KILL "$master" 2>/dev/null || true
        fi
    fi
    if [ -s "$DIR/watchdog.pid" ]; then
        wd=$(cat "$DIR/watchdog.pid")
        # the watchdog's sleep is its child: end both
        pkill -TERM -P "$wd" 2>/dev/null || true
        kill -TERM "$wd" 2>/dev/null || true
    fi
    # only remove what start created
    if [ -f "$DIR/nginx.conf" ]; then
        rm -rf "$DIR"
    fi
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
start) start "$@" ;;
stop)
    [ $# -eq 1 ] || usage
    stop "$1"
    ;;
*) usage ;;
esac
