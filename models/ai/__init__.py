"""The AI domain: conversations, proposals, LLM usage, categorizer memory and models."""
