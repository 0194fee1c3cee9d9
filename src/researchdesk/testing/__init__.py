"""Loopback HTTP servers that speak the router's and the Hub's protocols, for tests and the demo."""
