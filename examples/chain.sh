#!/usr/bin/env bash
# A follow-up question: the second response names the first as previous_response_id, sees its
# question and answer, and shares its session_id.
set -euo pipefail
. "$(dirname "$0")/common.sh"

first=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses" -H 'content-type: application/json' \
  -d '{"input": "How do mixture-of-experts layers route tokens?", "background": true}' | field id)
echo "first: $first"
done_first=$(wait_done "$first")
echo "first status: $(echo "$done_first" | field status)"

BODY=$(python3 -c 'import json, sys; print(json.dumps({"input": "And how is the capacity learned?",
    "background": True, "previous_response_id": sys.argv[1]}))' "$first")
second=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses" \
  -H 'content-type: application/json' -d "$BODY" | field id)
echo "second: $second"
done_second=$(wait_done "$second")
echo "second status: $(echo "$done_second" | field status)"
echo "second previous_response_id: $(echo "$done_second" | field previous_response_id)"
echo "same session: $(echo "$done_first" | field session_id) $(echo "$done_second" | field session_id)"
echo "second answer:"
echo "$done_second" | answer
