"""Ask ResearchDesk a question with the official `openai` SDK, typed end to end.

Creates a background response with a cost cap (`max_cost_usd`, a ResearchDesk field, sent with
`extra_body`), follows its event stream (`responses.stream(response_id=...)`: each event a
typed class), and prints each tool call as it happens, the answer as it is written, its
citations and what it cost. Exit status 0 when the response completed.

    export RESEARCHDESK_URL=http://127.0.0.1:8000 RESEARCHDESK_API_KEY=rd_...  # the key if needed
    python examples/sdk_example.py "a research question"
"""

from __future__ import annotations

import os
import sys

from openai import OpenAI
from openai.types.responses import Response

QUESTION = "How do sparse mixture-of-experts models decide how many tokens each expert takes?"


def main() -> int:
    """Ask, follow, print; 0 when the answer is complete."""
    url = os.environ.get("RESEARCHDESK_URL", "http://127.0.0.1:8000").rstrip("/")
    # An open service takes any key; the SDK wants one.
    client = OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("RESEARCHDESK_API_KEY") or "none")
    question = sys.argv[1] if len(sys.argv) > 1 else QUESTION

    created = client.responses.create(
        input=question, background=True, extra_body={"max_cost_usd": 0.25}
    )
    print(f"created {created.id}: {created.status}")

    final: Response | None = None
    with client.responses.stream(response_id=created.id) as stream:
        for event in stream:
            if event.type == "response.output_item.added":
                if event.item.type == "custom_tool_call":
                    print(f"tool call {event.item.name}: {event.item.input}")
                elif event.item.type == "message":
                    print("answer: ", end="")
            elif event.type == "response.output_text.delta":
                print(event.delta, end="", flush=True)
            elif event.type == "response.completed" or event.type == "response.incomplete":
                final = event.response  # a cancelled response ends with `incomplete`
            elif event.type == "response.failed":
                final = event.response
    print()
    if final is None:
        print("the stream ended before the response did", file=sys.stderr)
        return 1

    for item in final.output:
        if item.type != "message":
            continue
        for part in item.content:
            if part.type != "output_text":
                continue
            for cited in part.annotations:
                if cited.type == "url_citation":
                    verified = (cited.model_extra or {}).get("verified")
                    print(f"cites {cited.title} <{cited.url}> (retrieved: {verified})")

    # ResearchDesk's money fields ride beside the SDK's typed ones.
    usage = (final.usage.model_extra or {}) if final.usage else {}
    cap = (final.model_extra or {}).get("max_cost_usd")
    tokens = final.usage.total_tokens if final.usage else 0
    print(f"status: {final.status}; {tokens} tokens; spent {usage.get('total_usd')} USD of {cap}")
    return 0 if final.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
