#!/usr/bin/env bash
# Create a response with "stream": true and watch it happen: one line per server-sent event
# (sequence number, type, what it is about), the answer's text deltas as they are written.
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUESTION="${1:-What limits how many tokens an expert of a mixture-of-experts layer takes?}"
BODY=$(python3 -c 'import json, sys; print(json.dumps({"input": sys.argv[1],
    "background": True, "stream": True, "max_cost_usd": 0.25}))' "$QUESTION")

# -N: no buffering, so each event shows as it arrives. The stream ends after the final event.
curl -sSN --fail-with-body "${AUTH[@]}" "$URL/v1/responses" \
  -H 'content-type: application/json' -d "$BODY" | events
