"""The energy planner at work: the edge around the pure `phaeton.planning` core.

`service.PlannerService` re-plans inside the service and steers the battery through
`venus.ess_writer`; `cli` is `phaeton plan`. Both read the GX (D-Bus), the tariff and the
energy history; `phaeton.planning` itself takes plain values and touches no D-Bus or file.
"""
