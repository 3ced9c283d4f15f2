"""The strangler-fig migration from the legacy monolith, as a service package.

`legacy` reads the monolith's database; `users`, `accounts` and `history` import one legacy
row each (validated first: a bad row is quarantined with a reason, never posted); `posting` is
the one place money is booked; `changes` applies change-data-capture events; `verify` compares
both sides; `cutover` flips the gateway's routes and freezes or thaws legacy writes;
`activities` wraps them for `MigrationWorkflow` (one activity = one transaction on our side).
"""
