#!/usr/bin/env bash
# Create a background response, poll it until it ends, print the answer and what it cost.
set -euo pipefail
. "$(dirname "$0")/common.sh"

QUESTION="${1:-How do sparse mixture-of-experts models decide how many tokens each expert takes?}"
BODY=$(python3 -c 'import json, sys; print(json.dumps(
    {"input": sys.argv[1], "background": True, "max_cost_usd": 0.25}))' "$QUESTION")

created=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses" \
  -H 'content-type: application/json' -d "$BODY")
id=$(echo "$created" | field id)
echo "created $id: $(echo "$created" | field status)"

status=""
while true; do
  response=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses/$id")
  now=$(echo "$response" | field status)
  if [ "$now" != "$status" ]; then echo "status: $now"; fi
  status=$now
  case "$status" in queued|in_progress) sleep 0.5 ;; *) break ;; esac
done

echo "spent: $(echo "$response" | field usage.total_usd) USD of $(echo "$response" | field max_cost_usd)"
echo "answer:"
echo "$response" | answer
