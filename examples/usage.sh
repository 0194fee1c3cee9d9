#!/usr/bin/env bash
# What was spent: GET /v1/usage sums the ledger by UTC day, model, provider and API key
# (optionally between ?start_date and ?end_date, YYYY-MM-DD, inclusive).
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUERY=""
if [ -n "${1:-}" ]; then QUERY="?start_date=$1&end_date=${2:-$1}"; fi
curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/usage$QUERY" | python3 -c '
import json, sys
usage = json.load(sys.stdin)
for bucket in usage["data"]:
    print(bucket["date"], bucket["model"], bucket["provider"], bucket["api_key_id"],
          bucket["llm_calls"], "calls", bucket["total_tokens"], "tokens", bucket["total_usd"], "USD")
print("total:", usage["total_usd"], "USD")
'
