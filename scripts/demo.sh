#!/usr/bin/env bash
# The README's demo: a throwaway GODEL_HOME, godeld in the background, events published and
# followed live, status, then a clean stop. Run it with `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.venv/bin"
export GODEL_HOME="${GODEL_DEMO_HOME:-$(mktemp -d /tmp/godel-demo.XXXXXX)}"
unset GODEL_SOCKET GODEL_CONFIG

say() { printf '\n\033[1m$ godelctl %s\033[0m\n' "$*"; }
ctl() { say "$*"; "$BIN/godelctl" "$@"; }

echo "godel demo — home: $GODEL_HOME"
ctl daemon start
ctl status

# Follow demo events in the background from the current head: no gap, whatever happens next.
since=$("$BIN/godelctl" --json status | "$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["last_seq"])')
say "events --follow --type 'demo:*' --since $since   (in the background)"
"$BIN/godelctl" events --follow --type 'demo:*' --since "$since" | sed -u 's/^/    [follow] /' &
follower=$!

for step in plan build test; do
  ctl events publish demo:step --data "{\"step\": \"$step\"}" --metadata '{"correlationId": "demo-1"}'
done
ctl events publish demo:done --data '{"status": "completed"}'
ctl events wait demo:done --since "$since"

ctl events --type 'demo:*' -n 10
ctl plugins
ctl rpc events.list "{\"since\": $since, \"pattern\": \"demo:done\"}"

# An agent: a real worker process in its own git worktree, driven offline by a script.
repo="$GODEL_HOME/demo-repo"
mkdir -p "$repo" && git -C "$repo" init -q -b main && echo "# demo" > "$repo/README.md"
git -C "$repo" add -A && git -C "$repo" -c user.name=demo -c user.email=demo@localhost commit -qm "initial"
ctl agents spawn --repo "$repo" --script examples/greeting-script.yaml --wait "add a greeting function with a test"
agent=$("$BIN/godelctl" --json agents list | "$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)["agents"][-1]["id"])')
ctl agents diff "$agent" --stat
ctl agents list
ctl budget report --by model
ctl events --type 'agent:*' -n 6

# A workflow: a durable DAG of shell steps and an agent step (scripted), with live progress.
ctl workflow validate examples/release.yaml
ctl workflow run examples/release.yaml --repo "$repo" --var version=1.2.0 --follow
ctl workflow list

# A swarm: three scripted agents side by side, then their branches merged into one.
ctl do "write some notes" --repo "$repo" -n 3 --script examples/swarm-script.yaml
swarm=$("$BIN/godelctl" --json swarm list | "$BIN/python" -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
ctl swarm merge "$swarm"
ctl daemon stop
wait "$follower" 2>/dev/null || true
echo
echo "done. The event log stays in $GODEL_HOME/godel.db; start again with: GODEL_HOME=$GODEL_HOME $BIN/godelctl daemon start"
