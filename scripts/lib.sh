# Shared set-up for scripts/perf and scripts/soak (sourced, not run). Needs $WORK (a temp dir).
#   free_port            a free TCP port on 127.0.0.1
#   make_trust           root and nhsa keys, a trust list signed for 1 day: $WORK/{nhsa.secret,trust.paseto,root.public}
#   start_redis CORE     a private redis-server pinned to CORE (prefix: $REDIS_WRAP); exports VERIFIER_STORE
#   enroll               the institution bench-hospital and one scanner: sets CREDENTIAL

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

make_trust() {
    verifier keys new --name root --dir "$WORK" >/dev/null
    verifier keys new --name nhsa --dir "$WORK" >/dev/null
    printf '{"keys": [{"public": "%s", "issuer": "nhsa", "cards": ["mi-voucher"]}]}\n' \
        "$(cat "$WORK/nhsa.public")" > "$WORK/keys.json"
    verifier trust sign "$WORK/keys.json" --root "$WORK/root.secret" --out "$WORK/trust.paseto" \
        --valid-for 1d >/dev/null
}

start_redis() {
    local port
    port=$(free_port)
    ${REDIS_WRAP:-} taskset -c "$1" redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --maxmemory-policy noeviction --daemonize no --logfile "$WORK/redis.log" &
    sleep 0.5
    export VERIFIER_STORE=redis://127.0.0.1:$port/0
}

enroll() {
    verifier institutions put bench-hospital --name Bench --cards mi-voucher >/dev/null
    CREDENTIAL=$(verifier scanners add --institution bench-hospital 2>/dev/null)
}
