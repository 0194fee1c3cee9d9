"""ResearchDesk worker layer."""
