"""ResearchDesk api layer."""
