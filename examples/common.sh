# Sourced by the curl examples: where the service is, its key, and a JSON field reader.
#   RESEARCHDESK_URL      the service (default http://127.0.0.1:8000)
#   RESEARCHDESK_API_KEY  a bearer key, when the service requires one
RESEARCHDESK_URL="${RESEARCHDESK_URL:-http://127.0.0.1:8000}"
URL="${RESEARCHDESK_URL%/}"
AUTH=()
if [ -n "${RESEARCHDESK_API_KEY:-}" ]; then
  AUTH=(-H "authorization: Bearer ${RESEARCHDESK_API_KEY}")
fi

# field PATH: one value of the JSON document on stdin (`status`, `usage.total_usd`,
# `output.0.id`); strings print bare, anything else as JSON. python3 only, no jq needed.
field() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value if isinstance(value, str) else json.dumps(value))
' "$1"
}

# answer: the answer of the response on stdin, and the papers it cites.
answer() {
  python3 -c '
import json, sys
response = json.load(sys.stdin)
for item in response["output"]:
    if item["type"] == "message":
        for part in item["content"]:
            print(part["text"])
            for cited in part["annotations"]:
                checked = "retrieved by this run" if cited["verified"] else "not retrieved"
                print("  cites", cited["url"], "(" + checked + ")")
'
}

# wait_done ID: poll the response until it ends; prints its final JSON.
wait_done() {
  local response
  while true; do
    response=$(curl -sS --fail-with-body "${AUTH[@]}" "$URL/v1/responses/$1")
    case "$(echo "$response" | field status)" in
      queued|in_progress) sleep 0.5 ;;
      *) echo "$response"; return ;;
    esac
  done
}

# events: server-sent events on stdin, one line each as they arrive: the sequence number, the
# type, and what it is about (a tool call, a text delta, the final status).
events() {
  python3 -u -c '
import json, sys
for line in sys.stdin:
    if not line.startswith("data: "):
        continue
    event = json.loads(line[len("data: "):])
    about = ""
    if event["type"] == "response.output_text.delta":
        about = json.dumps(event["delta"])
    elif "item" in event:
        item, done = event["item"], event["type"].endswith(".done")
        about = item["id"]
        if item["type"] == "custom_tool_call":
            about += " -> %d characters" % len(item["output"] or "") if done else " " + item["input"]
    elif "response" in event:
        about = "status=" + event["response"]["status"]
    print(event["sequence_number"], event["type"], about)
'
}
