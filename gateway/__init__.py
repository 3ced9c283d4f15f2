"""The strangler-fig gateway: an ASGI reverse proxy in front of the legacy monolith and the new
platform, routed by the `gateway_routes` table (changed live), with shadow comparison, canary
and cohort routing, and a Kong configuration generated from the same table for production.

Modules: `headers` (what is forwarded), `routing` (the table and who answers), `table` (the
live cache: NOTIFY + TTL), `proxy` (streaming forwarder, timeouts, retries), `shadow` (the
comparer), `app` (the ASGI app), `admin` (validated, audited route changes), `kong` (decK).
"""
