"""ResearchDesk pricing layer."""
