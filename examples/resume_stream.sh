#!/usr/bin/env bash
# Resume a stream: read the first events of a response's stream, drop the connection, then
# reconnect with ?starting_after=N and get exactly the events after N, none twice, none lost.
set -euo pipefail
. "$(dirname "$0")/common.sh"

FIRST="${1:-5}"   # how many events to read before the connection drops
BODY='{"input": "How is expert capacity chosen in mixture-of-experts models?", "background": true}'
id=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses" \
  -H 'content-type: application/json' -d "$BODY" | field id)
echo "created $id"

echo "--- the first $FIRST events, then the connection drops"
# `head` leaves after FIRST events; curl then stops (its pipe closed): a dropped connection.
seen=$( (curl -sN "${AUTH[@]}" "$URL/v1/responses/$id?stream=true" || true) \
  | (grep --line-buffered '^data: ' || true) | head -n "$FIRST" | events)
echo "$seen"
last=$(echo "$seen" | tail -n 1 | cut -d' ' -f1)

echo "--- resumed with starting_after=$last"
curl -sSN --fail-with-body "${AUTH[@]}" "$URL/v1/responses/$id?stream=true&starting_after=$last" \
  | events
