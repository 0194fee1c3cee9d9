#!/usr/bin/env bash
# Retry a create safely: the same Idempotency-Key with the same body gives back the response it
# first made (no second run, no second charge); the key with another body is a 409.
set -euo pipefail
. "$(dirname "$0")/common.sh"

KEY="${IDEMPOTENCY_KEY:-example-$(python3 -c 'import uuid; print(uuid.uuid4())')}"
BODY='{"input": "What is a capacity factor?", "background": true, "max_cost_usd": 0.1}'

create() {
  curl -sS "${AUTH[@]}" "$URL/v1/responses" -H 'content-type: application/json' \
    -H "Idempotency-Key: $KEY" -d "$1" -w '\n%{http_code}\n'
}

first=$(create "$BODY")
echo "first:  HTTP $(echo "$first" | tail -n 1) $(echo "$first" | head -n 1 | field id)"
again=$(create "$BODY")
echo "again:  HTTP $(echo "$again" | tail -n 1) $(echo "$again" | head -n 1 | field id)"
other=$(create '{"input": "Another question", "background": true}')
echo "other body: HTTP $(echo "$other" | tail -n 1) $(echo "$other" | head -n 1 | field error.code)"
