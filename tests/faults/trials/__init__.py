"""The fault and abuse trials shared by the fault tier (tests/faults/) and the soak script
(benchmarks/soak.py): each module runs one kind of trial and returns plain figures; the tests
assert on them, the soak script prints them."""
