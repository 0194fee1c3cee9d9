"""The `researchdesk ask | responses | usage` client: talks HTTP to a running service.

It imports nothing of the server (no FastAPI, no database): only the official `openai` SDK,
and `rich` for the terminal.
"""
