"""ResearchDesk store layer."""
