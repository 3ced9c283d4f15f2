"""The AI domain: LLM seam, assistant tools, categorizer, recommendations, behaviour analysis."""
