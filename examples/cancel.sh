#!/usr/bin/env bash
# Start a response and cancel it: a queued one stops at once, a running one within a moment.
# Cancelling it again is a no-op that answers the same cancelled response.
set -euo pipefail
. "$(dirname "$0")/common.sh"

BODY='{"input": "A question we will not wait for.", "background": true}'
id=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses" \
  -H 'content-type: application/json' -d "$BODY" | field id)
echo "created $id"

cancelled=$(curl -sS --fail-with-body "${AUTH[@]}" -X POST "$URL/v1/responses/$id/cancel")
echo "after cancel: $(echo "$cancelled" | field status)"
again=$(curl -sS --fail-with-body "${AUTH[@]}" -X POST "$URL/v1/responses/$id/cancel")
echo "cancel again: $(echo "$again" | field status)"
echo "spent before it stopped: $(echo "$cancelled" | field usage.total_usd) USD"
