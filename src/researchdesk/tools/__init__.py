"""ResearchDesk tools layer."""
