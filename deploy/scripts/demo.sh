#!/usr/bin/env bash
# make demo: the whole system once, end to end, on loopback only.
#
# The controller serves --insecure on loopback (plaintext, no authentication
# required: for one machine only); the demo still mints an admin bearer token
# and uses it, as you would against a TLS controller (see deploy/README.md).
#
# Starts a managed PostgreSQL (through the controller), the controller, one
# agent and a demo HTTP listener on a free 127.0.0.1 port; creates a site and
# a target for 127.0.0.1/32 with that one port; runs ScanNow; waits for the
# job to complete and prints what nmap found, using grpcurl commands you can
# copy. KEEP=1 leaves everything running and prints how to stop it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN="$ROOT/bin"
STATE="$ROOT/.demo"
KEEP=${KEEP:-0}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
# run shows a command the way a reader can paste it into a shell, then runs it.
run() {
	local a line=""
	for a in "$@"; do
		if [[ $a =~ [^A-Za-z0-9_./:=@,+-] ]]; then
			line+=" '${a//\'/\'\\\'\'}'"
		else
			line+=" $a"
		fi
	done
	# Show the token by name, never its value.
	if [ -n "${TOKEN:-}" ]; then line=${line//$TOKEN/\$TOKEN}; fi
	printf '$%s\n' "$line"
	"$@"
}

free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port near $1" >&2
	exit 1
}

pids=()
cleanup() {
	if [ "$KEEP" = 1 ]; then
		return
	fi
	say "Stopping everything the demo started"
	# Agent and listener first, then the controller, which stops its PostgreSQL.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[$i]}" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "${pids[$i]}" 2>/dev/null || true
	done
	echo "stopped (logs in $STATE)"
}
trap cleanup EXIT

rm -rf "$STATE"
mkdir -p "$STATE"
go build -o "$BIN/scanorama-listener" "$ROOT/deploy/listener/cmd/scanorama-listener"

CTRL="127.0.0.1:$(free_port 7443)"
say "Starting the controller on $CTRL (it runs its own PostgreSQL under $STATE/controller)"
"$BIN/scanorama-controller" serve --insecure --listen "$CTRL" --data-dir "$STATE/controller" >"$STATE/controller.log" 2>&1 &
pids+=($!)
G=("$BIN/grpcurl" -plaintext)
for i in $(seq 1 120); do
	if "${G[@]}" "$CTRL" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING; then break; fi
	if ! kill -0 "${pids[0]}" 2>/dev/null; then echo "controller exited:"; cat "$STATE/controller.log"; exit 1; fi
	sleep 0.5
	if [ "$i" = 120 ]; then echo "controller did not become healthy:"; tail -20 "$STATE/controller.log"; exit 1; fi
done
grep -E 'managed PostgreSQL|schema ready|serving' "$STATE/controller.log" | sed 's/^/   /'

say "Creating an admin bearer token (shown once, stored hashed)"
out=$(run "${G[@]}" -d '{"name":"demo","role":"TOKEN_ROLE_ADMIN","ttl":"3600s"}' "$CTRL" scanorama.v1.AdminService/CreateToken)
TOKEN=$(echo "$out" | grep -m1 '"secret"' | sed 's/.*"secret": "\([^"]*\)".*/\1/')
echo "$out" | grep -v '"secret"'
echo "   token: ${TOKEN:0:21}... (the demo uses it from here on: -H \"authorization: Bearer \$TOKEN\")"
G=("$BIN/grpcurl" -plaintext -H "authorization: Bearer $TOKEN")

say "Opening a demo HTTP listener on loopback"
# A server header nmap does not know: -sV then names it by its Go-style
# "400 Bad Request" reply.
"$BIN/scanorama-listener" -http 127.0.0.1:0 -server scanorama-demo/1.0 >"$STATE/listener.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do grep -q '^ready' "$STATE/listener.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(awk '/^listening /{n = split($2, a, ":"); print a[n]; exit}' "$STATE/listener.out")
echo "listening on 127.0.0.1:$PORT"

say "Creating a site"
run "${G[@]}" -d '{"name":"demo","description":"make demo"}' "$CTRL" scanorama.v1.AdminService/CreateSite

say "Starting an agent for site demo, allowed to scan 127.0.0.1/32 only"
"$BIN/scanorama-agent" --controller "$CTRL" --insecure --site demo --name demo-agent --scope 127.0.0.1/32 \
	--spool-dir "$STATE/agent-spool" >"$STATE/agent.log" 2>&1 &
pids+=($!)

say "Creating a target: 127.0.0.1/32, port $PORT"
out=$(run "${G[@]}" -d "{\"site\":\"demo\",\"name\":\"demo-listener\",\"network\":\"127.0.0.1/32\",\"ports\":\"$PORT\"}" \
	"$CTRL" scanorama.v1.AdminService/CreateTarget)
echo "$out"
TARGET=$(echo "$out" | grep -m1 '"id"' | sed 's/.*"id": "\([^"]*\)".*/\1/')

say "Scanning it now"
out=$(run "${G[@]}" -d "{\"target_id\":\"$TARGET\"}" "$CTRL" scanorama.v1.AdminService/ScanNow)
echo "$out"
JOB=$(echo "$out" | grep -m1 '"id"' | sed 's/.*"id": "\([^"]*\)".*/\1/')

say "Waiting for job $JOB"
echo "\$ $BIN/grpcurl -plaintext -H 'authorization: Bearer \$TOKEN' -d '{\"id\":\"$JOB\"}' $CTRL scanorama.v1.AdminService/GetJob"
status=""
for _ in $(seq 1 240); do
	job=$("${G[@]}" -d "{\"id\":\"$JOB\"}" "$CTRL" scanorama.v1.AdminService/GetJob)
	status=$(echo "$job" | grep -m1 '"status"' | sed 's/.*"status": "\([A-Z_]*\)".*/\1/')
	progress=$(echo "$job" | grep -m1 '"progressPercent"' | sed 's/[^0-9]//g' || true)
	printf '   %s %s%%\n' "$status" "${progress:-0}"
	case "$status" in JOB_STATUS_COMPLETED | JOB_STATUS_FAILED | JOB_STATUS_CANCELLED) break ;; esac
	sleep 0.5
done
echo "$job"
if [ "$status" != JOB_STATUS_COMPLETED ]; then
	echo "job did not complete; agent log:"; tail -20 "$STATE/agent.log"; exit 1
fi

say "What Scanorama found on 127.0.0.1"
out=$(run "${G[@]}" -d '{"site":"demo","ip_address":"127.0.0.1"}' "$CTRL" scanorama.v1.AdminService/GetHost)
echo "$out"
line=$(echo "$out" | tr -d '\n' | sed 's/  */ /g' | grep -o "\"port\": $PORT, \"protocol\": \"[a-z]*\", \"state\": \"[a-z|]*\"[^}]*" | head -1)
state=$(echo "$line" | sed -n 's/.*"state": "\([^"]*\)".*/\1/p')
svc=$(echo "$line" | sed -n 's/.*"serviceName": "\([^"]*\)".*/\1/p')
product=$(echo "$line" | sed -n 's/.*"serviceProduct": "\([^"]*\)".*/\1/p')
if [ "$state" != open ]; then
	echo "expected port $PORT to be open"; exit 1
fi
printf '\n\033[1;32m127.0.0.1:%s/tcp is %s: %s%s\033[0m\n' "$PORT" "$state" "${svc:-unknown}" "${product:+ ($product)}"

if [ "$KEEP" = 1 ]; then
	say "Still running (KEEP=1). Explore with grpcurl, e.g.:"
	echo "  export TOKEN=$TOKEN"
	G=("$BIN/grpcurl" -plaintext -H 'authorization: Bearer $TOKEN')
	echo "  ${G[*]} $CTRL list scanorama.v1.AdminService"
	echo "  ${G[*]} -d '{}' $CTRL scanorama.v1.AdminService/ListAgents"
	echo "  ${G[*]} -d '{\"site\":\"demo\"}' $CTRL scanorama.v1.AdminService/ListHosts"
	echo "  ${G[*]} -d '{}' $CTRL scanorama.v1.AdminService/WatchEvents"
	echo "Stop it with:"
	echo "  kill ${pids[*]}"
fi
