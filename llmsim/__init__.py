"""A bundled OpenAI-compatible LLM simulator (like `railsim/`): `/v1/chat/completions` with
tool calls, rule-based replies, latency and failure injection through `/v1/control`.
Production code never imports it; tests drive the real `openai` SDK against it over HTTP."""
