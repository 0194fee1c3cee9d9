"""The `hf_papers` tool: Hugging Face Hub papers and arXiv full texts for the agent."""

from researchdesk.tools.hf_papers.args import HfPapersArgs
from researchdesk.tools.hf_papers.tool import HfPapersTool

__all__ = ["HfPapersArgs", "HfPapersTool"]
