"""ResearchDesk: a background research-agent HTTP service."""
