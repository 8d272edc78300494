"""`phaeton replay`: the planner in closed loop on a house's recorded year (docs/planner.md,
"Replay"). `history` reads and checks the record, `house` is the physics and Victron's
execution (ESS, hub4 setpoint, the Dynamic ESS delegate), `loop` drives the real planner
service on a simulated clock, `report` costs and prints it."""
