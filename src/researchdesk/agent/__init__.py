"""ResearchDesk agent layer."""
