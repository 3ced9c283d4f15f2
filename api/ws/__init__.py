"""The WebSocket endpoint `/ws`: live events from the Redis streams, resumable by cursor.

`events` (streams, frame types, frames), `cursor` (resume positions), `connection` (one socket's
queue, subscriptions and cursor), `hub` (the per-process stream reader and revocation listener),
`limits` (connections per user, inbound rate), `endpoint` (the protocol). See docs/websocket.md.
"""
