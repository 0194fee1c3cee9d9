"""The stream events that announce output items, in OpenAI's order for the Responses API.

A message is announced as `response.output_item.added` (the item `in_progress`, no content),
`response.content_part.added`, `response.output_text.delta` …, `response.output_text.done`,
`response.content_part.done`, `response.output_item.done`. A streamed message sends the first
ones while its text is written (`opening`, `delta`) and the rest once its step is recorded
(`message_events`); one recorded whole sends them all at once. A tool call is announced
`added` (in progress) when the model asks for it, and `done` with its output.
"""

from __future__ import annotations

from typing import Any

from researchdesk.store.events import Event

Item = dict[str, Any]


def added(index: int, item: Item) -> Event:
    """An item appears at `index`."""
    return ("response.output_item.added", {"output_index": index, "item": item})


def done(index: int, item: Item) -> Event:
    """The item at `index` is final (or has a new final version)."""
    return ("response.output_item.done", {"output_index": index, "item": item})


def opening(index: int, item_id: str) -> list[Event]:
    """A message begins at `index`: the item in progress, then its one text part, empty."""
    item = {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    part = {"type": "output_text", "text": "", "annotations": []}
    return [
        added(index, item),
        (
            "response.content_part.added",
            {"item_id": item_id, "output_index": index, "content_index": 0, "part": part},
        ),
    ]


def delta(index: int, item_id: str, text: str) -> Event:
    """More text of the message at `index`."""
    return (
        "response.output_text.delta",
        {
            "item_id": item_id,
            "output_index": index,
            "content_index": 0,
            "delta": text,
            "logprobs": [],
        },
    )


def message_events(index: int, item: Item, sent: str | None) -> list[Event]:
    """The events that take a reader from `sent` to the message `item`, final.

    `sent` is the text the reader was already sent at `index` (None: not even the opening).
    """
    item_id = item["id"]
    part = item["content"][0]
    text = part["text"]
    events: list[Event] = []
    if sent is None:
        events.extend(opening(index, item_id))
        sent = ""
    if len(text) > len(sent) and text.startswith(sent):
        events.append(delta(index, item_id, text[len(sent) :]))
    place = {"item_id": item_id, "output_index": index, "content_index": 0}
    events.append(("response.output_text.done", {**place, "text": text, "logprobs": []}))
    events.append(("response.content_part.done", {**place, "part": part}))
    events.append(done(index, item))
    return events


def item_events(index: int, item: Item, shown: Item | None) -> list[Event]:
    """The events that take a reader from `shown` (None: nothing yet) to `item` at `index`."""
    if shown is None and item["type"] == "message":
        return message_events(index, item, None)
    if shown is None:
        if item.get("status") == "in_progress":
            return [added(index, item)]
        return [added(index, item), done(index, item)]
    return [done(index, item)]
