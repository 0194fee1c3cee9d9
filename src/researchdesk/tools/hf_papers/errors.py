"""Expected failures of `hf_papers`; each message is written for the model to read."""

from __future__ import annotations


class HfPapersError(Exception):
    """An expected failure: it goes back to the model as tool-error text, never up the stack."""


class NotFoundError(HfPapersError):
    """Upstream answered that the paper, page or text does not exist."""


class UpstreamError(HfPapersError):
    """Upstream failed (after retries), was rate limited, or answered something unusable."""


class HostGuardError(UpstreamError):
    """A URL pointed outside the configured Hub and arXiv endpoints; it was not requested."""
