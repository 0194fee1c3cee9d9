"""ResearchDesk testing layer."""
